//! Running both controllers in one process.
//!
//! [`run_controllers`] runs the VoiceTenant and KnowledgeBase controllers until its
//! shutdown future resolves; [`crate::leader::run`] wraps it in leader election. Tests
//! start either in-process against the simulated API server, with short backoffs from
//! [`OperatorConfig`].

use std::future::Future;
use std::sync::Arc;

use kube::Client;

use crate::database::{DatabaseError, Provisioner, ProvisionerConfig};
use crate::knowledge::{EngineConfig, KnowledgeControllerConfig};
use crate::metrics::{Health, Metrics};
use crate::tenant::config::OperatorConfig;

/// Why the controllers could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database admin URL is unusable.
    #[error("database admin connection: {0}")]
    Database(#[from] DatabaseError),
    /// Leader election failed to start (the Lease could not be read or created).
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    /// The HTTP endpoint failed.
    #[error("metrics endpoint: {0}")]
    Http(#[from] std::io::Error),
}

/// Runs the VoiceTenant and KnowledgeBase controllers until `shutdown` resolves (then
/// finishes the reconciles in flight).
///
/// # Errors
///
/// [`RunError::Database`] when the admin URL is configured but unusable.
pub async fn run_controllers(
    client: Client,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    // One shutdown for both controllers.
    let shutdown = futures_util::FutureExt::shared(Box::pin(shutdown));
    let provisioner = match &config.database_admin_url {
        Some(url) => Some(Provisioner::with_config(
            url,
            &ProvisionerConfig {
                tls: config.pg_tls(),
                ..ProvisionerConfig::default()
            },
        )?),
        None => None,
    };
    let knowledge = tokio::spawn(crate::knowledge::run(
        client.clone(),
        KnowledgeControllerConfig {
            namespace: config.watch_namespace.clone(),
            engine: EngineConfig {
                model_dir: config.model_dir.clone(),
                embed_concurrency: 1,
                openai_retries: None,
            },
            first_backoff: Some(config.retry_min),
            metrics: Some(metrics.clone()),
            s3: config.s3.clone(),
            identity: Some(config.identity.clone()),
            pg_tls: config.pg_tls(),
            database_target: provisioner.as_ref().map(|p| p.target().clone()),
            secrets_manager: crate::knowledge::SecretsManagerSettings {
                access: config.secrets_manager_access.clone(),
                aws: config.aws.clone(),
            },
            endpoints: config.references.endpoints.clone(),
        },
        shutdown.clone(),
    ));
    crate::tenant::controller::run(client, config, provisioner, metrics, health, shutdown).await;
    let _ = knowledge.await;
    Ok(())
}
