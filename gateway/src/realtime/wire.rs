//! Realtime events: server events parsed into [`ServerEvent`], client events built as
//! JSON text.
//!
//! Only the GA event names exist here (`response.output_audio.delta`, not the beta
//! `response.audio.delta`). Server events this gateway does not act on become
//! [`ServerEvent::Other`] instead of errors: OpenAI adds events over time.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::json;

/// `response.done` usage, GA shape (missing numbers count as 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ResponseUsage {
    /// Total tokens.
    #[serde(default)]
    pub total_tokens: u64,
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input breakdown.
    #[serde(default)]
    pub input_token_details: InputTokenDetails,
    /// Output breakdown.
    #[serde(default)]
    pub output_token_details: OutputTokenDetails,
}

/// Input token breakdown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct InputTokenDetails {
    /// Text tokens.
    #[serde(default)]
    pub text_tokens: u64,
    /// Audio tokens.
    #[serde(default)]
    pub audio_tokens: u64,
    /// Cached tokens (part of input tokens).
    #[serde(default)]
    pub cached_tokens: u64,
    /// Cached tokens by modality (parts of `cached_tokens`).
    #[serde(default)]
    pub cached_tokens_details: CachedTokenDetails,
}

/// Cached input token breakdown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CachedTokenDetails {
    /// Cached text tokens.
    #[serde(default)]
    pub text_tokens: u64,
    /// Cached audio tokens.
    #[serde(default)]
    pub audio_tokens: u64,
}

/// Output token breakdown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct OutputTokenDetails {
    /// Text tokens.
    #[serde(default)]
    pub text_tokens: u64,
    /// Audio tokens.
    #[serde(default)]
    pub audio_tokens: u64,
}

/// An `error` event's body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    /// `invalid_request_error`, `server_error`, …
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Machine code, e.g. `session_expired`.
    #[serde(default)]
    pub code: Option<String>,
    /// Human message.
    #[serde(default)]
    pub message: Option<String>,
    /// The client `event_id` that caused it, if any.
    #[serde(default)]
    pub event_id: Option<String>,
}

/// The server events the call session acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `session.created`.
    SessionCreated {
        /// `session.expires_at`: Unix seconds when the server will end the session
        /// (60 minutes after it started), when given.
        expires_at: Option<u64>,
    },
    /// `session.updated`.
    SessionUpdated,
    /// `input_audio_buffer.speech_started`.
    SpeechStarted {
        /// Input-buffer ms.
        audio_start_ms: u64,
        /// The user item that will hold this speech.
        item_id: String,
    },
    /// `input_audio_buffer.speech_stopped`.
    SpeechStopped {
        /// Input-buffer ms.
        audio_end_ms: u64,
        /// The user item.
        item_id: String,
    },
    /// `input_audio_buffer.timeout_triggered`: server VAD's `idle_timeout_ms` passed
    /// without speech; the server commits the (silent) input and starts a response itself.
    IdleTimeout,
    /// `response.created`.
    ResponseCreated {
        /// Response id.
        response_id: String,
    },
    /// `response.output_audio.delta`.
    AudioDelta {
        /// Response id.
        response_id: String,
        /// Assistant item id.
        item_id: String,
        /// Content part index.
        content_index: u32,
        /// Base64 audio in the session's output format.
        delta: String,
    },
    /// `response.output_audio.done`.
    AudioDone {
        /// Response id.
        response_id: String,
        /// Assistant item id.
        item_id: String,
    },
    /// `response.output_audio_transcript.delta`.
    AudioTranscriptDelta {
        /// Assistant item id.
        item_id: String,
        /// Text fragment.
        delta: String,
    },
    /// `response.output_audio_transcript.done`.
    AudioTranscriptDone {
        /// Assistant item id.
        item_id: String,
        /// Full transcript of the item.
        transcript: String,
    },
    /// `conversation.item.input_audio_transcription.completed`.
    InputTranscript {
        /// User item id.
        item_id: String,
        /// What the caller said (a rough guide, not what the model heard).
        transcript: String,
    },
    /// `response.function_call_arguments.done`.
    FunctionCall {
        /// Response id.
        response_id: String,
        /// The call id to answer with `function_call_output`.
        call_id: String,
        /// Tool name.
        name: String,
        /// Arguments, JSON text.
        arguments: String,
    },
    /// `response.done`.
    ResponseDone {
        /// Response id.
        response_id: String,
        /// `completed`, `cancelled`, `failed`, `incomplete`.
        status: String,
        /// Usage, when reported.
        usage: Option<ResponseUsage>,
    },
    /// `conversation.item.truncated`.
    Truncated {
        /// Item id.
        item_id: String,
        /// Where it was cut.
        audio_end_ms: u64,
    },
    /// `error`.
    Error(ErrorBody),
    /// Any other event (kept by name for logs).
    Other(String),
}

