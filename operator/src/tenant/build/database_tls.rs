//! How a gateway in the cluster connects to Postgres over TLS.
//!
//! In cluster mode a gateway with a Postgres URL verifies the server: the Deployment sets
//! `PGSSLMODE=verify-full` (certificate chain and host name), and, when the operator has
//! a CA bundle (`--database-ca-file`, the chart's `database.caBundle`; for RDS the AWS
//! global bundle), the bundle goes into the tenant's ConfigMap under [`CA_FILE`] and
//! `PGSSLROOTCERT` points at it. These are libpq's variables, which the gateway's driver
//! (sqlx) reads as the defaults of every URL: an `sslmode` (or `sslrootcert`) written in
//! the URL itself wins. So a Postgres without TLS (the test server, a throw-away
//! in-cluster Postgres) keeps working with an explicit `sslmode=disable` in its URL,
//! and the laptop mode (no operator, no variables) keeps the driver's `prefer`.

use super::CONFIG_DIR;
use crate::tenant::inputs::BuildInputs;

/// Key of the CA bundle in the ConfigMap, and its file name in [`CONFIG_DIR`].
pub const CA_FILE: &str = "database-ca.pem";
/// The `sslmode` a gateway in the cluster uses unless its URL names one.
pub const CLUSTER_SSL_MODE: &str = "verify-full";

/// The environment of a gateway that connects to Postgres: `PGSSLMODE`, and
/// `PGSSLROOTCERT` when the operator has a CA bundle.
pub fn tls_env(ctx: &BuildInputs) -> Vec<(&'static str, String)> {
    let mut env = vec![("PGSSLMODE", CLUSTER_SSL_MODE.to_string())];
    if ctx.database_ca.is_some() {
        env.push(("PGSSLROOTCERT", format!("{CONFIG_DIR}/{CA_FILE}")));
    }
    env
}

/// The CA bundle to put into the ConfigMap: the operator's, when the gateway connects to
/// Postgres at all (`has_database`).
pub fn ca_bundle(ctx: &BuildInputs, has_database: bool) -> Option<&str> {
    ctx.database_ca.as_deref().filter(|_| has_database)
}
