//! The agent's Realtime session options (`truncation`, `reasoning`) and how its calls
//! end on purpose (`callEnding`): idle re-prompts, the wrap-up before the length limit,
//! the goodbye and the grace after it. Part of `spec.agent`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format::NOT_BLANK_PATTERN;

/// Realtime models this build knows (the SDK's enum, late 2026), with their dated
/// snapshots (`-YYYY-MM-DD`) and the legacy preview names.
pub const REALTIME_MODEL_PATTERN: &str = r"^(gpt-realtime(-mini|-1\.5|-2|-2\.1|-2\.1-mini)?|gpt-4o(-mini)?-realtime-preview)(-[0-9]{4}-[0-9]{2}-[0-9]{2})?$";

/// Whether `model` takes `reasoning` (and `parallel_tool_calls`): the gpt-realtime-2
/// family.
pub fn is_reasoning_model(model: &str) -> bool {
    model.starts_with("gpt-realtime-2")
}

/// How the model's context is cut when a long call overflows it (`session.truncation`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type == 'retentionRatio' || (!has(self.retentionRatio) && !has(self.postInstructionsTokens))",
        "message": "retentionRatio and postInstructionsTokens need type: retentionRatio"
    },
    {
        "rule": "self.type != 'retentionRatio' || has(self.retentionRatio)",
        "message": "type: retentionRatio needs retentionRatio",
        "fieldPath": ".retentionRatio"
    }
]))]
pub struct TruncationSpec {
    /// `auto` (the API's default), `disabled` (the API errors instead of truncating), or
    /// `retentionRatio`: drop old turns down to that share of the limit at once (fewer
    /// truncations, better prompt-cache hits, a cost cap for long calls).
    #[serde(rename = "type", default)]
    pub kind: TruncationKind,
    /// Share of the context kept when it overflows (0 < ratio ≤ 1; the API suggests 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.01, max = 1.0))]
    pub retention_ratio: Option<f64>,
    /// Token limit of everything after the instructions (`token_limits.post_instructions`);
    /// absent: the model's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 128_000))]
    pub post_instructions_tokens: Option<u32>,
}

impl Default for TruncationSpec {
    fn default() -> Self {
        Self {
            kind: TruncationKind::Auto,
            retention_ratio: None,
            post_instructions_tokens: None,
        }
    }
}

/// `truncation.type`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TruncationKind {
    /// The API decides.
    #[default]
    Auto,
    /// Never truncate (a full context is an error).
    Disabled,
    /// Keep `retentionRatio` of the limit.
    RetentionRatio,
}

/// `reasoning` for reasoning models (gpt-realtime-2 family).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningSpec {
    /// How hard the model thinks before answering (more: slower answers).
    #[serde(default)]
    pub effort: ReasoningEffort,
}

/// `reasoning.effort`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningEffort {
    /// Least.
    Minimal,
    /// The API's default.
    #[default]
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Most.
    Xhigh,
}

impl ReasoningEffort {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Xhigh => "xhigh",
        }
    }
}

/// Limits on re-prompts and on the ends of calls the agent ends itself.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallEndingSpec {
    /// Re-prompts of a silent caller (with `turnDetection.idleTimeoutMs`, server VAD):
    /// the next idle timeout after these ends the call with the goodbye.
    #[serde(default = "default_idle_reprompts")]
    #[schemars(range(max = 10))]
    pub idle_reprompts: u32,
    /// The model is told to wrap up this many seconds before `maxCallDurationSeconds`
    /// (0 = no warning; at most half the call: a short call's wrap-up comes at its middle,
    /// never before the greeting).
    #[serde(default = "default_wrap_up")]
    #[schemars(range(max = 600))]
    pub wrap_up_seconds: u32,
    /// After the limit (or the silence timeout) the goodbye waits for the sentence being
    /// spoken; past this many more seconds the call ends regardless.
    #[serde(default = "default_grace")]
    #[schemars(range(min = 1, max = 120))]
    pub grace_seconds: u32,
    /// What the agent says, word for word, when it ends the call for silence or length.
    #[serde(default = "default_goodbye")]
    #[schemars(regex(pattern = NOT_BLANK_PATTERN), length(max = 500))]
    pub goodbye: String,
}

impl Default for CallEndingSpec {
    fn default() -> Self {
        Self {
            idle_reprompts: default_idle_reprompts(),
            wrap_up_seconds: default_wrap_up(),
            grace_seconds: default_grace(),
            goodbye: default_goodbye(),
        }
    }
}

fn default_idle_reprompts() -> u32 {
    2
}
fn default_wrap_up() -> u32 {
    30
}
fn default_grace() -> u32 {
    15
}
fn default_goodbye() -> String {
    "Thank you for calling. Goodbye!".into()
}

/// Whether `model` matches [`REALTIME_MODEL_PATTERN`] (the same check in Rust, for the
/// laptop path that has no API server).
pub fn is_realtime_model(model: &str) -> bool {
    const BASES: &[&str] = &[
        "gpt-realtime-2.1-mini",
        "gpt-realtime-2.1",
        "gpt-realtime-2",
        "gpt-realtime-1.5",
        "gpt-realtime-mini",
        "gpt-realtime",
        "gpt-4o-mini-realtime-preview",
        "gpt-4o-realtime-preview",
    ];
    BASES.iter().any(|base| {
        model.strip_prefix(base).is_some_and(|rest| {
            rest.is_empty() || {
                let b = rest.as_bytes();
                b.len() == 11
                    && b[0] == b'-'
                    && b[5] == b'-'
                    && b[8] == b'-'
                    && [1, 2, 3, 4, 6, 7, 9, 10]
                        .iter()
                        .all(|&i| b[i].is_ascii_digit())
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_model_names_and_snapshots_are_known() {
        for m in [
            "gpt-realtime",
            "gpt-realtime-2",
            "gpt-realtime-2.1",
            "gpt-realtime-2.1-mini",
            "gpt-realtime-mini",
            "gpt-realtime-mini-2025-10-06",
            "gpt-realtime-2025-08-28",
            "gpt-4o-realtime-preview-2024-12-17",
        ] {
            assert!(is_realtime_model(m), "{m}");
        }
        for m in [
            "",
            "gpt-4o",
            "gpt-realtime-3",
            "gpt-realtime-2.1-",
            "gpt-realtime-2025-8-28",
        ] {
            assert!(!is_realtime_model(m), "{m}");
        }
        assert!(is_reasoning_model("gpt-realtime-2.1-mini"));
        assert!(!is_reasoning_model("gpt-realtime"));
    }
}
