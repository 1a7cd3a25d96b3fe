//! Switchboard's AWS clients, shared by the gateway and the operator.
//!
//! - [`config`]: the one way an AWS SDK configuration is built here: the default
//!   credential chain (environment, profile, web identity = IRSA on EKS, instance
//!   metadata), the SDK's standard endpoint variables (`AWS_ENDPOINT_URL`,
//!   `AWS_ENDPOINT_URL_<SERVICE>`), and an HTTP client on rustls with ring (no aws-lc-rs:
//!   one crypto provider in the whole build).
//! - [`secrets`]: reading a secret from Secrets Manager (a field of a JSON secret, a
//!   version stage).
//! - [`envelope`]: envelope encryption: data keys from KMS `GenerateDataKey` bound to an
//!   encryption context, fields sealed with AES-256-GCM (ring).
//!
//! Errors say which resource and why, never a secret value.

pub mod config;
pub mod envelope;
mod error;
pub mod secrets;

pub use config::{AwsOptions, load_config};
pub use envelope::{CryptoError, DataKey, Kms};
pub use error::{AwsError, AwsErrorKind};
pub use secrets::SecretsManager;
