//! `spec.encryption`: per-tenant field encryption of call records with AWS KMS.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format::NOT_BLANK_PATTERN;

/// Field-level encryption of the tenant's call records: transcript text and tool-call
/// arguments and outputs are sealed by the gateway before they leave it (envelope
/// encryption: a data key per call from KMS `GenerateDataKey` with the encryption
/// context `{tenant, call_sid}`, AES-256-GCM), and opened on read.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// The KMS key (id, ARN, alias name or alias ARN) data keys are generated under.
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = 2048))]
    pub kms_key_id: String,
}
