//! The `VoiceTenant` resource: one business served by Switchboard.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format::{
    ACCOUNT_SID_PATTERN, DNS_SUBDOMAIN_MAX, DNS_SUBDOMAIN_PATTERN, E164_PATTERN, LANGUAGE_PATTERN,
    NOT_BLANK_PATTERN, WS_URL_PATTERN,
};
use crate::limits::{
    DISPLAY_NAME_MAX, MAX_CALL_DURATION_LIMIT, MAX_CALL_DURATION_MIN, PREFIX_PADDING_MAX_MS,
    SILENCE_DURATION_MAX_MS, SILENCE_DURATION_MIN_MS, TRANSFER_TARGETS_MAX,
};
use crate::secret::SecretRef;

mod logging;
pub use logging::LoggingSpec;
mod console;
mod pricing;

pub use console::{
    API_KEY_MIN_LEN, ApiKeySpec, ConsoleSpec, KEY_NAME_MAX, KEY_NAME_PATTERN, is_key_name,
};
pub use pricing::PricingSpec;
mod recordings;
pub use recordings::{RECORDING_DISCLOSURE_MAX, RecordingSpec};
mod aws;
pub use aws::{AwsSpec, IAM_ROLE_ARN_PATTERN, is_iam_role_arn};
mod analysis;
mod encryption;

pub use analysis::{
    ANALYSIS_FIELDS_MAX, AnalysisField, AnalysisSpec, DEFAULT_ANALYSIS_BASE_URL, ENUM_CHOICES_MAX,
    FIELD_DESCRIPTION_MAX, FieldType, RESERVED_FIELD_NAMES, RUBRIC_MAX, is_field_name,
};
pub use encryption::EncryptionSpec;
mod call_control;
pub use call_control::*;

/// Desired state of one business's phone agent.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "voice.switchboard.dev",
    version = "v1alpha1",
    kind = "VoiceTenant",
    namespaced,
    status = "VoiceTenantStatus",
    derive = "PartialEq",
    shortname = "vt",
    category = "switchboard",
    doc = "One business served by Switchboard: its phone numbers, its voice agent, where its secrets live and how its gateway runs.",
    // JSON form: the list form trips clippy's duplicated_attributes on repeated `type_`.
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    // The whole list would print as a JSON array: the default view shows the first number,
    // `-o wide` all of them.
    printcolumn = r#"{"name":"Number","type":"string","jsonPath":".spec.phoneNumbers[0]","description":"First phone number (all of them: -o wide)"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.readyReplicas","description":"Gateway replicas ready"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.desiredReplicas","description":"Gateway replicas wanted"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Display","type":"string","jsonPath":".spec.displayName","priority":1}"#,
    printcolumn = r#"{"name":"Numbers","type":"string","jsonPath":".spec.phoneNumbers","priority":1}"#,
    printcolumn = r#"{"name":"Webhook","type":"string","jsonPath":".status.webhookUrl","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::k8s_number_formats)]
