//! `spec.analysis`: post-call analysis of a tenant's calls by a chat model (summary,
//! sentiment, a success verdict against the tenant's rubric, typed fields to extract).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format::{FIELD_NAME_PATTERN, HTTP_URL_PATTERN, NOT_BLANK_PATTERN};
use crate::secret::SecretRef;

/// Longest rubric, in characters (it goes into every analysis request).
pub const RUBRIC_MAX: u32 = 4000;
/// Most fields a tenant may extract per call.
pub const ANALYSIS_FIELDS_MAX: u32 = 32;
/// Longest field description, in characters.
pub const FIELD_DESCRIPTION_MAX: u32 = 500;
/// Most choices of an enum field.
pub const ENUM_CHOICES_MAX: u32 = 64;
/// Field names the analysis document itself uses.
pub const RESERVED_FIELD_NAMES: [&str; 3] = ["summary", "sentiment", "success"];

pub use crate::format::is_field_name;

/// Post-call analysis: after a call's record is written, the gateway sends its transcript
/// (and tool calls) to an OpenAI-compatible Chat Completions endpoint with a JSON-schema
/// structured output, and stores the answer on the call record.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.summary || self.sentiment || has(self.successRubric) || (has(self.fields) && size(self.fields) > 0)",
        "message": "analysis must ask for at least one of summary, sentiment, successRubric, fields"
    }
]))]
pub struct AnalysisSpec {
    /// The chat model, e.g. `gpt-4o-mini` (must support JSON-schema structured output).
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = 200))]
    pub model: String,
    /// Base URL of the OpenAI-compatible API (`…/v1`); requests go to
    /// `{baseUrl}/chat/completions`. Default `https://api.openai.com/v1`. In a cluster its
    /// host must be one the operator allows (`--openai-hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = HTTP_URL_PATTERN), length(max = 2048))]
    pub base_url: Option<String>,
    /// The API key. Absent: the tenant's `spec.openai.apiKey`, but only when `baseUrl`
    /// is OpenAI's own (`https://api.openai.com/…`, the default); with any other
    /// `baseUrl` the key must be named here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretRef>,
    /// Write a short summary of the call.
    #[serde(default = "yes")]
    pub summary: bool,
    /// Judge the caller's sentiment: `positive`, `neutral`, `negative` or `unknown`.
    #[serde(default = "yes")]
    pub sentiment: bool,
    /// What a successful call is, in the tenant's words; when set, each call gets a
    /// `success` verdict against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = RUBRIC_MAX))]
    pub success_rubric: Option<String>,
    /// Typed values to extract from each call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Unique names as a list map, not a CEL rule: a rule comparing every pair of fields
    // was over the API server's cost budget (32x), which refused the whole CRD.
    #[schemars(
        length(max = ANALYSIS_FIELDS_MAX),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub fields: Vec<AnalysisField>,
    /// Calls with fewer transcript turns (caller and agent utterances) are not analysed.
    #[serde(default = "default_min_turns")]
    #[schemars(range(max = 1000))]
    pub min_turns: u32,
}

/// The default of [`AnalysisSpec::base_url`].
pub const DEFAULT_ANALYSIS_BASE_URL: &str = crate::knowledge::DEFAULT_OPENAI_BASE_URL;

impl AnalysisSpec {
    /// The base URL requests go to: `baseUrl`, else [`DEFAULT_ANALYSIS_BASE_URL`].
    pub fn effective_base_url(&self) -> &str {
        self.base_url
            .as_deref()
            .unwrap_or(DEFAULT_ANALYSIS_BASE_URL)
    }

    /// Whether the analysis would send the tenant's `spec.openai.apiKey` somewhere other
    /// than OpenAI: no `apiKey` of its own and a `baseUrl` that is not
    /// `https://api.openai.com/…`. Such a spec is refused (by the operator and the
    /// gateway): an editor of the tenant could otherwise have the OpenAI key, which they
    /// may not be able to read, sent to a host of their choice.
    pub fn borrows_openai_key_elsewhere(&self) -> bool {
        self.api_key.is_none() && !crate::endpoint::is_openai(self.effective_base_url())
    }
}

fn yes() -> bool {
    true
}

fn default_min_turns() -> u32 {
    2
}

/// One value to extract from a call.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type == 'enum' ? (has(self.choices) && size(self.choices) > 0) : !has(self.choices)",
        "message": "choices are required for type enum and only allowed there",
        "fieldPath": ".choices"
    },
    {
        "rule": "!(self.name in ['summary', 'sentiment', 'success'])",
        "message": "name must not be summary, sentiment or success",
        "fieldPath": ".name"
    }
]))]
pub struct AnalysisField {
    /// Property name in the analysis document (`[a-zA-Z][a-zA-Z0-9_]*`, at most 64;
    /// not `summary`, `sentiment` or `success`).
    #[schemars(regex(pattern = FIELD_NAME_PATTERN))]
    pub name: String,
    /// The value's type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// What the value is, for the model.
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = FIELD_DESCRIPTION_MAX))]
    pub description: String,
    /// The allowed values of an `enum` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = ENUM_CHOICES_MAX),
        inner(regex(pattern = NOT_BLANK_PATTERN), length(max = 200)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub choices: Vec<String>,
}

/// The type of an extracted value. Every field may also come back `null` (not said).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FieldType {
    /// Free text.
    String,
    /// A number.
    Number,
    /// True or false.
    Boolean,
    /// One of `choices`.
    Enum,
}
