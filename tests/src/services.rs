//! The services from outside the process that some tests need, each behind the shared
//! gate ([`switchboard_testenv`]): a missing one skips the test with a notice on a
//! developer's machine and fails it under `CI=true`.

use std::path::PathBuf;

/// How to start the test Postgres.
const POSTGRES_HOW: &str = "eval \"$(scripts/postgres.sh start)\"";

/// The test Postgres's admin URL (a superuser): `SWITCHBOARD_TEST_PG`, or the older name
/// `SWITCHBOARD_TEST_PG_URL`.
///
/// # Panics
/// When neither is set under `CI=true`.
pub fn postgres() -> Option<String> {
    switchboard_testenv::service_any(
        &["SWITCHBOARD_TEST_PG", "SWITCHBOARD_TEST_PG_URL"],
        POSTGRES_HOW,
    )
}

/// The all-MiniLM-L6-v2 model directory (`SWITCHBOARD_MODEL_DIR`).
///
/// # Panics
/// When it is unset under `CI=true`.
pub fn model_dir() -> Option<PathBuf> {
    switchboard_testenv::service_path(
        "SWITCHBOARD_MODEL_DIR",
        "export SWITCHBOARD_MODEL_DIR=\"$(scripts/model.sh)\"",
    )
}

/// moto's S3 server (`SWITCHBOARD_TEST_S3_URL`).
///
/// # Panics
/// When it is unset under `CI=true`.
pub fn s3() -> Option<String> {
    switchboard_testenv::service(
        "SWITCHBOARD_TEST_S3_URL",
        "eval \"$(scripts/moto.sh start)\"",
    )
}

/// moto's server for AWS APIs (`SWITCHBOARD_TEST_AWS_URL`, else the S3 one: the same
/// server serves S3, Secrets Manager and KMS).
///
/// # Panics
/// When neither is set under `CI=true`.
pub fn aws() -> Option<String> {
    switchboard_testenv::service_any(
        &["SWITCHBOARD_TEST_AWS_URL", "SWITCHBOARD_TEST_S3_URL"],
        "eval \"$(scripts/moto.sh start)\"",
    )
}

/// Gateway AWS options pointing every service at `url` (moto: any credentials, one region).
pub fn aws_options(url: &str) -> switchboard_aws::AwsOptions {
    switchboard_aws::AwsOptions {
        endpoint_url: Some(url.to_string()),
        region: Some("us-east-1".into()),
        credentials: Some(("testing".into(), "testing".into())),
    }
}

/// The Helm binary (`SWITCHBOARD_HELM`).
///
/// # Panics
/// When it is unset under `CI=true`.
pub fn helm() -> Option<PathBuf> {
    switchboard_testenv::service_path(
        "SWITCHBOARD_HELM",
        "export SWITCHBOARD_HELM=\"$(scripts/helm.sh)/helm\"",
    )
}

/// Debian's chromedriver (`SWITCHBOARD_CHROMEDRIVER`), which drives the `chromium` beside it.
///
/// # Panics
/// When it is unset under `CI=true`.
pub fn chromedriver() -> Option<PathBuf> {
    switchboard_testenv::service_path(
        "SWITCHBOARD_CHROMEDRIVER",
        "export SWITCHBOARD_CHROMEDRIVER=\"$(scripts/chromium.sh)\"",
    )
}
