//! Per-tenant Postgres provisioning on a real PostgreSQL: roles, schemas, isolation,
//! the gateway's own store on the provisioned URL, dropping, and failures.
//!
//! Needs `SWITCHBOARD_TEST_PG` (`eval "$(scripts/postgres.sh start)"`); every test goes
//! through the shared gate (skips locally, fails under `CI=true`). Tests share one server and run in parallel, so each uses
//! tenants of its own (random names and UIDs).
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::net::TcpListener;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use switchboard_crds::VoiceTenant;
use switchboard_operator::database::{
    AdminTarget, DropOutcome, Ownership, Provisioner, TenantDatabase, URL_KEY,
    build_database_secret, generate_password,
};
use switchboard_store::{self as store, CallStart, StoreOp};

/// The test server's admin URL (a superuser), or `None` to skip.
fn admin_url() -> Option<String> {
    switchboard_tests::services::postgres()
}

/// A few random lowercase letters and digits.
fn unique() -> String {
    generate_password()[..10].to_ascii_lowercase()
}

/// A tenant as the API server would return it, with a fresh name and UID.
fn tenant() -> VoiceTenant {
    let yaml = format!(
        r#"
apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata:
  name: t-{name}
  namespace: db-test
  uid: {uid}
spec:
  displayName: Database test
  phoneNumbers: ["+15005550006"]
  twilio:
    accountSid: ACe5b9b91d74144c1eab5502f239bd8ed9
    authToken: {{ secretKeyRef: {{ name: demo-secrets, key: twilio-auth-token }} }}
  openai:
    apiKey: {{ secretKeyRef: {{ name: demo-secrets, key: openai-api-key }} }}
"#,
        name = unique(),
        uid = unique(),
    );
    switchboard_crds::parse_tenant(&yaml).unwrap()
}

/// The `url` key of the tenant's database Secret, as the gateway would read it.
/// A tenant's names and the ownership its role and schema are marked with.
fn owned(vt: &VoiceTenant) -> (TenantDatabase, Ownership) {
    (
        TenantDatabase::for_tenant(vt).unwrap(),
        Ownership::of(vt).unwrap(),
    )
}

fn secret_url(vt: &VoiceTenant, db: &TenantDatabase, password: &str, t: &AdminTarget) -> String {
    let secret = build_database_secret(vt, db, password, t).unwrap();
    String::from_utf8(secret.data.unwrap()[URL_KEY].0.clone()).unwrap()
}

async fn admin(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap()
}

