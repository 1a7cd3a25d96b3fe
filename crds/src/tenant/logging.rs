//! `spec.logging`: what a tenant's gateway may write to its logs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the tenant's gateway may write to its logs. Absent: nothing personal.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSpec {
    /// Write callers' and called numbers in full to info-level logs. Phone numbers are
    /// personal data: by default logs show only their last two digits (`***67`), enough
    /// to tell calls apart. Call records keep the full numbers either way.
    #[serde(default)]
    pub caller_numbers: bool,
}

impl crate::VoiceTenantSpec {
    /// Whether info-level logs may show caller numbers in full (`spec.logging.callerNumbers`).
    pub fn logs_caller_numbers(&self) -> bool {
        self.logging.as_ref().is_some_and(|l| l.caller_numbers)
    }
}