pub struct VoiceTenantSpec {
    /// Name of the business as callers and operators know it.
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = DISPLAY_NAME_MAX))]
    pub display_name: String,
    /// Phone numbers (E.164, e.g. `+15005550006`) whose calls this tenant answers.
    #[schemars(
        length(min = 1),
        inner(regex(pattern = E164_PATTERN)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub phone_numbers: Vec<String>,
    /// The voice agent: model, voice, instructions, greeting, turn taking, limits.
    #[serde(default)]
    pub agent: AgentSpec,
    /// Twilio account that owns the numbers.
    pub twilio: TwilioSpec,
    /// OpenAI (or compatible) Realtime endpoint and credentials.
    pub openai: OpenAiSpec,
    /// How the tenant's gateway runs in a cluster (ignored on a laptop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,
    /// Where call records are kept. Absent: the gateway's own database flag decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,
    /// Call recording policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recordings: Option<RecordingSpec>,
    /// Field-level encryption of call records with the tenant's KMS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
    /// The AWS identity of the tenant's gateway (IRSA role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSpec>,
    /// What happens to the tenant's database schema when the tenant is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// What the gateway may write to its logs (absent: caller numbers masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingSpec>,
    /// The admin API and console: the tenant's read-only API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleSpec>,
    /// Price overrides for call costs (see docs/api.md, "Costs").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<PricingSpec>,
    /// Post-call analysis (summary, sentiment, success verdict, extracted fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

/// The voice agent that answers the calls.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.silenceTimeoutSeconds <= self.maxCallDurationSeconds",
        "message": "silenceTimeoutSeconds must not exceed maxCallDurationSeconds",
        "fieldPath": ".silenceTimeoutSeconds"
    },
    {
        "rule": "!has(self.reasoning) || self.model.startsWith('gpt-realtime-2')",
        "message": "reasoning is only for reasoning models (gpt-realtime-2, gpt-realtime-2.1, gpt-realtime-2.1-mini)",
        "fieldPath": ".reasoning"
    }
]))]
pub struct AgentSpec {
    /// Realtime model; sent as `?model=` on connect: `gpt-realtime` (default),
    /// `gpt-realtime-2`, `gpt-realtime-2.1`, `gpt-realtime-2.1-mini`, `gpt-realtime-mini`,
    /// `gpt-realtime-1.5`, their dated snapshots, or a legacy preview name.
    #[serde(default = "default_model")]
    #[schemars(regex(pattern = crate::session_options::REALTIME_MODEL_PATTERN))]
    pub model: String,
    /// How the context of a long call is cut (`session.truncation`).
    #[serde(default)]
    pub truncation: crate::session_options::TruncationSpec,
    /// Reasoning effort, for the gpt-realtime-2 family only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<crate::session_options::ReasoningSpec>,
    /// Re-prompts, wrap-up, goodbye and grace of calls the agent ends itself.
    #[serde(default)]
    pub call_ending: crate::session_options::CallEndingSpec,
    /// Output voice (`marin`, `cedar`, `alloy`, …).
    #[serde(default = "default_voice")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN))]
    pub voice: String,
    /// System instructions for the model.
    #[serde(default = "default_instructions")]
    pub instructions: String,
    /// What the agent says first, as soon as the call connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<GreetingSpec>,
    /// How the model decides the caller finished speaking.
    #[serde(default)]
    pub turn_detection: TurnDetectionSpec,
    /// Model that transcribes the caller (for transcripts). Absent means the default model;
    /// `null` turns transcription off.
    // Deliberately serialized as `null` when off: skipping it would turn transcription back
    // on (the default) the next time the spec is read.
    #[serde(default = "default_transcription")]
    pub transcription: Option<TranscriptionSpec>,
    /// Input noise reduction.
    #[serde(default)]
    pub noise_reduction: NoiseReduction,
    /// A call is ended after this many seconds (10 to 3600: a Realtime session lasts at most
    /// 60 minutes).
    #[serde(default = "default_max_call_duration")]
    #[schemars(range(min = MAX_CALL_DURATION_MIN, max = MAX_CALL_DURATION_LIMIT))]
    pub max_call_duration_seconds: u32,
    /// A call is ended after this many seconds with neither party speaking (0 = never).
    #[serde(default = "default_silence_timeout")]
    pub silence_timeout_seconds: u32,
    /// Names of `KnowledgeBase` resources (same namespace) the agent may search.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        inner(regex(pattern = DNS_SUBDOMAIN_PATTERN), length(max = DNS_SUBDOMAIN_MAX)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub knowledge_bases: Vec<String>,
    /// People the agent may transfer a caller to (at most 16, names unique). With any,
    /// the model gets the `transfer_call` tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = TRANSFER_TARGETS_MAX),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub transfer: Vec<TransferTarget>,
    /// What a caller hears when the call cannot go on with the agent (the model is
    /// unreachable, a gateway failed mid-call): an apology, then hang up (default), dial
    /// a number, or take a voicemail.
    #[serde(default)]
    pub fallback: FallbackSpec,
}

