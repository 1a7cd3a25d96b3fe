//! The gateway's AWS clients, built on first use (a laptop that names no AWS resource
//! never loads a configuration): Secrets Manager for secret references, KMS for the
//! data keys of encrypted call records. One SDK configuration for both, from
//! [`switchboard_aws::load_config`] (default credential chain, IRSA on EKS, the standard
//! `AWS_ENDPOINT_URL*` variables).

use switchboard_aws::{AwsOptions, Kms, SecretsManager};
use tokio::sync::OnceCell;

/// Lazily built AWS clients.
#[derive(Debug, Default)]
pub struct Aws {
    options: AwsOptions,
    config: OnceCell<aws_config::SdkConfig>,
}

impl Aws {
    /// Clients configured with `options` (all `None`: the default chain alone).
    pub fn new(options: AwsOptions) -> Self {
        Self {
            options,
            config: OnceCell::new(),
        }
    }

    async fn config(&self) -> &aws_config::SdkConfig {
        self.config
            .get_or_init(|| switchboard_aws::load_config(&self.options))
            .await
    }

    /// A Secrets Manager client (cheap: clients share the configuration's connections).
    pub async fn secrets_manager(&self) -> SecretsManager {
        SecretsManager::new(self.config().await)
    }

    /// A KMS client.
    pub async fn kms(&self) -> Kms {
        Kms::new(self.config().await)
    }
}
