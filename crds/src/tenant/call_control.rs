//! How a call leaves the agent: `spec.agent.transfer` (the people the agent may hand a
//! caller to) and `spec.agent.fallback` (what a caller hears when the agent cannot go on).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format::{
    API_KEY_SID_PATTERN, E164_PATTERN, NOT_BLANK_PATTERN, SIP_URI_PATTERN, TRANSFER_NAME_PATTERN,
};
use crate::limits::{
    APOLOGY_MAX, RECORDING_MAX_SECONDS, RING_TIMEOUT_MAX, RING_TIMEOUT_MIN,
    TRANSFER_DESCRIPTION_MAX, TRANSFER_NAME_MAX,
};
use crate::secret::SecretRef;

/// One person (or queue, or desk) the agent may transfer a caller to. The model sees the
/// `name` and `description`; the caller is dialled at the `number` or `sip` address.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.number) != has(self.sip)",
    "message": "set exactly one of number and sip"
}]))]
pub struct TransferTarget {
    /// The name the model uses in `transfer_call` (lowercase letters, digits, `-`, `_`;
    /// starting with a letter; at most 64), e.g. `front-desk`.
    #[schemars(regex(pattern = TRANSFER_NAME_PATTERN), length(max = TRANSFER_NAME_MAX))]
    pub name: String,
    /// Phone number to dial (E.164).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = E164_PATTERN))]
    pub number: Option<String>,
    /// SIP URI to dial instead of a number (`sip:` or `sips:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIP_URI_PATTERN))]
    pub sip: Option<String>,
    /// When the agent should transfer here (the model reads it), e.g. "billing questions
    /// and refunds".
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = TRANSFER_DESCRIPTION_MAX))]
    pub description: String,
    /// Caller ID shown to the person (E.164, a number of the tenant's Twilio account).
    /// Default: the caller's own number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = E164_PATTERN))]
    pub caller_id: Option<String>,
    /// Seconds the person's phone rings before the transfer counts as unanswered and the
    /// caller comes back to the agent (5 to 600, default 20).
    #[serde(default = "default_ring_timeout")]
    #[schemars(range(min = RING_TIMEOUT_MIN, max = RING_TIMEOUT_MAX))]
    pub ring_timeout_seconds: u32,
}

impl TransferTarget {
    /// Where to dial: the number, else the SIP URI.
    pub fn address(&self) -> DialAddress<'_> {
        match (&self.number, &self.sip) {
            (Some(n), _) => DialAddress::Number(n),
            (None, Some(s)) => DialAddress::Sip(s),
            (None, None) => DialAddress::Number(""),
        }
    }
}

/// A `<Dial>` noun: `<Number>` or `<Sip>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialAddress<'a> {
    /// E.164 number.
    Number(&'a str),
    /// SIP URI.
    Sip(&'a str),
}

fn default_ring_timeout() -> u32 {
    20
}

/// What a caller hears when the call cannot go on with the agent (the model is
/// unreachable, the gateway failed or was replaced mid-call): an apology, then this.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.action != 'dial' || has(self.number) != has(self.sip)",
        "message": "action dial needs exactly one of number and sip"
    },
    {
        "rule": "self.action == 'dial' || !(has(self.number) || has(self.sip) || has(self.callerId))",
        "message": "number, sip and callerId are only allowed with action dial"
    },
    {
        "rule": "self.action == 'voicemail' || !has(self.voicemailPrompt)",
        "message": "voicemailPrompt is only allowed with action voicemail",
        "fieldPath": ".voicemailPrompt"
    }
]))]
pub struct FallbackSpec {
    /// Said first, always (at most 500 characters).
    #[serde(default = "default_apology")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = APOLOGY_MAX))]
    pub apology: String,
    /// `hangup` (default), `dial` a number or SIP URI, or take a `voicemail`.
    #[serde(default)]
    pub action: FallbackAction,
    /// dial: the number (E.164).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = E164_PATTERN))]
    pub number: Option<String>,
    /// dial: a SIP URI instead of a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIP_URI_PATTERN))]
    pub sip: Option<String>,
    /// dial: caller ID shown (E.164). Default: the caller's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = E164_PATTERN))]
    pub caller_id: Option<String>,
    /// dial: seconds to ring (5 to 600, default 20).
    #[serde(default = "default_ring_timeout")]
    #[schemars(range(min = RING_TIMEOUT_MIN, max = RING_TIMEOUT_MAX))]
    pub ring_timeout_seconds: u32,
    /// voicemail: what is said before the beep. Default: "Please leave a message after
    /// the tone."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = APOLOGY_MAX))]
    pub voicemail_prompt: Option<String>,
    /// voicemail: longest message, seconds (1 to 3600, default 120).
    #[serde(default = "default_max_recording")]
    #[schemars(range(min = 1, max = RECORDING_MAX_SECONDS))]
    pub max_recording_seconds: u32,
}

impl Default for FallbackSpec {
    fn default() -> Self {
        Self {
            apology: default_apology(),
            action: FallbackAction::default(),
            number: None,
            sip: None,
            caller_id: None,
            ring_timeout_seconds: default_ring_timeout(),
            voicemail_prompt: None,
            max_recording_seconds: default_max_recording(),
        }
    }
}

impl FallbackSpec {
    /// Where `action: dial` dials.
    pub fn address(&self) -> DialAddress<'_> {
        match (&self.number, &self.sip) {
            (Some(n), _) => DialAddress::Number(n),
            (None, Some(s)) => DialAddress::Sip(s),
            (None, None) => DialAddress::Number(""),
        }
    }

    /// The voicemail prompt, default applied.
    pub fn voicemail_prompt(&self) -> &str {
        self.voicemail_prompt
            .as_deref()
            .unwrap_or(DEFAULT_VOICEMAIL_PROMPT)
    }
}

/// What follows the apology.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FallbackAction {
    /// End the call.
    #[default]
    Hangup,
    /// Dial `number` or `sip`.
    Dial,
    /// Record a message (`<Record>`); its recording is kept with the call.
    Voicemail,
}

/// The apology said when a call cannot continue.
pub const DEFAULT_APOLOGY: &str = "We're sorry, we are having technical difficulties and cannot continue this call. Please call again later. Goodbye.";
/// The voicemail prompt.
pub const DEFAULT_VOICEMAIL_PROMPT: &str = "Please leave a message after the tone.";

fn default_apology() -> String {
    DEFAULT_APOLOGY.to_owned()
}
fn default_max_recording() -> u32 {
    120
}

/// A Twilio API key the gateway uses for REST calls (moving a call to `<Dial>`, hanging
/// up) instead of the account SID and auth token.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TwilioApiKey {
    /// The key's SID (`SK` + 32 hex digits).
    #[schemars(regex(pattern = API_KEY_SID_PATTERN))]
    pub sid: String,
    /// The key's secret.
    pub secret: SecretRef,
}