async fn role_exists(conn: &mut PgConnection, role: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn schema_exists(conn: &mut PgConnection, schema: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// The role's stored SCRAM verifier (readable by a superuser).
async fn verifier(conn: &mut PgConnection, role: &str) -> String {
    sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(role)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Whether `password` is the one `verifier` (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:
/// <ServerKey>`) was made from: the check the server runs when the role logs in
/// (RFC 5802/7677). The test server trusts loopback logins, so logging in proves nothing
/// about the password; this does.
fn scram_matches(verifier: &str, password: &str) -> bool {
    let (iterations, salt, stored_key) = {
        let rest = verifier.strip_prefix("SCRAM-SHA-256$").unwrap();
        let (params, keys) = rest.split_once('$').unwrap();
        let (iter, salt) = params.split_once(':').unwrap();
        let (stored, _server) = keys.split_once(':').unwrap();
        (
            iter.parse::<u32>().unwrap(),
            STANDARD.decode(salt).unwrap(),
            STANDARD.decode(stored).unwrap(),
        )
    };
    let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    // PBKDF2-HMAC-SHA256, one 32-byte block.
    let mut u = hmac(
        password.as_bytes(),
        &[salt.as_slice(), &1u32.to_be_bytes()].concat(),
    );
    let mut salted = u.clone();
    for _ in 1..iterations {
        u = hmac(password.as_bytes(), &u);
        salted.iter_mut().zip(&u).for_each(|(s, x)| *s ^= x);
    }
    let client_key = hmac(&salted, b"Client Key");
    Sha256::digest(&client_key).as_slice() == stored_key.as_slice()
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn ensure_is_idempotent_and_never_changes_the_password() {
    let Some(url) = admin_url() else { return };
    let p = Provisioner::new(&url).unwrap();
    let vt = tenant();
    let (db, owner) = owned(&vt);
    let first = generate_password();

    let started = Instant::now();
    let outcome = p.ensure(&db, &owner, &first).await.unwrap();
    eprintln!("first ensure of a new tenant: {:?}", started.elapsed());
    assert!(
        outcome.role_created && outcome.schema_created,
        "{outcome:?}"
    );

    let mut conn = admin(&url).await;
    let before = verifier(&mut conn, &db.role).await;
    assert!(scram_matches(&before, &first));

    // A second ensure, as after a lost Secret, with another password: nothing changes.
    let second = generate_password();
    let started = Instant::now();
    let outcome = p.ensure(&db, &owner, &second).await.unwrap();
    eprintln!("second ensure (nothing to do): {:?}", started.elapsed());
    assert!(
        !outcome.role_created && !outcome.schema_created,
        "{outcome:?}"
    );
    let after = verifier(&mut conn, &db.role).await;
    assert_eq!(after, before, "the role's password was rewritten");
    assert!(scram_matches(&after, &first));
    assert!(!scram_matches(&after, &second));

    // Logging in with the original password works (the Secret's URL).
    let url_first = secret_url(&vt, &db, &first, p.target());
    let mut tenant_conn = PgConnection::connect(&url_first).await.unwrap();
    let who: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut tenant_conn)
        .await
        .unwrap();
    assert_eq!(who, db.role);
    // Where the server checks passwords at all (not this test server, which trusts
    // loopback), the second password is refused.
    let url_second = secret_url(&vt, &db, &second, p.target());
    if let Err(e) = PgConnection::connect(&url_second).await {
        assert_eq!(sqlstate(&e).as_deref(), Some("28P01"), "{e}");
    }
    tenant_conn.close().await.unwrap();
    p.drop(&db, &owner).await.unwrap();
}

#[tokio::test]
async fn migrations_create_the_gateways_tables_owned_by_the_role() {
    let Some(url) = admin_url() else { return };
    let p = Provisioner::new(&url).unwrap();
    let (db, owner) = owned(&tenant());
    p.ensure(&db, &owner, &generate_password()).await.unwrap();

    let mut conn = admin(&url).await;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT tablename::text, tableowner::text FROM pg_tables \
         WHERE schemaname = $1 ORDER BY tablename",
    )
    .bind(&db.schema)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let names: Vec<&str> = tables.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "_sqlx_migrations",
            "call_status_events",
            "call_transfers",
            "calls",
            "tool_calls",
            "transcript_entries"
        ]
    );
    assert!(
        tables.iter().all(|(_, owner)| *owner == db.role),
        "{tables:?}"
    );
    let schema_owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1",
    )
    .bind(&db.schema)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(schema_owner, db.role);
    // Nothing leaked into public.
    let in_public: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = $1",
    )
    .bind(&db.role)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(in_public, 0);
    p.drop(&db, &owner).await.unwrap();
}

#[tokio::test]
async fn the_gateways_store_records_a_call_through_the_secrets_url() {
    let Some(url) = admin_url() else { return };
    let p = Provisioner::new(&url).unwrap();
    let vt = tenant();
    let (db, owner) = owned(&vt);
    let password = generate_password();
    p.ensure(&db, &owner, &password).await.unwrap();

    let gateway_url = secret_url(&vt, &db, &password, p.target());
    let calls = store::open(&gateway_url).await.unwrap();
    let start = StoreOp::Start(CallStart {
        call_sid: "CA0000000000000000000000000000db01".into(),
        tenant: "t".into(),
        from: "+15005550001".into(),
        to: "+15005550006".into(),
        started_at_ms: 1_700_000_000_000,
    });
    calls.apply(&start).await.unwrap();
    let record = calls
        .get_call("CA0000000000000000000000000000db01")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.to.as_deref(), Some("+15005550006"));

    // The row is in the tenant's schema, and the gateway found no migration to add.
    let mut conn = admin(&url).await;
    let sql = format!("SELECT count(*) FROM \"{}\".calls", db.schema);
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    let sql = format!("SELECT count(*) FROM \"{}\"._sqlx_migrations", db.schema);
    let migrations: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // Every migration of the store, applied once by the operator.
    assert_eq!(
        usize::try_from(migrations).unwrap(),
        switchboard_store::postgres::migration_count()
    );
    assert!(migrations >= 6, "{migrations}");
    drop(calls);
    p.drop(&db, &owner).await.unwrap();
}

