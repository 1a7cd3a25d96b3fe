//! Switchboard's AWS clients, shared by the gateway and the operator.
//!
//! - [`config`]: the one way an AWS SDK configuration is built here: the default
//!   credential chain (environment, profile, web identity = IRSA on EKS, instance
//!   metadata), the SDK's standard endpoint variables (`AWS_ENDPOINT_URL`,
//!   `AWS_ENDPOINT_URL_<SERVICE>`), and an HTTP client on rustls with ring (no aws-lc-rs:
//!   one crypto provider in the whole build).
//!
//! (Branch wt-recordings carries only `config`, byte for byte wt-aws's; the merged crate
//! is wt-aws's, which adds Secrets Manager and KMS.)

pub mod config;

pub use config::{AwsOptions, load_config};
