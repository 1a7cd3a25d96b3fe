//! What tests get to inspect: a record of each session's traffic and decisions.

use serde_json::{Value, json};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// One connection's record.
#[derive(Debug, Clone)]
pub struct SessionLog {
    /// `model` query parameter.
    pub model: String,
    /// Whether a non-empty bearer token was sent.
    pub authorization_present: bool,
    /// Whether an `OpenAI-Beta` header was sent (the session is then refused).
    pub beta_header: bool,
    /// Every client event in order. Audio bodies are not kept: a run of consecutive
    /// appends is one `{"type":"input_audio_buffer.append","bytes":N,"count":K}` entry;
    /// unparseable frames are `{"invalid_json": "<first 200 chars>"}`.
    pub events: Vec<Value>,
    /// Decoded audio bytes appended.
    pub audio_bytes_in: u64,
    /// Whether audio arrived before the first accepted `session.update`.
    pub audio_before_session_update: bool,
    /// Effective session configuration (the GA session object).
    pub session: Value,
    /// Every `conversation.item.truncate`.
    pub truncates: Vec<TruncateLog>,
    /// Every `error` event sent.
    pub errors_sent: Vec<Value>,
    /// Every response, in creation order.
    pub responses: Vec<ResponseLog>,
    /// Text of user `input_text` content (DTMF digits and the like).
    pub user_texts: Vec<String>,
    /// `(call_id, output)` of every `function_call_output` item.
    pub function_outputs: Vec<(String, String)>,
    /// Whether the connection has ended.
    pub closed: bool,
    /// Why it ended: `client closed (code N)`, `session_expired`, `server_error`,
    /// `beta_api_shape_disabled`, `shutdown`, or a transport error.
    pub close_reason: Option<String>,
    /// When the WebSocket was accepted.
    pub connected_at: Instant,
}

impl SessionLog {
    /// An empty record for a new connection.
    pub fn new(model: String, authorization_present: bool, beta_header: bool) -> Self {
        Self {
            model,
            authorization_present,
            beta_header,
            events: Vec::new(),
            audio_bytes_in: 0,
            audio_before_session_update: false,
            session: Value::Null,
            truncates: Vec::new(),
            errors_sent: Vec::new(),
            responses: Vec::new(),
            user_texts: Vec::new(),
            function_outputs: Vec::new(),
            closed: false,
            close_reason: None,
            connected_at: Instant::now(),
        }
    }

    /// Records an append of `bytes` decoded bytes, merging it into a preceding append run.
    pub fn record_append(&mut self, bytes: u64) {
        self.audio_bytes_in += bytes;
        if let Some(last) = self.events.last_mut()
            && last.get("type").and_then(Value::as_str) == Some("input_audio_buffer.append")
        {
            let b = last.get("bytes").and_then(Value::as_u64).unwrap_or(0);
            let c = last.get("count").and_then(Value::as_u64).unwrap_or(0);
            last["bytes"] = json!(b + bytes);
            last["count"] = json!(c + 1);
            return;
        }
        self.events
            .push(json!({"type": "input_audio_buffer.append", "bytes": bytes, "count": 1}));
    }

    /// Types of the recorded client events, in order.
    pub fn event_types(&self) -> Vec<&str> {
        self.events
            .iter()
            .map(|e| e.get("type").and_then(Value::as_str).unwrap_or(""))
            .collect()
    }
}

/// One `conversation.item.truncate` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncateLog {
    /// Target item.
    pub item_id: String,
    /// Requested cut.
    pub audio_end_ms: u64,
    /// Audio generated for the item when the request arrived (0 if unknown).
    pub generated_ms: u64,
    /// Whether `conversation.item.truncated` was sent.
    pub accepted: bool,
}

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseLog {
    /// `resp_…`.
    pub response_id: String,
    /// First assistant message item (or the function call item if there is none).
    pub item_id: String,
    /// Text of the message items.
    pub text: String,
    /// Audio generated, in ms.
    pub generated_ms: u64,
    /// `in_progress`, `completed` or `cancelled`.
    pub status: String,
    /// `(name, arguments)` of function calls the response made.
    pub function_calls: Vec<(String, String)>,
}

/// A session record shared between its task and the server's snapshot accessor; locked
/// only for short, await-free updates.
#[derive(Debug, Clone)]
pub struct SharedLog(Arc<Mutex<SessionLog>>);

impl SharedLog {
    /// Wraps a record.
    pub fn new(log: SessionLog) -> Self {
        Self(Arc::new(Mutex::new(log)))
    }

    /// Locks the record; a panic elsewhere while holding it does not make it unreadable.
    pub fn lock(&self) -> MutexGuard<'_, SessionLog> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> SessionLog {
        self.lock().clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_appends_are_merged() {
        let mut log = SessionLog::new("m".into(), true, false);
        log.record_append(160);
        log.record_append(160);
        log.events.push(json!({"type": "response.create"}));
        log.record_append(80);
        assert_eq!(log.audio_bytes_in, 400);
        assert_eq!(
            log.event_types(),
            vec![
                "input_audio_buffer.append",
                "response.create",
                "input_audio_buffer.append"
            ]
        );
        assert_eq!(log.events[0]["bytes"], 320);
        assert_eq!(log.events[0]["count"], 2);
    }
}