#[tokio::test]
async fn a_tenant_cannot_reach_another_tenants_schema_nor_public() {
    let Some(url) = admin_url() else { return };
    let p = Provisioner::new(&url).unwrap();
    let (vt_a, vt_b) = (tenant(), tenant());
    let (a, owner_a) = owned(&vt_a);
    let (b, owner_b) = owned(&vt_b);
    let (pw_a, pw_b) = (generate_password(), generate_password());
    let (ra, rb) = tokio::join!(p.ensure(&a, &owner_a, &pw_a), p.ensure(&b, &owner_b, &pw_b));
    ra.unwrap();
    rb.unwrap();

    // B has a call on record.
    let calls_b = store::open(&secret_url(&vt_b, &b, &pw_b, p.target()))
        .await
        .unwrap();
    calls_b
        .apply(&StoreOp::Start(CallStart {
            call_sid: "CAb".into(),
            tenant: "b".into(),
            from: "+1".into(),
            to: "+2".into(),
            started_at_ms: 1,
        }))
        .await
        .unwrap();

    let mut as_a = PgConnection::connect(&secret_url(&vt_a, &a, &pw_a, p.target()))
        .await
        .unwrap();
    let b_calls = format!("\"{}\".calls", b.schema);
    for sql in [
        format!("SELECT * FROM {b_calls}"),
        format!("INSERT INTO {b_calls} (call_sid, tenant) VALUES ('CAx', 'a')"),
        format!("DELETE FROM {b_calls}"),
        format!("CREATE TABLE \"{}\".planted (i int)", b.schema),
        "CREATE TABLE public.planted (i int)".to_string(),
        "CREATE SCHEMA sb_planted".to_string(),
    ] {
        let err = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut as_a)
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{sql}: {err}");
    }
    // A's own tables work on the same connection.
    sqlx::query("SELECT count(*) FROM calls")
        .execute(&mut as_a)
        .await
        .unwrap();
    // And B still has exactly its own call.
    let ids: Vec<String> = calls_b
        .recent_calls(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call_sid)
        .collect();
    assert_eq!(ids, ["CAb"]);

    as_a.close().await.unwrap();
    drop(calls_b);
    p.drop(&a, &owner_a).await.unwrap();
    p.drop(&b, &owner_b).await.unwrap();
}

#[tokio::test]
async fn drop_removes_schema_and_role_even_while_connected_and_twice_is_fine() {
    let Some(url) = admin_url() else { return };
    let p = Provisioner::new(&url).unwrap();
    let vt = tenant();
    let (db, owner) = owned(&vt);
    let password = generate_password();
    p.ensure(&db, &owner, &password).await.unwrap();
    // A gateway is still connected when the tenant goes.
    let mut gateway = PgConnection::connect(&secret_url(&vt, &db, &password, p.target()))
        .await
        .unwrap();
    sqlx::query("SELECT 1").execute(&mut gateway).await.unwrap();

    let outcome = p.drop(&db, &owner).await.unwrap();
    assert_eq!(
        outcome,
        DropOutcome::Dropped {
            schema: true,
            role: true
        }
    );
    let mut conn = admin(&url).await;
    assert!(!schema_exists(&mut conn, &db.schema).await);
    assert!(!role_exists(&mut conn, &db.role).await);
    // Its session was ended, and it cannot come back.
    assert!(sqlx::query("SELECT 1").execute(&mut gateway).await.is_err());
    assert!(
        PgConnection::connect(&secret_url(&vt, &db, &password, p.target()))
            .await
            .is_err()
    );

    assert_eq!(p.drop(&db, &owner).await.unwrap(), DropOutcome::AlreadyGone);
}

#[tokio::test]
async fn a_schema_of_someone_else_is_neither_adopted_nor_dropped() {
    let Some(url) = admin_url() else { return };
    let p = Provisioner::new(&url).unwrap();
    let (mut db, owner) = owned(&tenant());
    db.schema = format!("sb_foreign_{}", unique());
    let mut conn = admin(&url).await;
    let sql = format!("CREATE SCHEMA \"{}\"", db.schema);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();

    let err = p
        .ensure(&db, &owner, &generate_password())
        .await
        .unwrap_err();
    assert_eq!(err.category(), "SchemaConflict", "{err}");
    let err = p.drop(&db, &owner).await.unwrap_err();
    assert_eq!(err.category(), "SchemaConflict", "{err}");
    assert!(schema_exists(&mut conn, &db.schema).await);

    let sql = format!("DROP SCHEMA \"{}\"", db.schema);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
    // The role ensure created before it met the schema goes with a drop.
    assert!(matches!(
        p.drop(&db, &owner).await.unwrap(),
        DropOutcome::Dropped { role: true, .. }
    ));
}