/// Why a server frame could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not JSON, or not an object with a `type`.
    #[error("invalid server event: {0}")]
    Invalid(String),
    /// A known event lacks a field it must have.
    #[error("{event} without {field}")]
    Missing {
        /// The event type.
        event: &'static str,
        /// The missing field.
        field: &'static str,
    },
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    response_id: Option<String>,
    #[serde(default)]
    item_id: Option<String>,
    #[serde(default)]
    content_index: Option<u32>,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    transcript: Option<String>,
    #[serde(default)]
    audio_start_ms: Option<u64>,
    #[serde(default)]
    audio_end_ms: Option<u64>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    response: Option<RawResponse>,
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(default)]
    session: Option<RawSession>,
}

#[derive(Deserialize)]
struct RawSession {
    #[serde(default)]
    expires_at: Option<u64>,
}

#[derive(Deserialize)]
struct RawResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    usage: Option<ResponseUsage>,
}

fn need<T>(v: Option<T>, event: &'static str, field: &'static str) -> Result<T, WireError> {
    v.ok_or(WireError::Missing { event, field })
}

/// Parses one server text frame.
pub fn parse_server_event(text: &str) -> Result<ServerEvent, WireError> {
    // Audio deltas are most of what a session receives (50 a second while the agent
    // talks): read in one pass when they are plain, by serde otherwise.
    match audio_delta_fast(text) {
        Some(delta) => Ok(delta),
        None => parse_serde(text),
    }
}

