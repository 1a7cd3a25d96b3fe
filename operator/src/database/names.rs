//! The names of a tenant's database objects: its Postgres role and schema, and the
//! Kubernetes Secret holding the role's credentials.
//!
//! Role and schema share one name, `sb_<namespace>_<name>_<digest>`: readable in `psql`,
//! a valid unquoted Postgres identifier, and unique per tenant *object*. The digest covers
//! the namespace, the name and the tenant's UID, so a tenant deleted under `Retain` and
//! created again gets a fresh role and schema (with a password its new Secret knows)
//! instead of adopting a retained role whose password nobody has any more.
//!
//! The controller persists the names in `status.database` and uses those from then on
//! ([`TenantDatabase::resolve`]), so a change of this scheme never orphans a tenant's data.

use kube::ResourceExt;
use switchboard_crds::{DatabaseStatus, VoiceTenant};

use super::error::DatabaseError;
use crate::owner::Owner;

pub use crate::dbnames::{MAX_IDENTIFIER_LEN, PREFIX};

/// Where a tenant's call records live on the shared Postgres.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantDatabase {
    /// Login role of the tenant's gateways; owns [`Self::schema`].
    pub role: String,
    /// Schema holding the tenant's tables.
    pub schema: String,
    /// Secret (in the tenant's namespace) with the role's `username`, `password` and the
    /// gateway's connection `url`.
    pub secret_name: String,
}

impl TenantDatabase {
    /// Derives the names for a tenant that has none in its status yet.
    ///
    /// Deterministic: the same tenant object always gets the same names.
    ///
    /// # Errors
    ///
    /// [`DatabaseError::Tenant`] when the tenant lacks a name, namespace or UID (it was
    /// not read from an API server).
    pub fn for_tenant(vt: &VoiceTenant) -> Result<Self, DatabaseError> {
        let owner = Owner::of(vt)?;
        let uid = vt.uid().unwrap_or_default();
        Ok(Self::derive(&owner.namespace, &owner.tenant, &uid))
    }

    /// The names recorded in the tenant's status, if any, otherwise freshly derived ones
    /// ([`Self::for_tenant`]). What the controller calls on every reconcile.
    ///
    /// # Errors
    ///
    /// [`DatabaseError::InvalidName`] when the status holds names this operator would
    /// never have written; [`DatabaseError::Tenant`] as in [`Self::for_tenant`].
    pub fn resolve(vt: &VoiceTenant) -> Result<Self, DatabaseError> {
        match vt.status.as_ref().and_then(|s| s.database.as_ref()) {
            Some(recorded) => Self::from_status(recorded),
            None => Self::for_tenant(vt),
        }
    }

    /// The names recorded in a status, validated: they end up in SQL (quoted, but a
    /// `DROP SCHEMA … CASCADE` on a name someone wrote into the status must still be
    /// impossible) and in a Secret name.
    ///
    /// # Errors
    ///
    /// [`DatabaseError::InvalidName`] when the role or schema is not an identifier
    /// this operator creates (see [`validate_identifier`]) or the Secret name is not a
    /// DNS subdomain.
    pub fn from_status(status: &DatabaseStatus) -> Result<Self, DatabaseError> {
        validate_identifier(&status.role)?;
        validate_identifier(&status.schema)?;
        if !switchboard_crds::format::is_dns_subdomain(&status.secret_name) {
            return Err(DatabaseError::InvalidName {
                name: status.secret_name.clone(),
                reason: "not a Kubernetes object name",
            });
        }
        Ok(Self {
            role: status.role.clone(),
            schema: status.schema.clone(),
            secret_name: status.secret_name.clone(),
        })
    }

    /// What the controller writes into `status.database`.
    pub fn to_status(&self) -> DatabaseStatus {
        DatabaseStatus {
            role: self.role.clone(),
            schema: self.schema.clone(),
            secret_name: self.secret_name.clone(),
        }
    }

    /// The names of the tenant `name` in `namespace` with UID `uid`.
    fn derive(namespace: &str, name: &str, uid: &str) -> Self {
        let derived = crate::dbnames::derive(namespace, name, uid);
        Self {
            role: derived.identifier.clone(),
            schema: derived.identifier,
            secret_name: derived.secret_name,
        }
    }
}

/// Who a role or schema belongs to, written into the database itself
/// (`COMMENT ON ROLE/SCHEMA … IS '<comment>'`) when the operator creates or adopts it.
///
/// The names in `status.database` are not proof of anything: anyone allowed to patch
/// `voicetenants/status` can write another tenant's names there. Before it uses or drops
/// a role or schema, the operator reads its comment and judges it ([`Self::judge`]):
/// only objects marked with this tenant's UID, or (created before the marking) unmarked
/// and named exactly as this tenant's names derive ([`TenantDatabase::for_tenant`],
/// which covers the UID), are this tenant's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// `metadata.uid` of the tenant.
    pub uid: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The names derived from namespace, name and UID.
    pub derived: TenantDatabase,
}