/// An RDS master user is not a superuser: CREATEROLE and CREATE on the database only.
#[tokio::test]
async fn a_non_superuser_admin_can_provision_and_drop() {
    let Some(url) = admin_url() else { return };
    let admin_role = format!("sb_test_admin_{}", unique());
    let mut conn = admin(&url).await;
    for sql in [
        format!("CREATE ROLE \"{admin_role}\" LOGIN CREATEROLE"),
        format!("GRANT CREATE ON DATABASE postgres TO \"{admin_role}\""),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let rds_url = url.replacen("postgres@", &format!("{admin_role}@"), 1);
    assert_ne!(rds_url, url, "admin URL without a user name: {url}");

    let p = Provisioner::new(&rds_url).unwrap();
    let vt = tenant();
    let (db, owner) = owned(&vt);
    let password = generate_password();
    let outcome = p.ensure(&db, &owner, &password).await.unwrap();
    assert!(outcome.role_created && outcome.schema_created);
    p.ensure(&db, &owner, &password).await.unwrap();
    let table_owner: String = sqlx::query_scalar(
        "SELECT tableowner::text FROM pg_tables WHERE schemaname = $1 AND tablename = 'calls'",
    )
    .bind(&db.schema)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(table_owner, db.role);
    let calls = store::open(&secret_url(&vt, &db, &password, p.target()))
        .await
        .unwrap();
    calls.ping().await.unwrap();
    drop(calls);
    // Ending a connected gateway's session needs the membership too.
    let mut gateway = PgConnection::connect(&secret_url(&vt, &db, &password, p.target()))
        .await
        .unwrap();

    assert!(matches!(
        p.drop(&db, &owner).await.unwrap(),
        DropOutcome::Dropped {
            schema: true,
            role: true
        }
    ));
    assert!(!role_exists(&mut conn, &db.role).await);
    assert!(sqlx::query("SELECT 1").execute(&mut gateway).await.is_err());
    p.close().await;
    for sql in [
        format!("DROP OWNED BY \"{admin_role}\""),
        format!("DROP ROLE \"{admin_role}\""),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_as_unreachable() {
    // Does not need the test server: nothing listens on the port.
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", closed_port());
    let p = Provisioner::new(&url).unwrap();
    let (db, owner) = owned(&tenant());

    let started = Instant::now();
    let err = p.ensure(&db, &owner, "pw").await.unwrap_err();
    eprintln!(
        "ensure against a closed port failed after {:?}",
        started.elapsed()
    );
    assert_eq!(err.category(), "DatabaseUnreachable", "{err}");
    assert!(err.is_transient());
    let err = p.drop(&db, &owner).await.unwrap_err();
    assert_eq!(err.category(), "DatabaseUnreachable", "{err}");
    let err = p.ping().await.unwrap_err();
    assert_eq!(err.category(), "DatabaseUnreachable", "{err}");
}

#[tokio::test]
async fn a_missing_database_is_success_for_drop_and_an_error_for_ensure() {
    let Some(url) = admin_url() else { return };
    let Some((base, _db)) = url.split('?').next().unwrap().rsplit_once('/') else {
        panic!("admin URL without a database: {url}");
    };
    let gone = format!("{base}/sb_no_such_db_{}", unique());
    let p = Provisioner::new(&gone).unwrap();
    let (db, owner) = owned(&tenant());
    assert_eq!(
        p.drop(&db, &owner).await.unwrap(),
        DropOutcome::DatabaseMissing
    );
    let err = p.ensure(&db, &owner, "pw").await.unwrap_err();
    assert_eq!(err.category(), "DatabaseMissing", "{err}");
    assert!(!err.is_transient());
}

/// Measurement, not a check: provisions, re-ensures and drops many tenants through one
/// provisioner at its default pool size. Run with
/// `cargo test -p switchboard-tests --test tenant_database -- --ignored --nocapture`
/// (`SWITCHBOARD_PROVISION_N` tenants, default 100).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; prints timings"]
async fn measure_provisioning_many_tenants() {
    use futures_util::StreamExt;
    use futures_util::stream::iter;

    let Some(url) = admin_url() else { return };
    let n: usize = std::env::var("SWITCHBOARD_PROVISION_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let p = Provisioner::new(&url).unwrap();
    let dbs: Vec<(TenantDatabase, Ownership)> = (0..n).map(|_| owned(&tenant())).collect();
    let concurrency = 8;

    for phase in ["ensure (new)", "ensure (again)", "drop"] {
        let started = Instant::now();
        let results: Vec<Result<(), String>> = iter(&dbs)
            .map(|(db, owner)| {
                let p = &p;
                async move {
                    if phase == "drop" {
                        p.drop(db, owner)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    } else {
                        let pw = generate_password();
                        p.ensure(db, owner, &pw)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let elapsed = started.elapsed();
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        eprintln!(
            "{phase}: {n} tenants in {elapsed:?} ({:.1} ms/tenant), {} failed {:?}",
            elapsed.as_secs_f64() * 1000.0 / n as f64,
            failed.len(),
            failed.first()
        );
        assert!(failed.is_empty());
    }
}