/// Parses one server text frame with serde (every event, plain or not).
fn parse_serde(text: &str) -> Result<ServerEvent, WireError> {
    let r: Raw<'_> = serde_json::from_str(text).map_err(|e| WireError::Invalid(e.to_string()))?;
    Ok(match r.kind.as_ref() {
        "session.created" => ServerEvent::SessionCreated {
            expires_at: r.session.and_then(|s| s.expires_at),
        },
        "input_audio_buffer.timeout_triggered" => ServerEvent::IdleTimeout,
        "session.updated" => ServerEvent::SessionUpdated,
        "input_audio_buffer.speech_started" => {
            const E: &str = "input_audio_buffer.speech_started";
            ServerEvent::SpeechStarted {
                audio_start_ms: r.audio_start_ms.unwrap_or(0),
                item_id: need(r.item_id, E, "item_id")?,
            }
        }
        "input_audio_buffer.speech_stopped" => {
            const E: &str = "input_audio_buffer.speech_stopped";
            ServerEvent::SpeechStopped {
                audio_end_ms: r.audio_end_ms.unwrap_or(0),
                item_id: need(r.item_id, E, "item_id")?,
            }
        }
        "response.created" => {
            const E: &str = "response.created";
            let resp = need(r.response, E, "response")?;
            ServerEvent::ResponseCreated {
                response_id: need(resp.id, E, "response.id")?,
            }
        }
        "response.output_audio.delta" => {
            const E: &str = "response.output_audio.delta";
            ServerEvent::AudioDelta {
                response_id: need(r.response_id, E, "response_id")?,
                item_id: need(r.item_id, E, "item_id")?,
                content_index: r.content_index.unwrap_or(0),
                delta: need(r.delta, E, "delta")?,
            }
        }
        "response.output_audio.done" => {
            const E: &str = "response.output_audio.done";
            ServerEvent::AudioDone {
                response_id: need(r.response_id, E, "response_id")?,
                item_id: need(r.item_id, E, "item_id")?,
            }
        }
        "response.output_audio_transcript.delta" => {
            const E: &str = "response.output_audio_transcript.delta";
            ServerEvent::AudioTranscriptDelta {
                item_id: need(r.item_id, E, "item_id")?,
                delta: need(r.delta, E, "delta")?,
            }
        }
        "response.output_audio_transcript.done" => {
            const E: &str = "response.output_audio_transcript.done";
            ServerEvent::AudioTranscriptDone {
                item_id: need(r.item_id, E, "item_id")?,
                transcript: r.transcript.unwrap_or_default(),
            }
        }
        "conversation.item.input_audio_transcription.completed" => {
            const E: &str = "conversation.item.input_audio_transcription.completed";
            ServerEvent::InputTranscript {
                item_id: need(r.item_id, E, "item_id")?,
                transcript: r.transcript.unwrap_or_default(),
            }
        }
        "response.function_call_arguments.done" => {
            const E: &str = "response.function_call_arguments.done";
            ServerEvent::FunctionCall {
                response_id: r.response_id.unwrap_or_default(),
                call_id: need(r.call_id, E, "call_id")?,
                name: need(r.name, E, "name")?,
                arguments: r.arguments.unwrap_or_else(|| "{}".into()),
            }
        }
        "response.done" => {
            const E: &str = "response.done";
            let resp = need(r.response, E, "response")?;
            ServerEvent::ResponseDone {
                response_id: need(resp.id, E, "response.id")?,
                status: resp.status.unwrap_or_else(|| "completed".into()),
                usage: resp.usage,
            }
        }
        "conversation.item.truncated" => ServerEvent::Truncated {
            item_id: need(r.item_id, "conversation.item.truncated", "item_id")?,
            audio_end_ms: r.audio_end_ms.unwrap_or(0),
        },
        "error" => ServerEvent::Error(r.error.unwrap_or_default()),
        other => ServerEvent::Other(other.to_string()),
    })
}

/// The `response.output_audio.delta` in `text`, read without serde, or `None` when the
/// text is anything else or not plain enough to be sure (see [`crate::scan`]): then serde
/// reads it. Accepted only when serde would read the same event from it: each field of
/// [`Raw`] at most once and with the type `Raw` gives it (a repeated field is an error
/// for serde), the fields of other events absent (serde checks their types), unknown
/// fields ignored as serde ignores them.
fn audio_delta_fast(text: &str) -> Option<ServerEvent> {
    fn once<'a>(slot: &mut Option<&'a str>, v: Option<&'a str>) -> Option<()> {
        match slot {
            Some(_) => None,
            None => {
                *slot = Some(v?);
                Some(())
            }
        }
    }
    let (mut kind, mut response_id, mut item_id, mut delta) = (None, None, None, None);
    let mut content_index: Option<u32> = None;
    crate::scan::object(text, |parent, key, value| match (parent, key) {
        // Inside an unknown member's object: ignored, as serde ignores it.
        (Some(_), _) => Some(()),
        (None, key) => match key {
            "type" => once(&mut kind, value.str()),
            "response_id" => once(&mut response_id, value.str()),
            "item_id" => once(&mut item_id, value.str()),
            "delta" => once(&mut delta, value.str()),
            "content_index" => match (content_index, value) {
                // Digits only: a sign is left to serde.
                (None, crate::scan::Value::Int(n)) if !n.starts_with('-') => {
                    content_index = Some(n.parse().ok()?);
                    Some(())
                }
                _ => None,
            },
            // The other fields of `Raw`: serde checks their types.
            "transcript" | "audio_start_ms" | "audio_end_ms" | "call_id" | "name" | "arguments"
            | "response" | "error" | "session" => None,
            _ => Some(()),
        },
    })?;
    if kind? != "response.output_audio.delta" {
        return None;
    }
    Some(ServerEvent::AudioDelta {
        response_id: response_id?.to_string(),
        item_id: item_id?.to_string(),
        content_index: content_index.unwrap_or(0),
        delta: delta?.to_string(),
    })
}