/// Start of every ownership comment.
pub const OWNERSHIP_COMMENT_PREFIX: &str = "switchboard tenant ";

/// What a role or schema's comment says about whose it is ([`Ownership::judge`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Marked with this tenant's UID.
    Ours,
    /// Unmarked but named exactly as this tenant's derived names: created for it before
    /// objects were marked. Mark it, then it is [`Claim::Ours`].
    Adopt,
    /// Marked for someone else, or unmarked under a name this tenant does not derive.
    Foreign,
}

/// The kind of a database object an ownership check is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// A login role.
    Role,
    /// A schema.
    Schema,
}

impl ObjectKind {
    /// `role` or `schema`, for messages and SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Role => "role",
            Self::Schema => "schema",
        }
    }
}

impl Ownership {
    /// The ownership of `vt`'s database objects.
    ///
    /// # Errors
    ///
    /// [`DatabaseError::Tenant`] when the tenant lacks a name, namespace or UID.
    pub fn of(vt: &VoiceTenant) -> Result<Self, DatabaseError> {
        // Requires the UID, too.
        let owner = Owner::of(vt)?;
        let uid = vt.uid().unwrap_or_default();
        Ok(Self {
            derived: TenantDatabase::derive(&owner.namespace, &owner.tenant, &uid),
            uid,
            namespace: owner.namespace,
            name: owner.tenant,
        })
    }

    /// The comment marking an object as this tenant's:
    /// `switchboard tenant uid=<uid> ns=<namespace> name=<name>`.
    pub fn comment(&self) -> String {
        format!(
            "{OWNERSHIP_COMMENT_PREFIX}uid={} ns={} name={}",
            self.uid, self.namespace, self.name
        )
    }

    /// Whether the `kind` object `name`, whose comment is `comment`, is this tenant's.
    /// Pure: the rule every use and every drop goes through.
    pub fn judge(&self, kind: ObjectKind, name: &str, comment: Option<&str>) -> Claim {
        match comment {
            Some(c) if comment_uid(c) == Some(self.uid.as_str()) => Claim::Ours,
            Some(_) => Claim::Foreign,
            None => {
                let derived = match kind {
                    ObjectKind::Role => &self.derived.role,
                    ObjectKind::Schema => &self.derived.schema,
                };
                if name == derived {
                    Claim::Adopt
                } else {
                    Claim::Foreign
                }
            }
        }
    }
}

/// The UID in an ownership comment, if it is one.
fn comment_uid(comment: &str) -> Option<&str> {
    comment
        .strip_prefix(OWNERSHIP_COMMENT_PREFIX)?
        .split(' ')
        .find_map(|field| field.strip_prefix("uid="))
}

