//! What both Realtime servers of this crate share above the per-frame path: the full
//! simulator (`sim call`, [`crate::realtime`]) and the load responder (`sim load`) check
//! the handshake's key and build their session, item and content-part objects here, so the
//! two cannot drift apart. The per-frame deltas stay with each server: the load
//! responder's are built by hand for cost (docs/performance.md).

use serde_json::{Value, json};

use super::codec::AudioFormat;
use super::settings::SessionConfig;

/// The API key of an `Authorization: Bearer KEY` header, or `None` when the header is
/// missing, not Bearer, or blank (OpenAI answers 401 to all three).
pub(crate) fn bearer_key(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

/// A GA session object with µ-law audio both ways, manual turns and no instructions: what
/// a session looks like to a client that has not configured anything else.
pub(crate) fn pcmu_session(id: &str, model: &str, voice: &str) -> Value {
    let mut s = SessionConfig::new(id.to_owned(), model.to_owned(), 0);
    s.instructions = String::new();
    s.input_format = AudioFormat::Pcmu;
    s.output_format = AudioFormat::Pcmu;
    s.turn_detection = None;
    s.voice = json!(voice);
    s.to_json()
}

/// An assistant message item; `text` is `None` while no content part exists yet.
pub(crate) fn assistant_json(id: &str, status: &str, audio: bool, text: Option<&str>) -> Value {
    let content = match text {
        None => json!([]),
        Some(t) if audio => json!([{"type": "output_audio", "transcript": t}]),
        Some(t) => json!([{"type": "output_text", "text": t}]),
    };
    json!({
        "id": id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

/// The empty content part of `response.content_part.added`.
pub(crate) fn empty_part(audio: bool) -> Value {
    if audio {
        json!({"type": "audio", "transcript": ""})
    } else {
        json!({"type": "text", "text": ""})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_keys_must_be_present_and_not_blank() {
        assert_eq!(bearer_key(Some("Bearer sk-x")), Some("sk-x"));
        assert_eq!(bearer_key(Some("Bearer  ")), None);
        assert_eq!(bearer_key(Some("Basic abc")), None);
        assert_eq!(bearer_key(None), None);
    }

    #[test]
    fn pcmu_session_is_a_ga_session_with_mulaw_both_ways() {
        let s = pcmu_session("sess_1", "gpt-realtime", "marin");
        assert_eq!(s["type"], "realtime");
        assert_eq!(s["audio"]["input"]["format"]["type"], "audio/pcmu");
        assert_eq!(s["audio"]["output"]["format"]["type"], "audio/pcmu");
        assert_eq!(s["audio"]["output"]["voice"], "marin");
        assert!(s["audio"]["input"]["turn_detection"].is_null());
    }
}