/// `input_audio_buffer.append` with a base64 payload passed through untouched.
pub fn append_audio(payload_b64: &str) -> String {
    // Base64 needs no JSON escaping, so the payload is spliced in without re-encoding
    // (and without `format!`: this runs for every caller frame).
    const HEAD: &str = r#"{"type":"input_audio_buffer.append","audio":""#;
    const TAIL: &str = r#""}"#;
    let mut out = String::with_capacity(HEAD.len() + payload_b64.len() + TAIL.len());
    out.push_str(HEAD);
    out.push_str(payload_b64);
    out.push_str(TAIL);
    out
}

/// `response.create` with no overrides (the session's configuration applies).
pub fn response_create() -> String {
    r#"{"type":"response.create"}"#.to_string()
}

/// `response.create` that makes the model say `text` word for word, without tools.
pub fn response_say_exactly(text: &str) -> String {
    json!({
        "type": "response.create",
        "response": {
            "instructions": format!("Greet the caller with these exact words and nothing else. Say exactly: \"{text}\""),
            "tool_choice": "none",
            "metadata": {"purpose": "greeting"}
        }
    })
    .to_string()
}

/// `response.create` that makes the model say `text` word for word, without tools, as
/// the last words of the call (`metadata.purpose` tells the logs which).
pub fn response_say_goodbye(text: &str, purpose: &str) -> String {
    json!({
        "type": "response.create",
        "response": {
            "instructions": format!("The call is ending now. Say goodbye with these exact words and nothing else. Say exactly: \"{text}\""),
            "tool_choice": "none",
            "metadata": {"purpose": purpose}
        }
    })
    .to_string()
}

/// `response.cancel` of the response in progress.
pub fn response_cancel() -> String {
    r#"{"type":"response.cancel"}"#.to_string()
}

/// `conversation.item.create` with a system message (a note to the model, not speech).
pub fn system_text(text: &str) -> String {
    json!({
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "system",
                 "content": [{"type": "input_text", "text": text}]}
    })
    .to_string()
}

/// `conversation.item.create` with a user text message.
pub fn user_text(text: &str) -> String {
    json!({
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": text}]}
    })
    .to_string()
}

/// `conversation.item.create` with a tool's output.
pub fn function_call_output(call_id: &str, output: &str) -> String {
    json!({
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output}
    })
    .to_string()
}

