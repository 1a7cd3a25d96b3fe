//! Simulator configuration: pacing, faults and the conversation script.

use serde::{Deserialize, Serialize};

/// How one simulated session behaves. Every field has a default, so an empty YAML/JSON
/// document (or `RealtimeConfig::default()`) gives a working simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Caller turns and the agent's answers, consumed in order by each session.
    pub script: Vec<Turn>,
    /// Synthesised speech length per character of response text (minimum 400 ms per item).
    pub ms_per_char: u32,
    /// Audio per `response.output_audio.delta` event.
    pub delta_ms: u32,
    /// Generation speed as a multiple of real time (the real API runs well ahead of playout).
    pub speed: f64,
    /// Audio deltas still delivered after a response is cancelled by barge-in: the real API
    /// has them in flight, and a gateway must drop them.
    pub late_deltas_after_cancel: u32,
    /// Session lifetime; at expiry the session gets `session_expired` and a 1001 close.
    /// `None` means the real API's 60 minutes.
    pub session_max_ms: Option<u64>,
    /// Fault injection: a `server_error` and a 1011 close this long after connect.
    pub fail_after_ms: Option<u64>,
    /// Fault injection: the TCP connection drops without a close frame halfway through
    /// the audio of this response (1-based, counted per session), as when a network path
    /// or an OpenAI front end dies mid-answer.
    pub drop_mid_response: Option<u32>,
    /// `fail_after_ms` and `drop_mid_response` hit only the first this many sessions
    /// (in connection order); `None`: every session.
    pub fault_sessions: Option<u32>,
    /// Handshakes after this many sessions are refused with HTTP 503 and the API's
    /// `server_error` body: OpenAI unreachable for reconnects.
    pub refuse_after_sessions: Option<u32>,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            script: default_script(),
            ms_per_char: 55,
            delta_ms: 40,
            speed: 4.0,
            late_deltas_after_cancel: 1,
            session_max_ms: None,
            fail_after_ms: None,
            drop_mid_response: None,
            fault_sessions: None,
            refuse_after_sessions: None,
        }
    }
}

/// One exchange: what the caller says and how the agent reacts.
///
/// Either `agent` (speak this), or `tool` (call a function, then speak `agent_template`
/// with `{output}` replaced by the function output once the client has sent it and asked
/// for a response; the knowledge tool's `{"passages":…}` is replaced by a sentence from the
/// best passage, as a model would say it). With both `agent` and `tool`, the response speaks `agent` as a
/// preamble item and then calls the tool, as reasoning models do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// What the caller says; reported as the input transcription of the caller's item.
    pub caller: String,
    /// What the agent answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// A function call the agent makes instead of (or after) answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolRequest>,
    /// What the agent says after the tool output arrives; `{output}` is replaced by it (by a
    /// sentence from the best passage when it is the knowledge tool's output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_template: Option<String>,
}

impl Turn {
    /// A turn answered by speech.
    pub fn say(caller: impl Into<String>, agent: impl Into<String>) -> Self {
        Self {
            caller: caller.into(),
            agent: Some(agent.into()),
            tool: None,
            agent_template: None,
        }
    }

    /// A turn answered by a function call and then speech built from its output.
    pub fn call(
        caller: impl Into<String>,
        name: impl Into<String>,
        arguments: serde_json::Value,
        agent_template: impl Into<String>,
    ) -> Self {
        Self {
            caller: caller.into(),
            agent: None,
            tool: Some(ToolRequest {
                name: name.into(),
                arguments,
            }),
            agent_template: Some(agent_template.into()),
        }
    }
}

/// A function call requested by a scripted turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRequest {
    /// Function name; the session (or the response) must offer a function tool by this name,
    /// otherwise the agent says it cannot look that up, as a real model would.
    pub name: String,
    /// Arguments; a JSON string is sent verbatim, anything else is serialised.
    #[serde(default)]
    pub arguments: serde_json::Value,
}

impl ToolRequest {
    /// The `arguments` string as it goes on the wire.
    pub fn arguments_string(&self) -> String {
        match &self.arguments {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "{}".to_owned(),
            other => other.to_string(),
        }
    }
}

/// The script a session follows when none is configured: an answer, a knowledge lookup
/// (a question the demo tenant's knowledge base, examples/knowledge/demo.yaml, answers),
/// and a goodbye.
pub fn default_script() -> Vec<Turn> {
    // Demo Dental's receptionist (examples/tenants/demo.yaml): hours as the tenant's
    // instructions give them, insurance from its knowledge base (examples/knowledge).
    vec![
        Turn::say(
            "Hi, are you open on Saturday?",
            "Yes, on Saturday we are open from 9am to 1pm, and Monday to Friday from 8am to 6pm.",
        ),
        Turn::call(
            "Which insurance do you take?",
            "search_knowledge_base",
            serde_json::json!({"query": "which dental insurance plans are accepted"}),
            "{output} Is there anything else I can help you with?",
        ),
        Turn::say(
            "Great, thanks. Goodbye!",
            "You're welcome. Thank you for calling Demo Dental, goodbye!",
        ),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_defaults() {
        let cfg: RealtimeConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, RealtimeConfig::default());
        assert_eq!(cfg.delta_ms, 40);
        assert_eq!(cfg.script.len(), 3);
    }

    #[test]
    fn both_turn_shapes_parse() {
        let cfg: RealtimeConfig = serde_json::from_str(
            r#"{"speed":1.0,"script":[
                {"caller":"are you open?","agent":"Yes."},
                {"caller":"hours?","tool":{"name":"kb","arguments":{"q":"hours"}},
                 "agent_template":"We open {output}."}]}"#,
        )
        .unwrap();
        assert_eq!(cfg.speed, 1.0);
        assert_eq!(cfg.script[0].agent.as_deref(), Some("Yes."));
        let tool = cfg.script[1].tool.as_ref().unwrap();
        assert_eq!(tool.arguments_string(), r#"{"q":"hours"}"#);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<RealtimeConfig>(r#"{"sped":1}"#).is_err());
    }
}
