//! `spec.recordings`: whether the gateway records calls, where the recordings go, how long
//! they are kept, and what the caller is told.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format::{
    NOT_BLANK_PATTERN, RECORDING_PREFIX_MAX, RECORDING_PREFIX_PATTERN, S3_BUCKET_PATTERN,
};

/// Longest disclosure sentence (it is spoken before the greeting on every call).
pub const RECORDING_DISCLOSURE_MAX: u32 = 500;
/// Longest KMS key reference (a key ARN, alias ARN, key id or `alias/…`).
const KMS_KEY_ID_MAX: u32 = 2048;

/// Call recording policy. Each recorded call becomes one two-channel WAV (caller left,
/// agent as the caller heard it right), uploaded after the call to
/// `<prefix>/<tenant>/<yyyy>/<mm>/<dd>/<CallSid>.wav` in `bucket`, or kept in the
/// gateway's data directory when no bucket is set.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingSpec {
    /// Record calls at all.
    #[serde(default)]
    pub enabled: bool,
    /// S3 bucket (production); absent keeps recordings in the gateway's data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = S3_BUCKET_PATTERN))]
    pub bucket: Option<String>,
    /// Object key prefix (leading and trailing `/` are ignored): `/`-separated segments of
    /// A-Z, a-z, 0-9, '.', '_', '-', no '.' or '..' segment (it is also part of file
    /// paths on a laptop), at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = RECORDING_PREFIX_PATTERN), length(max = RECORDING_PREFIX_MAX))]
    pub prefix: Option<String>,
    /// Days to keep recordings (0 = forever). The gateway deletes older recordings under
    /// the tenant's prefix and clears their key from the call records.
    #[serde(default)]
    pub retention_days: u32,
    /// KMS key (id, ARN or alias) the objects are encrypted with (SSE-KMS). Absent: the
    /// bucket's default encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = KMS_KEY_ID_MAX))]
    pub kms_key_id: Option<String>,
    /// A sentence the greeting starts with while recordings are enabled ("This call may
    /// be recorded."). The greeting then cannot be interrupted, so the caller hears it
    /// whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = RECORDING_DISCLOSURE_MAX))]
    pub disclosure: Option<String>,
}

impl RecordingSpec {
    /// The disclosure to speak, when recording is on and one is set.
    pub fn active_disclosure(&self) -> Option<&str> {
        self.disclosure
            .as_deref()
            .map(str::trim)
            .filter(|d| self.enabled && !d.is_empty())
    }
}
