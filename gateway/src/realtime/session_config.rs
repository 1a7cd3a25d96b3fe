//! The `session.update` a tenant's agent is configured with (GA shape, telephony profile:
//! `audio/pcmu` both ways so Twilio's µ-law passes through untouched).

use serde_json::{Value, json};
use switchboard_crds::{AgentSpec, Eagerness, NoiseReduction, TurnDetectionKind};

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
    json!({
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
            "truncation": "auto",
        }
    })
    .to_string()
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
