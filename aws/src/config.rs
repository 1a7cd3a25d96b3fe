//! Building an AWS SDK configuration.
//!
//! The SDK's own loader does the work that matters: the default credential chain and
//! the standard endpoint variables (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_KMS`,
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL_S3`, …), region from
//! `AWS_REGION`/profile. What is added here: the HTTP client (hyper + rustls on ring,
//! never the SDK's default, which would bring aws-lc-rs), timeouts, and a region for
//! endpoint-only setups (moto, LocalStack) that name none.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Connecting to an AWS endpoint gives up after this long (then the SDK retries).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of one request gives up after this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Region signed for when an endpoint URL is set and nothing names a region (moto and
/// other AWS-compatible servers accept any; `us-east-1` is their default).
const ENDPOINT_DEFAULT_REGION: &str = "us-east-1";

/// Overrides of what the default chain would find; everything `None` in production.
#[derive(Clone, Default)]
pub struct AwsOptions {
    /// Endpoint of every service (instead of `AWS_ENDPOINT_URL`), e.g. moto's server in a
    /// test that must not change the process environment.
    pub endpoint_url: Option<String>,
    /// Region (instead of `AWS_REGION` / the profile's).
    pub region: Option<String>,
    /// Static credentials `(access key id, secret access key)` instead of the chain.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for AwsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsOptions")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("credentials", &self.credentials.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Whether any standard endpoint variable is set (then a missing region gets a default).
fn endpoint_variable_set() -> bool {
    std::env::vars_os().any(|(k, v)| {
        k.to_str()
            .is_some_and(|k| k == "AWS_ENDPOINT_URL" || k.starts_with("AWS_ENDPOINT_URL_"))
            && !v.is_empty()
    })
}

/// Loads the SDK configuration (may call STS or instance metadata for credentials later,
/// on first use; loading itself does not fail).
pub async fn load_config(options: &AwsOptions) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts);
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    if let Some(r) = &options.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some((id, secret)) = &options.credentials {
        loader = loader.credentials_provider(Credentials::new(
            id.clone(),
            secret.clone(),
            None,
            None,
            "switchboard-static",
        ));
    }
    let config = loader.load().await;
    if config.region().is_none() && (options.endpoint_url.is_some() || endpoint_variable_set()) {
        return config
            .into_builder()
            .region(Region::new(ENDPOINT_DEFAULT_REGION))
            .build();
    }
    config
}
