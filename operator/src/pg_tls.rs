//! TLS of the operator's own Postgres connections: the admin connection
//! ([`crate::database::Provisioner`]) and a knowledge base's pgvector writes
//! ([`crate::knowledge::engine::Engine`]). In the cluster (the command line) a URL that
//! names no `sslmode` connects with `verify-full` (certificate chain and host name), as
//! the gateways do, against `--database-ca-file` when given (else the driver's built-in
//! roots). An `sslmode` written in the URL wins: a test Postgres without TLS says
//! `sslmode=disable`.

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// How the operator's own Postgres connections are secured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgTls {
    /// A URL without `sslmode` connects with `verify-full` (the command line's default;
    /// off in [`Default`], where the driver's `prefer` applies: no verification).
    pub verify_full_by_default: bool,
    /// PEM CA bundle the server's certificate must chain to (`--database-ca-file`).
    pub ca_pem: Option<String>,
}

impl PgTls {
    /// The cluster's policy: `verify-full` unless the URL names a mode, against `ca_pem`.
    pub fn cluster(ca_pem: Option<String>) -> Self {
        Self {
            verify_full_by_default: true,
            ca_pem,
        }
    }

    /// `options` (parsed from `url`) with this policy applied.
    pub fn apply(&self, url: &str, options: PgConnectOptions) -> PgConnectOptions {
        let mut options = options;
        if self.verify_full_by_default && !names_ssl_mode(url) {
            options = options.ssl_mode(PgSslMode::VerifyFull);
        }
        if let Some(ca) = &self.ca_pem {
            options = options.ssl_root_cert_from_pem(ca.as_bytes().to_vec());
        }
        options
    }
}

/// Whether the URL's query names an SSL mode (`sslmode` or sqlx's `ssl-mode`).
fn names_ssl_mode(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .filter_map(|pair| pair.split('=').next())
            .any(|k| k.eq_ignore_ascii_case("sslmode") || k.eq_ignore_ascii_case("ssl-mode"))
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn mode(tls: &PgTls, url: &str) -> String {
        let options = PgConnectOptions::from_str(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        format!("{:?}", tls.apply(url, options).get_ssl_mode())
    }

    #[test]
    fn verify_full_unless_the_url_names_a_mode() {
        let cluster = PgTls::cluster(None);
        assert_eq!(
            mode(&cluster, "postgres://u:p@db.example.com/voice"),
            "VerifyFull"
        );
        assert_eq!(
            mode(
                &cluster,
                "postgres://u:p@db.example.com/voice?options=-c%20x%3Dy"
            ),
            "VerifyFull"
        );
        assert_eq!(
            mode(
                &cluster,
                "postgres://u:p@db.example.com/voice?sslmode=disable"
            ),
            "Disable"
        );
        assert_eq!(
            mode(
                &cluster,
                "postgres://u@h/v?application_name=a&sslmode=verify-ca"
            ),
            "VerifyCa"
        );
        // Not in the cluster: the URL as written (the driver's default, prefer).
        assert_eq!(
            mode(&PgTls::default(), "postgres://u:p@db.example.com/voice"),
            "Prefer"
        );
    }
}
