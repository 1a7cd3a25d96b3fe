//! Where tenants' gateways connect: the shared server and database of the admin URL,
//! and the connection URL a tenant's gateway gets.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::error::DatabaseError;
use super::names::TenantDatabase;

/// The shared Postgres the tenants' roles log in to: the admin URL's server and
/// database, without the admin's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminTarget {
    /// Host name or IP address (the gateways must reach it under this name).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database holding every tenant's schema.
    pub database: String,
    /// The admin URL's `sslmode` (`None`: not set, or `prefer`). Only `disable`,
    /// `verify-ca` and `verify-full` are written into the tenants' URLs (see
    /// [`Self::tenant_url`]).
    pub ssl_mode: Option<String>,
}

impl AdminTarget {
    /// Reads the target from the operator's admin URL
    /// (`postgres://admin:pw@host:port/db?sslmode=require`). Without a database in the
    /// URL, Postgres uses the one named like the user, and so do the tenants.
    ///
    /// # Errors
    ///
    /// [`DatabaseError::InvalidAdminUrl`] when the URL does not parse or names a Unix
    /// socket (the gateways run in other pods and need a network address).
    pub fn from_admin_url(url: &str) -> Result<Self, DatabaseError> {
        let options = parse_admin_url(url)?;
        Self::from_options(&options)
    }

    pub(super) fn from_options(options: &PgConnectOptions) -> Result<Self, DatabaseError> {
        if options.get_socket().is_some() || options.get_host().starts_with('/') {
            return Err(DatabaseError::InvalidAdminUrl {
                reason: "names a Unix socket; gateways in other pods need a host name".into(),
            });
        }
        let database = options
            .get_database()
            .unwrap_or_else(|| options.get_username())
            .to_string();
        let ssl_mode = match options.get_ssl_mode() {
            PgSslMode::Prefer => None,
            PgSslMode::Disable => Some("disable"),
            PgSslMode::Allow => Some("allow"),
            PgSslMode::Require => Some("require"),
            PgSslMode::VerifyCa => Some("verify-ca"),
            PgSslMode::VerifyFull => Some("verify-full"),
        };
        Ok(Self {
            host: options.get_host().to_string(),
            port: options.get_port(),
            database,
            ssl_mode: ssl_mode.map(str::to_string),
        })
    }

    /// The URL a tenant's gateway connects with: the tenant's role and password, this
    /// server and database, and the tenant's schema as the search path, in the form the
    /// gateway's store reads (`?options=-c%20search_path%3D<schema>`).
    ///
    /// An `sslmode` in the URL overrides the gateway's cluster default, `verify-full`
    /// (`crate::tenant::build::database_tls`). So the admin URL's mode is passed on only
    /// when it is `disable` (a server without TLS: the test Postgres, a throw-away
    /// in-cluster one; the admin said so explicitly) or as strict as the default
    /// (`verify-ca`, `verify-full`). The weaker `allow`, `prefer` and `require`, common
    /// in admin URLs (RDS's examples use `require`), are left out: they would turn the
    /// gateways' certificate check off.
    pub fn tenant_url(&self, db: &TenantDatabase, password: &str) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host) // IPv6 literal
        } else {
            self.host.clone()
        };
        let mut url = format!(
            "postgres://{}:{}@{host}:{}/{}?options=-c%20search_path%3D{}",
            encode(&db.role),
            encode(password),
            self.port,
            encode(&self.database),
            encode(&db.schema),
        );
        if let Some(mode) = self
            .ssl_mode
            .as_deref()
            .filter(|m| matches!(*m, "disable" | "verify-ca" | "verify-full"))
        {
            url.push_str("&sslmode=");
            url.push_str(&encode(mode));
        }
        url
    }

    /// Whether `url` is one [`Self::tenant_url`] writes for `db`, whatever its (non-empty)
    /// password: this server, port and database, `db`'s role as the user, `db`'s schema
    /// as the search path, this sslmode. What a tenant's database Secret must hold for
    /// the operator to use it: a Secret an editor forged (an owner reference is easy to
    /// write) can then only send the operator to the tenant's own role and schema on
    /// the operator's own server, which grants nothing the tenant does not have.
    pub fn is_tenant_url(&self, db: &TenantDatabase, url: &str) -> bool {
        let expected = self.tenant_url(db, "");
        // "postgres://<role>:" + password + "@<rest>"; role and password are
        // percent-encoded, so neither holds ':' or '@'.
        let Some((prefix, rest)) = expected.split_once(":@") else {
            return false;
        };
        url.strip_prefix(prefix)
            .and_then(|u| u.strip_prefix(':'))
            .and_then(|u| u.split_once('@'))
            .is_some_and(|(password, tail)| !password.is_empty() && tail == rest)
    }
}