impl Default for AgentSpec {
    fn default() -> Self {
        Self {
            model: default_model(),
            truncation: Default::default(),
            reasoning: None,
            call_ending: Default::default(),
            voice: default_voice(),
            instructions: default_instructions(),
            greeting: None,
            turn_detection: TurnDetectionSpec::default(),
            transcription: default_transcription(),
            noise_reduction: NoiseReduction::default(),
            max_call_duration_seconds: default_max_call_duration(),
            silence_timeout_seconds: default_silence_timeout(),
            knowledge_bases: Vec::new(),
            transfer: Vec::new(),
            fallback: FallbackSpec::default(),
        }
    }
}

fn default_model() -> String {
    "gpt-realtime".into()
}
fn default_voice() -> String {
    "marin".into()
}
fn default_instructions() -> String {
    "You are a helpful, concise phone receptionist. Keep answers short.".into()
}
fn default_transcription() -> Option<TranscriptionSpec> {
    Some(TranscriptionSpec::default())
}
fn default_max_call_duration() -> u32 {
    1800
}
fn default_silence_timeout() -> u32 {
    60
}
fn default_true() -> bool {
    true
}

/// The agent's first words.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GreetingSpec {
    /// Text the agent says, word for word.
    #[schemars(regex(pattern = NOT_BLANK_PATTERN))]
    pub text: String,
    /// Whether the caller may interrupt the greeting by speaking.
    #[serde(default)]
    pub interruptible: bool,
}

/// Turn detection (voice activity detection) settings, as the Realtime API takes them.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type == 'semantic_vad' || !has(self.eagerness)",
        "message": "eagerness is only allowed with type semantic_vad",
        "fieldPath": ".eagerness"
    },
    {
        "rule": "self.type == 'server_vad' || !(has(self.threshold) || has(self.prefixPaddingMs) || has(self.silenceDurationMs) || has(self.idleTimeoutMs))",
        "message": "threshold, prefixPaddingMs, silenceDurationMs and idleTimeoutMs are only allowed with type server_vad"
    }
]))]
pub struct TurnDetectionSpec {
    /// `server_vad` (silence based) or `semantic_vad` (model decides the turn ended).
    #[serde(default, rename = "type")]
    pub kind: TurnDetectionKind,
    /// server_vad: activation threshold 0.0–1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub threshold: Option<f64>,
    /// server_vad: audio kept before detected speech, in ms (at most 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = PREFIX_PADDING_MAX_MS))]
    pub prefix_padding_ms: Option<u32>,
    /// server_vad: silence that ends a turn, in ms (100 to 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = SILENCE_DURATION_MIN_MS, max = SILENCE_DURATION_MAX_MS))]
    pub silence_duration_ms: Option<u32>,
    /// server_vad: prompt the caller after this much silence following the agent, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u32>,
    /// semantic_vad: how eagerly the model ends the caller's turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eagerness: Option<Eagerness>,
}

impl Default for TurnDetectionSpec {
    fn default() -> Self {
        Self {
            kind: TurnDetectionKind::ServerVad,
            threshold: Some(0.5),
            prefix_padding_ms: Some(300),
            silence_duration_ms: Some(500),
            idle_timeout_ms: None,
            eagerness: None,
        }
    }
}

/// Which turn detector the Realtime API runs.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TurnDetectionKind {
    /// Silence-based voice activity detection.
    #[default]
    ServerVad,
    /// Semantic end-of-turn detection.
    SemanticVad,
}

/// semantic_vad eagerness.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Eagerness {
    /// Waits longest (up to 8 s).
    Low,
    /// Up to 4 s.
    Medium,
    /// Up to 2 s.
    High,
    /// Same as medium.
    Auto,
}

