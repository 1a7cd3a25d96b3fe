//! `spec.pricing`: the prices a tenant's call costs are computed with, overriding the
//! gateway's table of known Realtime models.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Prices in US dollars. Token prices are per million tokens, as OpenAI publishes them.
/// Each field set replaces the gateway's price for the tenant's model; a model the gateway
/// has no price for needs all six token prices here, or its calls carry no cost.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricingSpec {
    /// Text input, per 1M tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub text_input: Option<f64>,
    /// Cached text input, per 1M tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub text_cached_input: Option<f64>,
    /// Text output, per 1M tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub text_output: Option<f64>,
    /// Audio input, per 1M tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub audio_input: Option<f64>,
    /// Cached audio input, per 1M tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub audio_cached_input: Option<f64>,
    /// Audio output, per 1M tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub audio_output: Option<f64>,
    /// Per minute of call (e.g. the telephony carrier's rate); default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub per_minute: Option<f64>,
}

impl PricingSpec {
    /// Every price set, with its field name (for validation).
    pub fn fields(&self) -> [(&'static str, Option<f64>); 7] {
        [
            ("textInput", self.text_input),
            ("textCachedInput", self.text_cached_input),
            ("textOutput", self.text_output),
            ("audioInput", self.audio_input),
            ("audioCachedInput", self.audio_cached_input),
            ("audioOutput", self.audio_output),
            ("perMinute", self.per_minute),
        ]
    }
}
