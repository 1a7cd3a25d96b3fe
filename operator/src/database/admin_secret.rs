//! The database admin URL from AWS Secrets Manager (`--database-admin-url-secret-id`),
//! read once when the operator starts, before anything derives from the URL (the
//! provisioner, the gateways' NetworkPolicy port).

use switchboard_aws::{AwsError, AwsOptions, SecretsManager};
use switchboard_crds::AwsSecretsManagerRef;

/// Reads the admin URL `secret` names (a field of a JSON secret with `key`).
///
/// # Errors
/// [`AwsError`] naming the secret and the problem, never the value.
pub async fn read_admin_url(
    secret: &AwsSecretsManagerRef,
    aws: &AwsOptions,
) -> Result<String, AwsError> {
    let config = switchboard_aws::load_config(aws).await;
    SecretsManager::new(&config)
        .get(
            &secret.secret_id,
            secret.key.as_deref(),
            secret.version_stage.as_deref(),
        )
        .await
}
