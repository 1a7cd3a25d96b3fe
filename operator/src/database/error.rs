//! Why provisioning or dropping a tenant's database failed, sorted into categories a
//! controller can act on.

use sqlx::migrate::MigrateError;

use crate::owner::MetadataError;

/// SQLSTATE `3D000`: the database named in the connection does not exist.
pub(super) const INVALID_CATALOG_NAME: &str = "3D000";

/// A failure of [`super::Provisioner`] or of deriving a tenant's names.
///
/// [`Self::category`] is the Event reason, the `Degraded` condition's reason and the
/// metric label. To choose between retrying and reporting, use [`Self::is_transient`].
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The tenant lacks the metadata names are derived from.
    #[error(transparent)]
    Tenant(#[from] MetadataError),
    /// A role, schema or Secret name is not one this operator creates.
    #[error("{name:?} is not a valid tenant database name: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The admin URL cannot be used (not a `postgres://` URL, a socket path, …).
    #[error("invalid database admin URL: {reason}")]
    InvalidAdminUrl {
        /// What is wrong (never the URL itself: it holds the admin password).
        reason: String,
    },
    /// The server could not be reached in time: refused or timed-out connection, TLS
    /// failure, closed socket. Transient: retry with backoff.
    #[error("database unreachable: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// The server is there but the statement gave up waiting: a lock held elsewhere
    /// (`statement_timeout`, `lock_timeout`), a deadlock or serialization failure.
    /// Transient: retry with backoff.
    #[error("database busy: {0}")]
    Busy(#[source] sqlx::Error),
    /// The server answered but refused: authentication failed, the admin lacks a
    /// privilege, or a statement failed. Usually needs a human.
    #[error("database refused: {0}")]
    Refused(#[source] sqlx::Error),
    /// The database named in the admin URL does not exist (SQLSTATE 3D000).
    #[error("the database in the admin URL does not exist: {0}")]
    DatabaseMissing(#[source] sqlx::Error),
    /// The tenant's schema exists but belongs to another role: it was not created for
    /// this tenant, so the operator neither adopts nor drops it.
    #[error("schema {schema} exists and is owned by {owner}, not by {role}")]
    SchemaConflict {
        /// The schema.
        schema: String,
        /// Its owner.
        owner: String,
        /// The tenant's role that should own it.
        role: String,
    },
    /// A role or schema the operator was asked to use or drop is not provably this
    /// tenant's ([`super::Ownership::judge`]): its comment names another tenant, or it is
    /// unmarked under a name this tenant does not derive. Nothing is used or dropped.
    #[error(
        "{kind} {name} does not belong to tenant {tenant} (uid {uid}): {found}; the operator neither uses nor drops it"
    )]
    OwnershipMismatch {
        /// `role` or `schema`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// `namespace/name` of the tenant.
        tenant: String,
        /// The tenant's UID.
        uid: String,
        /// What the object's comment says (or that it has none).
        found: String,
    },
    /// The gateway's migrations did not apply in the tenant's schema.
    #[error("migrating the tenant schema failed: {0}")]
    MigrationFailed(#[source] MigrateError),
}

impl DatabaseError {
    /// A short CamelCase category, from a small fixed set: `DatabaseUnreachable`,
    /// `DatabaseBusy`, `DatabaseRefused`, `DatabaseMissing`, `SchemaConflict`, `MigrationFailed`, `DatabaseOwnershipMismatch`,
    /// `InvalidName`, `InvalidOperatorConfig`, or `MissingMetadata`.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Tenant(e) => e.category(),
            Self::InvalidName { .. } => "InvalidName",
            Self::InvalidAdminUrl { .. } => "InvalidOperatorConfig",
            Self::Unreachable(_) => "DatabaseUnreachable",
            Self::Busy(_) => "DatabaseBusy",
            Self::Refused(_) => "DatabaseRefused",
            Self::DatabaseMissing(_) => "DatabaseMissing",
            Self::SchemaConflict { .. } => "SchemaConflict",
            Self::MigrationFailed(_) => "MigrationFailed",
            Self::OwnershipMismatch { .. } => "DatabaseOwnershipMismatch",
        }
    }

    /// Whether the same call may succeed later without anyone changing anything: the
    /// database was unreachable or busy. Everything else needs a change of spec, config
    /// or database first (retrying is harmless, but should be slow).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Busy(_))
    }

    /// Whether the server could not be reached at all (as opposed to answering). During
    /// a delete, the difference between "the database is down" and "it said no".
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }

    /// Classifies a driver error.
    pub(super) fn from_sqlx(err: sqlx::Error) -> Self {
        if sqlx_unreachable(&err) {
            Self::Unreachable(err)
        } else if sqlx_busy(&err) {
            Self::Busy(err)
        } else if sqlstate(&err).as_deref() == Some(INVALID_CATALOG_NAME) {
            Self::DatabaseMissing(err)
        } else {
            Self::Refused(err)
        }
    }

    /// Classifies a migration error, keeping an unreachable server apart.
    pub(super) fn from_migrate(err: MigrateError) -> Self {
        match err {
            MigrateError::Execute(e) if sqlx_unreachable(&e) => Self::Unreachable(e),
            MigrateError::Execute(e) if sqlx_busy(&e) => Self::Busy(e),
            other => Self::MigrationFailed(other),
        }
    }
}

impl From<sqlx::Error> for DatabaseError {
    fn from(err: sqlx::Error) -> Self {
        Self::from_sqlx(err)
    }
}

/// The SQLSTATE of a server error, if `err` is one.
pub(super) fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn sqlx_unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        // A connection closed mid-handshake (a proxy or load balancer with no server
        // behind it) reads as a malformed answer to the SSLRequest.
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // 57P01..57P03: admin shutdown, crash shutdown, cannot connect now (starting up);
        // 53300: too many connections. The server exists and will take us later.
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("57P01" | "57P02" | "57P03" | "53300")
        ),
        _ => false,
    }
}

/// 57014: statement timeout (or cancel); 55P03: lock not available; 40001, 40P01:
/// serialization failure, deadlock.
fn sqlx_busy(err: &sqlx::Error) -> bool {
    matches!(
        sqlstate(err).as_deref(),
        Some("57014" | "55P03" | "40001" | "40P01")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unreachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = DatabaseError::from_sqlx(sqlx::Error::Io(io));
        assert_eq!(err.category(), "DatabaseUnreachable");
        assert!(err.is_transient());
        let err = DatabaseError::from_sqlx(sqlx::Error::PoolTimedOut);
        assert_eq!(err.category(), "DatabaseUnreachable");
        let err = DatabaseError::from_migrate(MigrateError::Execute(sqlx::Error::PoolTimedOut));
        assert_eq!(err.category(), "DatabaseUnreachable");
    }

    #[test]
    fn other_errors_are_not_transient() {
        let err = DatabaseError::from_sqlx(sqlx::Error::RowNotFound);
        assert_eq!(err.category(), "DatabaseRefused");
        assert!(!err.is_transient());
        let err = DatabaseError::from_migrate(MigrateError::VersionMissing(7));
        assert_eq!(err.category(), "MigrationFailed");
        assert!(!err.is_transient());
    }
}