/// Checks that `name` is a role or schema name this operator creates: starts with
/// [`PREFIX`], only `[a-z0-9_]`, at most [`MAX_IDENTIFIER_LEN`] bytes. Such a name is a
/// valid unquoted Postgres identifier, never a `pg_` name, and never `public`.
///
/// # Errors
///
/// [`DatabaseError::InvalidName`] saying which rule `name` breaks.
pub fn validate_identifier(name: &str) -> Result<(), DatabaseError> {
    let reason = if !name.starts_with(PREFIX) {
        Some("does not start with sb_")
    } else if name.len() > MAX_IDENTIFIER_LEN {
        Some("longer than 63 bytes")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Some("not only lowercase letters, digits and _")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(DatabaseError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dbnames::{DIGEST_LEN, MAX_SECRET_NAME_LEN};

    fn names(ns: &str, name: &str, uid: &str) -> TenantDatabase {
        TenantDatabase::derive(ns, name, uid)
    }

    #[test]
    fn plain_names_stay_readable() {
        let db = names("acme", "dental", "0b6e2a6c-1111-4a4a-8888-000000000001");
        assert!(db.role.starts_with("sb_acme_dental_"), "{}", db.role);
        assert_eq!(db.role.len(), "sb_acme_dental_".len() + DIGEST_LEN);
        assert_eq!(db.schema, db.role);
        assert_eq!(db.secret_name, "dental-database");
        validate_identifier(&db.role).unwrap();
    }

    #[test]
    fn names_are_stable() {
        let a = names("team-a", "front.desk", "uid-1");
        let b = names("team-a", "front.desk", "uid-1");
        assert_eq!(a, b);
        // A fixed value: a change of the derivation is a change of every new tenant's
        // names, so it must be deliberate.
        assert_eq!(a.role, "sb_team_a_front_desk_c0ac70f6");
    }

    #[test]
    fn sanitising_collisions_get_different_names() {
        let a = names("a-b", "c", "uid");
        let b = names("a", "b-c", "uid");
        assert_ne!(a.role, b.role);
        assert!(a.role.starts_with("sb_a_b_c_") && b.role.starts_with("sb_a_b_c_"));
    }

    #[test]
    fn a_recreated_tenant_gets_new_names() {
        let before = names("acme", "dental", "uid-1");
        let after = names("acme", "dental", "uid-2");
        assert_ne!(before.role, after.role);
        assert_eq!(before.secret_name, after.secret_name);
    }

    #[test]
    fn long_names_fit_and_stay_distinct() {
        let ns = "n".repeat(63);
        let long = "x".repeat(253);
        let mut other = long.clone();
        other.replace_range(250.., "yyy");
        let a = names(&ns, &long, "uid");
        let b = names(&ns, &other, "uid");
        for db in [&a, &b] {
            assert!(db.role.len() <= MAX_IDENTIFIER_LEN, "{}", db.role);
            validate_identifier(&db.role).unwrap();
            assert!(db.secret_name.len() <= MAX_SECRET_NAME_LEN);
            assert!(switchboard_crds::format::is_dns_subdomain(&db.secret_name));
            assert!(db.secret_name.ends_with("-database"));
        }
        assert_ne!(a.role, b.role);
        assert_ne!(a.secret_name, b.secret_name);
        // The namespace does not eat the whole budget: the tenant's name shows.
        assert!(a.role.contains("_xxxx"), "{}", a.role);
    }

    #[test]
    fn odd_characters_become_underscores_never_doubled() {
        let db = names("x--y", "-9.lives-", "uid");
        validate_identifier(&db.role).unwrap();
        assert!(!db.role.contains("__"), "{}", db.role);
        assert!(db.role.starts_with("sb_x_y_9_lives_"), "{}", db.role);
    }

    #[test]
    fn identifiers_are_checked() {
        for bad in [
            "public",
            "pg_catalog",
            "postgres",
            "sb_Upper",
            "sb_a\"; DROP ROLE x; --",
            "sb_é",
            &format!("sb_{}", "a".repeat(61)),
        ] {
            let err = validate_identifier(bad).unwrap_err();
            assert_eq!(err.category(), "InvalidName", "{bad}");
        }
        validate_identifier("sb_ok_1").unwrap();
        validate_identifier(&format!("sb_{}", "a".repeat(60))).unwrap();
    }

    #[test]
    fn status_names_are_validated() {
        let good = names("acme", "dental", "uid").to_status();
        assert_eq!(
            TenantDatabase::from_status(&good).unwrap(),
            names("acme", "dental", "uid")
        );
        let mut hostile = good.clone();
        hostile.schema = "public".into();
        assert!(TenantDatabase::from_status(&hostile).is_err());
        let mut hostile = good;
        hostile.secret_name = "../x".into();
        assert!(TenantDatabase::from_status(&hostile).is_err());
    }

    fn ownership(ns: &str, name: &str, uid: &str) -> Ownership {
        Ownership {
            uid: uid.into(),
            namespace: ns.into(),
            name: name.into(),
            derived: names(ns, name, uid),
        }
    }

    #[test]
    fn only_marked_or_derived_objects_are_ours() {
        let a = ownership("team-a", "dental", "uid-a");
        let b = ownership("team-b", "dental", "uid-b");
        let mine = a.derived.role.clone();
        let theirs = b.derived.role.clone();
        for kind in [ObjectKind::Role, ObjectKind::Schema] {
            // Marked: the UID decides, whatever the name.
            assert_eq!(a.judge(kind, &theirs, Some(&a.comment())), Claim::Ours);
            assert_eq!(a.judge(kind, &mine, Some(&b.comment())), Claim::Foreign);
            assert_eq!(a.judge(kind, &mine, Some("hand-made")), Claim::Foreign);
            // Unmarked (created before marking): only under the derived name.
            assert_eq!(a.judge(kind, &mine, None), Claim::Adopt);
            assert_eq!(a.judge(kind, &theirs, None), Claim::Foreign);
        }
        // A UID that merely starts like ours is not ours.
        let longer = ownership("team-a", "dental", "uid-a2");
        assert_eq!(
            a.judge(ObjectKind::Role, &mine, Some(&longer.comment())),
            Claim::Foreign
        );
        assert_eq!(
            a.comment(),
            "switchboard tenant uid=uid-a ns=team-a name=dental"
        );
    }

    /// SQL quotes names with `pg_escape::quote_identifier` (Postgres's `quote_ident`):
    /// a valid name stays as it is, which Postgres reads as the same identifier (it is
    /// lowercase and no keyword); anything else is quoted, quotes doubled.
    #[test]
    fn valid_names_mean_themselves_in_sql() {
        let db = names("acme", "dental", "0b6e2a6c-1111-4a4a-8888-000000000001");
        for name in [&db.role, &db.schema] {
            validate_identifier(name).unwrap();
            assert_eq!(pg_escape::quote_identifier(name), name.as_str());
        }
        assert_eq!(pg_escape::quote_identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(pg_escape::quote_identifier("Sb_A"), "\"Sb_A\"");
    }
}
