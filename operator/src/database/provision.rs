//! Creating and dropping a tenant's role and schema on the shared Postgres.
//!
//! All statements run over the operator's admin connection. Identifiers are validated
//! ([`super::validate_identifier`]) and quoted; the password only ever reaches SQL
//! through the server's own `format('%L')`.
//!
//! ## Admin privileges (RDS)
//!
//! The admin need not be a superuser. It needs `CREATEROLE` and `CREATE` on the
//! database, which RDS's master user has. Creating a schema owned by the tenant's role,
//! dropping it, and ending the role's sessions all require the admin to be a *member* of
//! that role, which a superuser is implicitly and RDS's master (`rds_superuser`, not a
//! superuser) is not. So [`Provisioner::ensure`] grants every tenant role to the admin
//! (`GRANT role TO CURRENT_USER`, with `SET` and `INHERIT` on Postgres 16+, where a
//! `CREATEROLE` user holds `ADMIN OPTION` on the roles it created but not `SET`). The
//! membership disappears with the role.

use std::time::Duration;

use pg_escape::quote_identifier;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres};

use super::error::{DatabaseError, INVALID_CATALOG_NAME, sqlstate};
use super::names::{Claim, ObjectKind, Ownership, TenantDatabase, validate_identifier};
use super::target::{AdminTarget, parse_admin_url};

/// SQLSTATE `42710`: the role exists (another `CREATE ROLE` won a race).
const DUPLICATE_OBJECT: &str = "42710";
/// SQLSTATE `42P06`: the schema exists.
const DUPLICATE_SCHEMA: &str = "42P06";
/// SQLSTATE `23505`: a concurrent `CREATE ROLE` of the same name hit the catalog's unique
/// index first.
const UNIQUE_VIOLATION: &str = "23505";

/// Limits of a [`Provisioner`]'s admin connections.
#[derive(Clone, Debug)]
pub struct ProvisionerConfig {
    /// How long to wait for a connection, including connecting: a database that is down
    /// fails a reconcile after this long instead of hanging it.
    pub connect_timeout: Duration,
    /// Admin connections open at once (tenants provisioned in parallel).
    pub max_connections: u32,
    /// Server-side limit of one statement (`statement_timeout`), so a lock held
    /// elsewhere cannot stall a reconcile forever.
    pub statement_timeout: Duration,
    /// TLS of the admin connection (the command line: `verify-full` unless the URL
    /// names an sslmode, against `--database-ca-file`).
    pub tls: crate::pg_tls::PgTls,
}

impl Default for ProvisionerConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            max_connections: 4,
            statement_timeout: Duration::from_secs(30),
            tls: crate::pg_tls::PgTls::default(),
        }
    }
}

/// What [`Provisioner::ensure`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnsureOutcome {
    /// The role did not exist and was created with the given password. `false`: it
    /// existed, and its password was left as it was.
    pub role_created: bool,
    /// The schema did not exist and was created.
    pub schema_created: bool,
}

/// What [`Provisioner::drop`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropOutcome {
    /// At least one of the schema and the role existed, and both are gone now.
    Dropped {
        /// The schema existed (and its tables are gone with it).
        schema: bool,
        /// The role existed.
        role: bool,
    },
    /// Neither existed: nothing to do.
    AlreadyGone,
    /// The database named in the admin URL does not exist (SQLSTATE 3D000), and the
    /// tenant's schema with it. Roles are server-wide, so the role may remain.
    DatabaseMissing,
}

/// Provisions tenants on the shared Postgres named by the operator's admin URL.
///
/// Cheap to clone (a pool handle). Connects lazily: creating one never fails because
/// the database is down, only the calls do, after
/// [`ProvisionerConfig::connect_timeout`].
#[derive(Clone, Debug)]
pub struct Provisioner {
    pool: PgPool,
    target: AdminTarget,
}

