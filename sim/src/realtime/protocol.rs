//! Wire shapes the server emits: identifiers, `error` events, and the hot-path deltas.

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use serde_json::{Value, json};

/// `prefix` followed by 21 random alphanumerics, the shape of OpenAI's ids.
pub fn random_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 21);
    id.push_str(prefix);
    id.extend(
        rand::rng()
            .sample_iter(Alphanumeric)
            .take(21)
            .map(char::from),
    );
    id
}

/// Server `event_id`s: a random per-session stem and a counter, so the per-event cost is
/// one small format rather than a random draw.
#[derive(Debug, Clone)]
pub struct EventIds {
    stem: String,
    next: u64,
}

impl Default for EventIds {
    fn default() -> Self {
        let mut stem = random_id("event_");
        stem.truncate(6 + 12);
        Self { stem, next: 0 }
    }
}

impl EventIds {
    /// A fresh event id.
    pub fn next_id(&mut self) -> String {
        self.next += 1;
        format!("{}{:07x}", self.stem, self.next)
    }
}

/// A client-visible failure, rendered as a GA `error` event.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// `invalid_request_error` or `server_error`.
    pub kind: &'static str,
    /// Machine-readable code, e.g. `unknown_parameter`.
    pub code: Option<&'static str>,
    /// Human-readable message.
    pub message: String,
    /// Offending parameter path, e.g. `session.type`.
    pub param: Option<String>,
}

impl ApiError {
    /// An `invalid_request_error` with a code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind: "invalid_request_error",
            code: Some(code),
            message: message.into(),
            param: None,
        }
    }

    /// Attaches the offending parameter.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// `Unknown parameter: 'path'.`
    pub fn unknown_parameter(path: &str) -> Self {
        Self::invalid("unknown_parameter", format!("Unknown parameter: '{path}'.")).with_param(path)
    }

    /// `Missing required parameter: 'path'.`
    pub fn missing(path: &str) -> Self {
        Self::invalid(
            "missing_required_parameter",
            format!("Missing required parameter: '{path}'."),
        )
        .with_param(path)
    }

    /// An `invalid_value` error for `path`.
    pub fn invalid_value(path: &str, message: impl Into<String>) -> Self {
        Self::invalid("invalid_value", message).with_param(path)
    }

    /// An `invalid_type` error for `path`.
    pub fn invalid_type(path: &str, expected: &str) -> Self {
        Self::invalid(
            "invalid_type",
            format!("Invalid type for '{path}': expected {expected}."),
        )
        .with_param(path)
    }

    /// An internal failure of the server.
    pub fn server_error() -> Self {
        Self {
            kind: "server_error",
            code: None,
            message: "The server had an error while processing your request. Sorry about that!"
                .to_owned(),
            param: None,
        }
    }

    /// The `error` server event, echoing the client's `event_id` if it sent one.
    pub fn to_event(&self, event_id: String, client_event_id: Option<&str>) -> Value {
        json!({
            "type": "error",
            "event_id": event_id,
            "error": {
                "type": self.kind,
                "code": self.code,
                "message": self.message,
                "param": self.param,
                "event_id": client_event_id,
            }
        })
    }
}

/// `response.output_audio.delta` and `response.output_audio_transcript.delta`, serialised
/// without building a JSON tree (these are most of the traffic).
#[derive(Debug, Serialize)]
pub struct ContentDelta<'a> {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Server event id.
    pub event_id: &'a str,
    /// Owning response.
    pub response_id: &'a str,
    /// Owning item.
    pub item_id: &'a str,
    /// Item position in the response.
    pub output_index: usize,
    /// Content part position in the item.
    pub content_index: usize,
    /// Base64 audio or transcript text.
    pub delta: &'a str,
}

/// Estimated tokens for a piece of text (about four characters per token).
pub fn text_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// Estimated tokens for input audio (about ten per second).
pub fn input_audio_tokens(ms: u64) -> u64 {
    ms.div_ceil(100)
}

/// Estimated tokens for output audio (about twenty per second).
pub fn output_audio_tokens(ms: u64) -> u64 {
    ms.div_ceil(50)
}

/// Token counts of one response, rendered in the GA `usage` shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input text tokens (instructions, text items, transcripts of earlier turns).
    pub input_text: u64,
    /// Input audio tokens.
    pub input_audio: u64,
    /// Cached part of `input_text`.
    pub cached_text: u64,
    /// Cached part of `input_audio`.
    pub cached_audio: u64,
    /// Output text tokens (transcript or text).
    pub output_text: u64,
    /// Output audio tokens.
    pub output_audio: u64,
}

impl Usage {
    /// The `usage` object of `response.done`.
    pub fn to_json(self) -> Value {
        let input = self.input_text + self.input_audio;
        let output = self.output_text + self.output_audio;
        json!({
            "total_tokens": input + output,
            "input_tokens": input,
            "output_tokens": output,
            "input_token_details": {
                "text_tokens": self.input_text,
                "audio_tokens": self.input_audio,
                "image_tokens": 0,
                "cached_tokens": self.cached_text + self.cached_audio,
                "cached_tokens_details": {
                    "text_tokens": self.cached_text,
                    "audio_tokens": self.cached_audio,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {
                "text_tokens": self.output_text,
                "audio_tokens": self.output_audio,
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_openai_shape() {
        let id = random_id("resp_");
        assert_eq!(id.len(), 26);
        assert!(id[5..].chars().all(|c| c.is_ascii_alphanumeric()));
        let mut ev = EventIds::default();
        assert_ne!(ev.next_id(), ev.next_id());
    }

    #[test]
    fn error_event_echoes_the_client_event_id() {
        let e = ApiError::unknown_parameter("session.modalities")
            .to_event("event_1".into(), Some("c1"));
        assert_eq!(e["type"], "error");
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["code"], "unknown_parameter");
        assert_eq!(e["error"]["param"], "session.modalities");
        assert_eq!(e["error"]["event_id"], "c1");
    }

    #[test]
    fn usage_totals_add_up() {
        let u = Usage {
            input_text: 10,
            input_audio: 20,
            cached_text: 5,
            cached_audio: 0,
            output_text: 3,
            output_audio: 40,
        };
        let v = u.to_json();
        assert_eq!(v["total_tokens"], 73);
        assert_eq!(v["input_tokens"], 30);
        assert_eq!(v["output_tokens"], 43);
        assert_eq!(v["input_token_details"]["cached_tokens"], 5);
    }
}