/// Parses the admin URL without ever echoing it (it holds the admin password).
pub(super) fn parse_admin_url(url: &str) -> Result<PgConnectOptions, DatabaseError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(DatabaseError::InvalidAdminUrl {
            reason: "expected postgres://…".into(),
        });
    }
    PgConnectOptions::from_str(url).map_err(|e| DatabaseError::InvalidAdminUrl {
        // sqlx's message names the bad part, not the whole URL.
        reason: e.to_string(),
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> TenantDatabase {
        TenantDatabase {
            role: "sb_acme_dental_0123abcd".into(),
            schema: "sb_acme_dental_0123abcd".into(),
            secret_name: "dental-database".into(),
        }
    }

    #[test]
    fn only_the_url_the_operator_writes_is_a_tenant_url() {
        let target = AdminTarget::from_admin_url(
            "postgres://admin:pw@db.internal:5433/voice?sslmode=verify-full",
        )
        .unwrap();
        let written = target.tenant_url(&db(), "s3cr:t@/x");
        assert!(target.is_tenant_url(&db(), &written), "{written}");
        let other = TenantDatabase {
            role: "sb_other_tenant_99999999".into(),
            schema: "sb_other_tenant_99999999".into(),
            secret_name: "other-database".into(),
        };
        for forged in [
            target.tenant_url(&db(), ""),
            target.tenant_url(&other, "pw"),
            written.replace("db.internal", "attacker.example"),
            written.replace(":5433/", ":5432/"),
            written.replace("/voice?", "/postgres?"),
            written.replace("&sslmode=verify-full", "&sslmode=disable"),
            written.replace("sb_acme_dental_0123abcd:", "postgres:"),
            format!("{written}&options=-c%20role%3Dadmin"),
            "postgres://admin:pw@db.internal:5433/voice".to_string(),
            String::new(),
        ] {
            assert!(!target.is_tenant_url(&db(), &forged), "{forged}");
        }
    }

    #[test]
    fn target_drops_admin_credentials() {
        let t = AdminTarget::from_admin_url(
            "postgres://master:s3cr%40t@db.example.com:5433/voice?sslmode=require",
        )
        .unwrap();
        assert_eq!(
            t,
            AdminTarget {
                host: "db.example.com".into(),
                port: 5433,
                database: "voice".into(),
                ssl_mode: Some("require".into()),
            }
        );
        let url = t.tenant_url(&db(), "pw");
        assert_eq!(
            url,
            "postgres://sb_acme_dental_0123abcd:pw@db.example.com:5433/voice\
             ?options=-c%20search_path%3Dsb_acme_dental_0123abcd",
            "require would override the gateways' verify-full"
        );
        assert!(!url.contains("master") && !url.contains("s3cr"));
    }

    #[test]
    fn only_disable_and_verifying_modes_reach_the_tenant_url() {
        for (mode, passed) in [
            ("disable", true),
            ("allow", false),
            ("prefer", false),
            ("require", false),
            ("verify-ca", true),
            ("verify-full", true),
        ] {
            let t = AdminTarget::from_admin_url(&format!("postgres://m:p@db/voice?sslmode={mode}"))
                .unwrap();
            let url = t.tenant_url(&db(), "pw");
            let parsed = PgConnectOptions::from_str(&url).unwrap();
            assert_eq!(url.contains("sslmode="), passed, "{mode}: {url}");
            if passed {
                assert_eq!(
                    format!("{:?}", parsed.get_ssl_mode()).to_lowercase(),
                    mode.replace('-', "")
                );
            }
        }
    }

    #[test]
    fn database_defaults_to_the_admin_user() {
        let t = AdminTarget::from_admin_url("postgres://master@10.0.0.5").unwrap();
        assert_eq!(t.database, "master");
        assert_eq!(t.port, 5432);
        assert_eq!(t.ssl_mode, None);
    }

    #[test]
    fn tenant_url_parses_back_with_its_schema() {
        let t = AdminTarget {
            host: "::1".into(),
            port: 5432,
            database: "my db".into(),
            ssl_mode: None,
        };
        let url = t.tenant_url(&db(), "p@ss:w/rd");
        let parsed = PgConnectOptions::from_str(&url).unwrap();
        assert_eq!(parsed.get_username(), "sb_acme_dental_0123abcd");
        assert_eq!(parsed.get_database(), Some("my db"));
        assert_eq!(parsed.get_host().trim_matches(['[', ']']), "::1");
        assert_eq!(
            parsed.get_options(),
            Some("-c search_path=sb_acme_dental_0123abcd")
        );
    }

    #[test]
    fn bad_admin_urls_are_refused_without_echoing_them() {
        for url in ["mysql://root:hunter2@x/db", "hunter2"] {
            let err = AdminTarget::from_admin_url(url).unwrap_err();
            assert_eq!(err.category(), "InvalidOperatorConfig");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        let err =
            AdminTarget::from_admin_url("postgres://u:p@%2Fvar%2Frun%2Fpostgresql/db").unwrap_err();
        assert_eq!(err.category(), "InvalidOperatorConfig");
    }
}
