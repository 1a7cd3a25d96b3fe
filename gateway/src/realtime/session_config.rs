//! The `session.update` a tenant's agent is configured with (GA shape, telephony profile:
//! `audio/pcmu` both ways so Twilio's µ-law passes through untouched).

use serde_json::{Value, json};
use switchboard_crds::{
    AgentSpec, Eagerness, NoiseReduction, TruncationKind, TruncationSpec, TurnDetectionKind,
    is_reasoning_model,
};

/// `audio.input.turn_detection` for the agent; `interrupt_response` says whether the
/// model's own speech is cut when the caller starts talking.
pub fn turn_detection(agent: &AgentSpec, interrupt_response: bool) -> Value {
    let td = &agent.turn_detection;
    match td.kind {
        TurnDetectionKind::ServerVad => {
            let mut v = json!({
                "type": "server_vad",
                "threshold": td.threshold.unwrap_or(0.5),
                "prefix_padding_ms": td.prefix_padding_ms.unwrap_or(300),
                "silence_duration_ms": td.silence_duration_ms.unwrap_or(500),
                "create_response": true,
                "interrupt_response": interrupt_response,
            });
            if let Some(ms) = td.idle_timeout_ms {
                v["idle_timeout_ms"] = json!(ms);
            }
            v
        }
        TurnDetectionKind::SemanticVad => json!({
            "type": "semantic_vad",
            "eagerness": match td.eagerness.unwrap_or(Eagerness::Auto) {
                Eagerness::Low => "low",
                Eagerness::Medium => "medium",
                Eagerness::High => "high",
                Eagerness::Auto => "auto",
            },
            "create_response": true,
            "interrupt_response": interrupt_response,
        }),
    }
}

/// The full `session.update` event for `agent`, declaring `tools` (the `tools` array,
/// see `crate::tools::declarations`).
pub fn session_update(agent: &AgentSpec, interrupt_response: bool, tools: Value) -> String {
    let noise = match agent.noise_reduction {
        NoiseReduction::NearField => json!({"type": "near_field"}),
        NoiseReduction::FarField => json!({"type": "far_field"}),
        NoiseReduction::Off => Value::Null,
    };
    let transcription = agent.transcription.as_ref().map_or(Value::Null, |t| {
        let mut v = json!({"model": t.model});
        if let Some(lang) = &t.language {
            v["language"] = json!(lang);
        }
        v
    });
    let mut update = json!({
        "type": "session.update",
        "session": {
            "type": "realtime",
            "model": agent.model,
            "output_modalities": ["audio"],
            "instructions": agent.instructions,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "noise_reduction": noise,
                    "transcription": transcription,
                    "turn_detection": turn_detection(agent, interrupt_response),
                },
                "output": {
                    "format": {"type": "audio/pcmu"},
                    "voice": agent.voice,
                }
            },
            "tools": tools,
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "truncation": truncation(&agent.truncation),
        }
    });
    // `reasoning` exists only on reasoning models (validation refuses it elsewhere; a
    // spec that bypassed validation must still not send a field the model rejects).
    if let Some(r) = &agent.reasoning
        && is_reasoning_model(&agent.model)
    {
        update["session"]["reasoning"] = json!({"effort": r.effort.as_str()});
    }
    update.to_string()
}

/// `session.truncation` (GA): `"auto"`, `"disabled"` or the retention-ratio object.
pub fn truncation(t: &TruncationSpec) -> Value {
    match t.kind {
        TruncationKind::Auto => json!("auto"),
        TruncationKind::Disabled => json!("disabled"),
        TruncationKind::RetentionRatio => {
            let mut v = json!({
                "type": "retention_ratio",
                "retention_ratio": t.retention_ratio.unwrap_or(0.8),
            });
            if let Some(n) = t.post_instructions_tokens {
                v["token_limits"] = json!({"post_instructions": n});
            }
            v
        }
    }
}

/// A `session.update` that changes only `interrupt_response` (after a non-interruptible
/// greeting has played).
pub fn set_interruptible(agent: &AgentSpec, interrupt_response: bool) -> String {
    json!({
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {"input": {"turn_detection": turn_detection(agent, interrupt_response)}}
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_crds::{ReasoningEffort, ReasoningSpec};

    #[test]
    fn truncation_and_reasoning_reach_the_session() {
        let agent = AgentSpec {
            model: "gpt-realtime-2.1".into(),
            truncation: TruncationSpec {
                kind: TruncationKind::RetentionRatio,
                retention_ratio: Some(0.7),
                post_instructions_tokens: Some(20_000),
            },
            reasoning: Some(ReasoningSpec {
                effort: ReasoningEffort::Minimal,
            }),
            ..AgentSpec::default()
        };
        let v: Value = serde_json::from_str(&session_update(&agent, true, json!([]))).unwrap();
        let s = &v["session"];
        assert_eq!(
            s["truncation"],
            json!({"type": "retention_ratio", "retention_ratio": 0.7,
                   "token_limits": {"post_instructions": 20000}})
        );
        assert_eq!(s["reasoning"], json!({"effort": "minimal"}));
        // not a reasoning model: never sent
        let plain = AgentSpec {
            reasoning: agent.reasoning.clone(),
            ..AgentSpec::default()
        };
        let v: Value = serde_json::from_str(&session_update(&plain, true, json!([]))).unwrap();
        assert!(v["session"].get("reasoning").is_none());
    }

    #[test]
    fn ga_shape_with_pcmu_and_no_beta_fields() {
        let v: Value =
            serde_json::from_str(&session_update(&AgentSpec::default(), true, json!([]))).unwrap();
        let s = &v["session"];
        assert_eq!(s["type"], "realtime");
        assert_eq!(s["audio"]["input"]["format"]["type"], "audio/pcmu");
        assert_eq!(s["audio"]["output"]["format"]["type"], "audio/pcmu");
        assert_eq!(s["audio"]["output"]["voice"], "marin");
        assert_eq!(s["audio"]["input"]["turn_detection"]["type"], "server_vad");
        assert_eq!(
            s["audio"]["input"]["turn_detection"]["interrupt_response"],
            true
        );
        assert_eq!(s["truncation"], "auto");
        assert!(s.get("reasoning").is_none());
        for beta in [
            "modalities",
            "voice",
            "input_audio_format",
            "output_audio_format",
            "turn_detection",
            "temperature",
        ] {
            assert!(s.get(beta).is_none(), "beta field {beta}");
        }
    }
}