/// Caller transcription settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptionSpec {
    /// Transcription model.
    #[serde(default = "default_transcription_model")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN))]
    pub model: String,
    /// ISO-639-1 language hint (e.g. `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = LANGUAGE_PATTERN))]
    pub language: Option<String>,
}

impl Default for TranscriptionSpec {
    fn default() -> Self {
        Self {
            model: default_transcription_model(),
            language: None,
        }
    }
}

fn default_transcription_model() -> String {
    "gpt-4o-mini-transcribe".into()
}

/// Input noise reduction profile.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoiseReduction {
    /// Close-talking microphones (handsets, headsets): the telephony default.
    #[default]
    NearField,
    /// Far-field microphones (speakerphones, conference rooms).
    FarField,
    /// No noise reduction.
    Off,
}

/// Twilio account settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TwilioSpec {
    /// Account SID (`AC` + 32 hex digits) that owns the numbers.
    #[schemars(regex(pattern = ACCOUNT_SID_PATTERN))]
    pub account_sid: String,
    /// The account's Auth Token: the key of every webhook signature.
    pub auth_token: SecretRef,
    /// The account's secondary Auth Token, while the primary is being rotated: webhooks
    /// signed with either token are accepted. Remove it once Twilio has promoted it (and
    /// `authToken` names the new token). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_auth_token: Option<SecretRef>,
    /// API key for the REST calls of call control (transfer, hang-up). Default: the
    /// account SID and `authToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<TwilioApiKey>,
    /// Refuse webhooks and streams without a valid `X-Twilio-Signature` (default true).
    #[serde(default = "default_true")]
    pub validate_signatures: bool,
}

/// OpenAI Realtime settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenAiSpec {
    /// API key sent as `Authorization: Bearer`.
    pub api_key: SecretRef,
    /// Realtime WebSocket URL override (Azure, compatible endpoints, the simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = WS_URL_PATTERN))]
    pub realtime_url: Option<String>,
}

/// Gateway deployment settings (used by the operator).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(has(self.replicas) && has(self.autoscaling))",
    "message": "set replicas or autoscaling, not both"
}]))]
pub struct GatewaySpec {
    /// Fixed replica count; mutually exclusive with `autoscaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Horizontal autoscaling bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// Concurrent calls one gateway pod accepts before answering busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_calls_per_pod: Option<u32>,
    /// Container resources of the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    /// Gateway image override (defaults to the operator's own version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN))]
    pub image: Option<String>,
}

/// Horizontal Pod Autoscaler bounds.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.maxReplicas >= self.minReplicas",
    "message": "maxReplicas must be at least minReplicas",
    "fieldPath": ".maxReplicas"
}]))]
pub struct AutoscalingSpec {
    /// Lower bound of replicas (at least 1).
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    /// Upper bound of replicas (at least `minReplicas`).
    pub max_replicas: i32,
    /// Target average CPU utilisation, percent (1 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization: Option<i32>,
}

/// Call record storage.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Connection URL of the call store: the shared Postgres (`postgres://…`) or SQLite
    /// (`sqlite:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<SecretRef>,
}

/// Whether deleting the tenant deletes its data.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the tenant's schema and data (default).
    #[default]
    Retain,
    /// Drop the tenant's schema and role.
    Delete,
}

/// Observed state, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VoiceTenantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Gateway replicas wanted (by the tenant's spec or its autoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// Gateway replicas available to take calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The URL to configure as the Twilio number's voice webhook (`POST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The tenant's role and schema on the shared Postgres, once provisioned. Kept here so
    /// that a rename of the naming scheme never orphans an existing tenant's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseStatus>,
}

/// Where the operator provisioned the tenant's call store.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// Postgres role the tenant's gateway logs in as.
    pub role: String,
    /// Postgres schema holding the tenant's tables (owned by `role`).
    pub schema: String,
    /// Secret holding the role's credentials and the gateway's connection URL.
    pub secret_name: String,
}