impl Provisioner {
    /// A provisioner for `admin_url` with [`ProvisionerConfig::default`]. Call it
    /// inside the Tokio runtime (the pool's maintenance task is spawned on it; sqlx
    /// panics without one).
    ///
    /// # Errors
    ///
    /// [`DatabaseError::InvalidAdminUrl`] when the URL does not parse or names a Unix
    /// socket. The URL is never echoed (it holds the admin password).
    pub fn new(admin_url: &str) -> Result<Self, DatabaseError> {
        Self::with_config(admin_url, &ProvisionerConfig::default())
    }

    /// A provisioner for `admin_url` with the given limits.
    ///
    /// # Errors
    ///
    /// As [`Self::new`].
    pub fn with_config(admin_url: &str, config: &ProvisionerConfig) -> Result<Self, DatabaseError> {
        let options = parse_admin_url(admin_url)?;
        let target = AdminTarget::from_options(&options)?;
        let statement_timeout = format!("{}ms", config.statement_timeout.as_millis());
        // The tenants' target (above) keeps the URL's own sslmode; only this connection
        // gets the operator's TLS policy.
        let options = config.tls.apply(admin_url, options);
        let options = options
            .application_name("switchboard-operator")
            .options([("statement_timeout", statement_timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.connect_timeout)
            // An admin connection is idle between reconciles; do not keep it forever.
            .idle_timeout(Duration::from_secs(60))
            .min_connections(0)
            .connect_lazy_with(options);
        Ok(Self { pool, target })
    }

    /// Where the tenants' gateways connect (for [`super::build_database_secret`]).
    pub fn target(&self) -> &AdminTarget {
        &self.target
    }

    /// Checks that the admin connection works (`SELECT 1`).
    ///
    /// # Errors
    ///
    /// [`DatabaseError`]: `DatabaseUnreachable`, `DatabaseRefused`, `DatabaseMissing`.
    pub async fn ping(&self) -> Result<(), DatabaseError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the tenant's role exists. Before writing a *new* credentials Secret for a
    /// tenant whose Secret went missing, a controller asks this: an existing role keeps
    /// its old password ([`Self::ensure`] never changes it), so a new Secret would not
    /// log in.
    ///
    /// # Errors
    ///
    /// [`DatabaseError`]: `DatabaseUnreachable`, `DatabaseRefused`, `DatabaseMissing`.
    pub async fn role_exists(&self, db: &TenantDatabase) -> Result<bool, DatabaseError> {
        let mut conn = self.pool.acquire().await?;
        role_exists(&mut conn, &db.role).await
    }

    /// Closes the admin connections (on shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Makes sure the tenant's role and schema exist, are isolated, and hold the
    /// gateway's current tables. Idempotent; safe to run concurrently for different
    /// tenants (and for one tenant: the loser of a race sees the winner's objects).
    ///
    /// 1. `CREATE ROLE … LOGIN PASSWORD …` only if the role does not exist. An existing
    ///    role keeps its password: it is never altered (a lost Secret must not silently
    ///    lock out running gateways; compare CloudNativePG #9677). Role and schema are
    ///    marked as `owner`'s (`COMMENT ON … IS` [`Ownership::comment`]) when created;
    ///    existing ones must already be `owner`'s, or unmarked under `owner`'s derived
    ///    names (then they are marked), else [`DatabaseError::OwnershipMismatch`].
    /// 2. The admin becomes a member of the role if it is not (see the module docs).
    /// 3. `CREATE SCHEMA IF NOT EXISTS … AUTHORIZATION role`; an existing schema owned
    ///    by another role is refused ([`DatabaseError::SchemaConflict`]).
    /// 4. Isolation: no privileges on the schema for `PUBLIC`; the role may `CONNECT` to
    ///    this database; it cannot create in `public` (revoked from `PUBLIC` if the
    ///    server still grants it, as Postgres before 15 did).
    /// 5. The gateway's migrations, run as the role with the schema as search path, so
    ///    every table is the role's.
    ///
    /// Each call takes the database-wide migration lock the gateway's own migrator uses
    /// (briefly, when nothing is pending): call it when provisioning or when the
    /// operator's version may have changed, not on every requeue.
    ///
    /// # Errors
    ///
    /// [`DatabaseError`] with categories `InvalidName`, `DatabaseUnreachable`,
    /// `DatabaseBusy`, `DatabaseRefused`, `DatabaseMissing`, `SchemaConflict`,
    /// `MigrationFailed`.
    pub async fn ensure(
        &self,
        db: &TenantDatabase,
        owner: &Ownership,
        password: &str,
    ) -> Result<EnsureOutcome, DatabaseError> {
        validate_identifier(&db.role)?;
        validate_identifier(&db.schema)?;
        if password.is_empty() {
            // Postgres would create the role without a password: nobody could log in.
            return Err(DatabaseError::InvalidName {
                name: db.role.clone(),
                reason: "empty password",
            });
        }
        let mut conn = self.pool.acquire().await?;
        let result = ensure_on(&mut conn, db, owner, password).await;
        if result.is_err() {
            // The session may still be the tenant's role; never hand it back to the pool.
            discard(conn).await;
        }
        result
    }

    /// Removes the tenant's schema (with every table in it) and its role: ends the
    /// role's sessions first (after `NOLOGIN`, so gateways cannot reconnect in
    /// between), then `DROP SCHEMA … CASCADE`, `DROP OWNED BY`, `DROP ROLE`.
    ///
    /// Idempotent: a schema or role that is already gone, or a database that no longer
    /// exists, is success ([`DropOutcome`] says which). A schema owned by another role
    /// is left alone ([`DatabaseError::SchemaConflict`]), and so is everything when the
    /// role or the schema is not provably `owner`'s ([`Ownership::judge`]:
    /// [`DatabaseError::OwnershipMismatch`], checked before anything is changed).
    ///
    /// # Errors
    ///
    /// [`DatabaseError`]: `DatabaseUnreachable` (the database may come back: retry, or
    /// give up by policy; [`DatabaseError::is_unreachable`]), `DatabaseBusy` (retry),
    /// `DatabaseRefused` (e.g. the role still owns objects in another
    /// database), `SchemaConflict`, `DatabaseOwnershipMismatch`, `InvalidName`.
    pub async fn drop(
        &self,
        db: &TenantDatabase,
        owner: &Ownership,
    ) -> Result<DropOutcome, DatabaseError> {
        validate_identifier(&db.role)?;
        validate_identifier(&db.schema)?;
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(e) if sqlstate(&e).as_deref() == Some(INVALID_CATALOG_NAME) => {
                return Ok(DropOutcome::DatabaseMissing);
            }
            Err(e) => return Err(e.into()),
        };
        let result = drop_on(&mut conn, db, owner).await;
        if result.is_err() {
            discard(conn).await;
        }
        result
    }
}

/// Closes a connection instead of returning it to the pool.
async fn discard(conn: PoolConnection<Postgres>) {
    if let Err(e) = conn.close().await {
        tracing::debug!(error = %e, "closing a discarded admin connection");
    }
}

async fn ensure_on(
    conn: &mut PgConnection,
    db: &TenantDatabase,
    owner: &Ownership,
    password: &str,
) -> Result<EnsureOutcome, DatabaseError> {
    let role = quote_identifier(&db.role);
    let schema = quote_identifier(&db.schema);

    let role_created = if role_exists(conn, &db.role).await? {
        false
    } else {
        create_role(conn, &db.role, password).await?
    };
    // Before the admin joins it or anything else uses it.
    claim(conn, ObjectKind::Role, &db.role, owner, role_created).await?;
    grant_membership(conn, &db.role).await?;

    let schema_created = match schema_owner(conn, &db.schema).await? {
        Some(owner) if owner == db.role => false,
        Some(owner) => {
            return Err(DatabaseError::SchemaConflict {
                schema: db.schema.clone(),
                owner,
                role: db.role.clone(),
            });
        }
        None => create_schema(conn, db).await?,
    };
    claim(conn, ObjectKind::Schema, &db.schema, owner, schema_created).await?;
    // New schemas grant PUBLIC nothing; revoke only what someone added, so a no-op
    // ensure writes nothing to the catalog.
    let public_grants: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a \
         WHERE n.nspname = $1 AND a.grantee = 0)",
    )
    .bind(&db.schema)
    .fetch_one(&mut *conn)
    .await?;
    if public_grants {
        exec(conn, format!("REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")).await?;
    }
    isolate(conn, &db.role).await?;
    migrate_as(conn, &role, &schema).await?;
    Ok(EnsureOutcome {
        role_created,
        schema_created,
    })
}