/// `conversation.item.truncate` of an assistant audio item.
pub fn truncate(item_id: &str, content_index: u32, audio_end_ms: u64) -> String {
    json!({
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": content_index,
        "audio_end_ms": audio_end_ms
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ga_events() {
        let d = r#"{"type":"response.output_audio.delta","event_id":"e","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"/w=="}"#;
        assert_eq!(
            parse_server_event(d),
            Ok(ServerEvent::AudioDelta {
                response_id: "resp_1".into(),
                item_id: "item_1".into(),
                content_index: 0,
                delta: "/w==".into()
            })
        );
        let done = r#"{"type":"response.done","response":{"id":"resp_1","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"},
            "usage":{"total_tokens":30,"input_tokens":20,"output_tokens":10,"input_token_details":{"text_tokens":5,"audio_tokens":15,"cached_tokens":4},"output_token_details":{"text_tokens":2,"audio_tokens":8}}}}"#;
        match parse_server_event(done) {
            Ok(ServerEvent::ResponseDone {
                status,
                usage: Some(u),
                ..
            }) => {
                assert_eq!(status, "cancelled");
                assert_eq!(u.input_token_details.cached_tokens, 4);
                assert_eq!(u.output_token_details.audio_tokens, 8);
            }
            other => panic!("{other:?}"),
        }
        let created = r#"{"type":"session.created","event_id":"e","session":{"type":"realtime","id":"sess_1","expires_at":1763700000}}"#;
        assert_eq!(
            parse_server_event(created),
            Ok(ServerEvent::SessionCreated {
                expires_at: Some(1763700000)
            })
        );
        let idle = r#"{"type":"input_audio_buffer.timeout_triggered","event_id":"e","item_id":"item_1","audio_start_ms":0,"audio_end_ms":8000}"#;
        assert_eq!(parse_server_event(idle), Ok(ServerEvent::IdleTimeout));
        let err = r#"{"type":"error","error":{"type":"invalid_request_error","code":"session_expired","message":"m","param":null,"event_id":null}}"#;
        assert!(
            matches!(parse_server_event(err), Ok(ServerEvent::Error(e)) if e.code.as_deref() == Some("session_expired"))
        );
    }

    /// The fast path gives serde's answer or none: checked on the published shape, on
    /// shapes it must leave to serde, and on many mutations of both.
    #[test]
    fn the_delta_fast_path_never_disagrees_with_serde() {
        let shapes = [
            r#"{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"/w=="}"#,
            r#" { "delta" : "AAAA" , "content_index" : 3 , "item_id":"i", "response_id":"r","type":"response.output_audio.delta"} "#,
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"/w==","x":{"y":"z"}}"#,
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"\/w=="}"#,
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"/w==","delta":"AA=="}"#,
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","content_index":-0,"delta":"/w=="}"#,
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","content_index":4294967296,"delta":"/w=="}"#,
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","content_index":"0","delta":"/w=="}"#,
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"/w==","session":5}"#,
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"/w==","name":null}"#,
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i"}"#,
            r#"{"type":"response.output_audio.delta","response_id":7,"item_id":"i","delta":"/w=="}"#,
            r#"{"type":"response.output_audio.done","response_id":"r","item_id":"i"}"#,
            r#"{"typ\u0065":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"/w=="}"#,
        ];
        let check = |text: &str| {
            if let Some(fast) = audio_delta_fast(text) {
                let r: Result<Raw<'_>, _> = serde_json::from_str(text);
                assert!(r.is_ok(), "fast path read what serde refuses: {text:?}");
                let slow = parse_serde(text);
                assert_eq!(Ok(fast), slow, "{text:?}");
            }
        };
        assert!(audio_delta_fast(shapes[0]).is_some());
        assert!(audio_delta_fast(shapes[1]).is_some());
        assert!(audio_delta_fast(shapes[2]).is_some());
        for s in &shapes[3..] {
            assert_eq!(audio_delta_fast(s), None, "{s}");
        }
        for s in shapes {
            check(s);
            for text in crate::mutations::of(s, 4000) {
                check(&text);
            }
        }
    }

    #[test]
    fn beta_names_are_not_audio() {
        let beta =
            r#"{"type":"response.audio.delta","response_id":"r","item_id":"i","delta":"/w=="}"#;
        assert_eq!(
            parse_server_event(beta),
            Ok(ServerEvent::Other("response.audio.delta".into()))
        );
    }

    #[test]
    fn malformed_server_frames_are_errors_not_panics() {
        assert!(parse_server_event("nope").is_err());
        assert!(parse_server_event("[]").is_err());
        assert!(parse_server_event(r#"{"type":"response.output_audio.delta"}"#).is_err());
    }

    #[test]
    fn client_events_are_json() {
        for s in [
            append_audio("/w=="),
            response_say_exactly("Hi \"there\""),
            user_text("5"),
            system_text("note"),
            response_cancel(),
            response_say_goodbye("Bye \"now\"", "goodbye"),
            function_call_output("c", "{}"),
            truncate("i", 0, 5),
        ] {
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            assert!(v["type"].is_string());
        }
    }
}
