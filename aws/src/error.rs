//! One error type for every AWS call, classified so callers can decide (retry, refuse,
//! report) without parsing messages.

use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// What kind of failure an [`AwsError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The endpoint could not be reached or timed out: worth retrying.
    Unreachable,
    /// No usable credentials, or the policy does not allow the call.
    AccessDenied,
    /// The secret, version or key does not exist.
    NotFound,
    /// KMS refused to decrypt: wrong key or wrong encryption context (never retried: the
    /// same input fails the same way).
    InvalidCiphertext,
    /// The value is not what was asked for (not JSON, no such field, empty).
    Invalid,
    /// Anything else the service answered.
    Other,
}

/// A failed AWS call: the resource, the kind, the service's code and message. Never a
/// secret value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{resource}: {message}")]
pub struct AwsError {
    /// What failed.
    pub kind: AwsErrorKind,
    /// The secret id or key id the call was about.
    pub resource: String,
    /// Why (the service's error code and message, or the transport error).
    pub message: String,
}

impl AwsError {
    /// An error of `kind` about `resource`.
    pub fn new(kind: AwsErrorKind, resource: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            resource: resource.to_string(),
            message: message.into(),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, AwsErrorKind::Unreachable | AwsErrorKind::Other)
    }
}

/// Whether loading credentials failed somewhere in the cause chain.
fn credentials_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Classifies an SDK error of any service (their `SdkError`s share one generic type).
pub(crate) fn classify<E, R>(resource: &str, e: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match &e {
        SdkError::TimeoutError(_) => AwsErrorKind::Unreachable,
        SdkError::DispatchFailure(_) if credentials_failed(&e) => AwsErrorKind::AccessDenied,
        SdkError::DispatchFailure(_) => AwsErrorKind::Unreachable,
        SdkError::ServiceError(s) => match s.err().code() {
            Some("ResourceNotFoundException" | "NotFoundException") => AwsErrorKind::NotFound,
            Some(
                "InvalidCiphertextException" | "IncorrectKeyException" | "InvalidKeyUsageException",
            ) => AwsErrorKind::InvalidCiphertext,
            Some(
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "KMSInvalidStateException"
                | "DisabledException",
            ) => AwsErrorKind::AccessDenied,
            _ => AwsErrorKind::Other,
        },
        _ => AwsErrorKind::Other,
    };
    let message = match &e {
        SdkError::ServiceError(s) => format!(
            "{}: {}",
            s.err().code().unwrap_or("error"),
            s.err().message().unwrap_or("no message")
        ),
        _ => DisplayErrorContext(&e).to_string(),
    };
    AwsError::new(kind, resource, message)
}