async fn role_exists(conn: &mut PgConnection, role: &str) -> Result<bool, DatabaseError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Creates the role; `false` when a concurrent ensure created it first.
async fn create_role(
    conn: &mut PgConnection,
    role: &str,
    password: &str,
) -> Result<bool, DatabaseError> {
    // The server quotes both (`%I`, `%L`): nothing passes through our own escaping.
    // What it gets is the password's SCRAM verifier, so the password itself never
    // appears in a statement (statement logs, pg_stat_activity). Explicit attributes:
    // nothing beyond logging in.
    let secret = super::scram::verifier(password);
    let secret = secret.as_deref().unwrap_or(password);
    let sql: String = sqlx::query_scalar(
        "SELECT format('CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE \
         NOREPLICATION NOBYPASSRLS PASSWORD %L', $1::text, $2::text)",
    )
    .bind(role)
    .bind(secret)
    .fetch_one(&mut *conn)
    .await?;
    match sqlx::query(AssertSqlSafe(sql)).execute(&mut *conn).await {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                sqlstate(&e).as_deref(),
                Some(DUPLICATE_OBJECT | UNIQUE_VIOLATION)
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates the schema owned by the role; `false` when a concurrent ensure created it
/// first (`IF NOT EXISTS` does not cover a race: the loser hits the catalog's unique
/// index), after checking that the winner made it for the same role.
async fn create_schema(
    conn: &mut PgConnection,
    db: &TenantDatabase,
) -> Result<bool, DatabaseError> {
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}",
        quote_identifier(&db.schema),
        quote_identifier(&db.role)
    );
    match sqlx::query(AssertSqlSafe(sql)).execute(&mut *conn).await {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                sqlstate(&e).as_deref(),
                Some(DUPLICATE_SCHEMA | UNIQUE_VIOLATION)
            ) =>
        {
            match schema_owner(conn, &db.schema).await? {
                Some(owner) if owner == db.role => Ok(false),
                Some(owner) => Err(DatabaseError::SchemaConflict {
                    schema: db.schema.clone(),
                    owner,
                    role: db.role.clone(),
                }),
                None => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes the admin a member of `role` that can `SET ROLE` to it and use its privileges,
/// unless it is a superuser or already is one.
async fn grant_membership(conn: &mut PgConnection, role: &str) -> Result<(), DatabaseError> {
    let (superuser, version): (bool, i32) = sqlx::query_as(
        "SELECT rolsuper, current_setting('server_version_num')::int \
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await?;
    if superuser {
        return Ok(());
    }
    // Postgres 16 split membership into ADMIN, INHERIT and SET; before, a member could
    // always do both.
    let (privilege, with) = if version >= 160_000 {
        ("SET", " WITH INHERIT TRUE, SET TRUE")
    } else {
        ("MEMBER", "")
    };
    let has_set: bool = sqlx::query_scalar(
        "SELECT pg_has_role(current_user, $1, $2) AND pg_has_role(current_user, $1, 'USAGE')",
    )
    .bind(role)
    .bind(privilege)
    .fetch_one(&mut *conn)
    .await?;
    if !has_set {
        exec(
            conn,
            format!("GRANT {} TO CURRENT_USER{with}", quote_identifier(role)),
        )
        .await?;
    }
    Ok(())
}

async fn schema_owner(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Option<String>, DatabaseError> {
    Ok(sqlx::query_scalar(
        "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1",
    )
    .bind(schema)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The role may connect to this database, and may not create in `public`.
async fn isolate(conn: &mut PgConnection, role: &str) -> Result<(), DatabaseError> {
    let (can_connect, can_create_public): (bool, bool) = sqlx::query_as(
        "SELECT has_database_privilege($1, current_database(), 'CONNECT'), \
                COALESCE((SELECT has_schema_privilege($1, oid, 'CREATE') \
                          FROM pg_namespace WHERE nspname = 'public'), false)",
    )
    .bind(role)
    .fetch_one(&mut *conn)
    .await?;
    if !can_connect {
        // A hardened database (CONNECT revoked from PUBLIC) still admits its tenants.
        let sql: String = sqlx::query_scalar(
            "SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), $1::text)",
        )
        .bind(role)
        .fetch_one(&mut *conn)
        .await?;
        exec(conn, sql).await?;
    }
    if can_create_public {
        // Postgres < 15 lets everyone create in `public`: a tenant could plant objects
        // other tenants' search paths might resolve. Postgres 15+ never gets here.
        exec(
            conn,
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_string(),
        )
        .await?;
        tracing::info!("revoked CREATE on schema public from PUBLIC (tenant isolation)");
    }
    Ok(())
}

/// Runs the gateway's migrations as `role` in `schema`, then restores the session.
async fn migrate_as(
    conn: &mut PgConnection,
    role: &str,
    schema: &str,
) -> Result<(), DatabaseError> {
    exec(conn, format!("SET ROLE {role}")).await?;
    exec(conn, format!("SET search_path TO {schema}")).await?;
    switchboard_store::postgres::migrate(conn)
        .await
        .map_err(DatabaseError::from_migrate)?;
    exec(conn, "RESET search_path".to_string()).await?;
    exec(conn, "RESET ROLE".to_string()).await?;
    Ok(())
}

async fn drop_on(
    conn: &mut PgConnection,
    db: &TenantDatabase,
    owner: &Ownership,
) -> Result<DropOutcome, DatabaseError> {
    let role = quote_identifier(&db.role);
    let schema = quote_identifier(&db.schema);
    let role_existed = role_exists(conn, &db.role).await?;
    let schema_existed = match schema_owner(conn, &db.schema).await? {
        Some(owner) if owner == db.role => true,
        Some(owner) => {
            return Err(DatabaseError::SchemaConflict {
                schema: db.schema.clone(),
                owner,
                role: db.role.clone(),
            });
        }
        None => false,
    };
    if !role_existed && !schema_existed {
        return Ok(DropOutcome::AlreadyGone);
    }
    // Both checked before anything is changed: a drop is all or nothing.
    if role_existed {
        verify(conn, ObjectKind::Role, &db.role, owner).await?;
    }
    if schema_existed {
        verify(conn, ObjectKind::Schema, &db.schema, owner).await?;
    }
    if role_existed {
        grant_membership(conn, &db.role).await?;
        exec(conn, format!("ALTER ROLE {role} NOLOGIN")).await?;
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE usename = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&db.role)
        .execute(&mut *conn)
        .await?;
    }
    let mut tx = conn.begin().await?;
    if schema_existed {
        exec(&mut tx, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
    }
    if role_existed {
        // Whatever else it owns or was granted in this database (CONNECT, say).
        exec(&mut tx, format!("DROP OWNED BY {role} CASCADE")).await?;
        exec(&mut tx, format!("DROP ROLE IF EXISTS {role}")).await?;
    }
    tx.commit().await?;
    Ok(DropOutcome::Dropped {
        schema: schema_existed,
        role: role_existed,
    })
}

/// The ownership comment of a role or schema, if it has one.
async fn comment_of(
    conn: &mut PgConnection,
    kind: ObjectKind,
    name: &str,
) -> Result<Option<String>, DatabaseError> {
    let sql = match kind {
        ObjectKind::Role => {
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1"
        }
        ObjectKind::Schema => {
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1"
        }
    };
    Ok(sqlx::query_scalar::<_, Option<String>>(sql)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .flatten())
}

/// Marks the object as `owner`'s.
async fn mark(
    conn: &mut PgConnection,
    kind: ObjectKind,
    name: &str,
    owner: &Ownership,
) -> Result<(), DatabaseError> {
    let sql: String = sqlx::query_scalar(match kind {
        ObjectKind::Role => "SELECT format('COMMENT ON ROLE %I IS %L', $1::text, $2::text)",
        ObjectKind::Schema => "SELECT format('COMMENT ON SCHEMA %I IS %L', $1::text, $2::text)",
    })
    .bind(name)
    .bind(owner.comment())
    .fetch_one(&mut *conn)
    .await?;
    exec(conn, sql).await
}

/// Checks that an existing object is `owner`'s, marking it when it was just created or
/// is adopted ([`Claim::Adopt`]).
async fn claim(
    conn: &mut PgConnection,
    kind: ObjectKind,
    name: &str,
    owner: &Ownership,
    created: bool,
) -> Result<(), DatabaseError> {
    let comment = comment_of(conn, kind, name).await?;
    if created && comment.is_none() {
        return mark(conn, kind, name, owner).await;
    }
    match owner.judge(kind, name, comment.as_deref()) {
        Claim::Ours => Ok(()),
        Claim::Adopt => {
            tracing::info!(
                kind = kind.as_str(),
                name,
                uid = owner.uid,
                "marking an unmarked tenant database object"
            );
            mark(conn, kind, name, owner).await
        }
        Claim::Foreign => Err(mismatch(kind, name, owner, comment)),
    }
}

/// Checks, changing nothing, that an existing object is `owner`'s (or adoptable).
async fn verify(
    conn: &mut PgConnection,
    kind: ObjectKind,
    name: &str,
    owner: &Ownership,
) -> Result<(), DatabaseError> {
    let comment = comment_of(conn, kind, name).await?;
    match owner.judge(kind, name, comment.as_deref()) {
        Claim::Ours | Claim::Adopt => Ok(()),
        Claim::Foreign => Err(mismatch(kind, name, owner, comment)),
    }
}

fn mismatch(
    kind: ObjectKind,
    name: &str,
    owner: &Ownership,
    comment: Option<String>,
) -> DatabaseError {
    DatabaseError::OwnershipMismatch {
        kind: kind.as_str(),
        name: name.to_string(),
        tenant: format!("{}/{}", owner.namespace, owner.name),
        uid: owner.uid.clone(),
        found: match comment {
            Some(c) => format!("it is marked {c:?}"),
            None => format!(
                "it is unmarked and not this tenant's derived name {}",
                match kind {
                    ObjectKind::Role => &owner.derived.role,
                    ObjectKind::Schema => &owner.derived.schema,
                }
            ),
        },
    }
}

/// Runs one statement built from quoted identifiers.
async fn exec(conn: &mut PgConnection, sql: String) -> Result<(), DatabaseError> {
    sqlx::query(AssertSqlSafe(sql)).execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The controller awaits these inside spawned reconciles.
    #[tokio::test]
    async fn futures_are_send() {
        let p = Provisioner::new("postgres://admin@db.example:5432/voice").unwrap();
        let db = TenantDatabase {
            role: "sb_a_b_00000000".into(),
            schema: "sb_a_b_00000000".into(),
            secret_name: "b-database".into(),
        };
        let owner = Ownership {
            uid: "u".into(),
            namespace: "a".into(),
            name: "b".into(),
            derived: db.clone(),
        };
        assert_send(&p.ensure(&db, &owner, "pw"));
        assert_send(&p.drop(&db, &owner));
        assert_send(&p.role_exists(&db));
        assert_send(&p.ping());
    }

    #[tokio::test]
    async fn creating_a_provisioner_needs_no_database() {
        // Lazy: a database that is down must not keep the operator from starting.
        let p = Provisioner::new("postgres://admin@127.0.0.1:1/voice").unwrap();
        assert_eq!(p.target().port, 1);
        assert!(Provisioner::new("not a url").is_err());
    }
}
