//! The GA Realtime server events the load responder sends, as JSON text.
//!
//! Shapes follow the GA API (`session.type`, `audio.input/output`,
//! `response.output_audio.delta`); the session object is fixed (PCMU both ways), because a
//! load responder does not act on the configuration it is sent. Session, item and part
//! objects come from the full simulator (`crate::realtime::wire`).

use serde_json::{Value, json};

use crate::realtime::wire;

/// Ids of one responder session's single, endless response.
#[derive(Debug, Clone)]
pub struct Ids {
    /// `sess_…`.
    pub session: String,
    /// `resp_…`.
    pub response: String,
    /// `item_…` (the assistant message).
    pub item: String,
    /// `conv_…`.
    pub conversation: String,
}

impl Ids {
    /// Ids for responder session `index` of run `run`.
    pub fn new(run: u32, index: u32) -> Self {
        let id = |prefix: &str| format!("{prefix}_{run:08x}{index:08x}");
        Self {
            session: id("sess"),
            response: id("resp"),
            item: id("item"),
            conversation: id("conv"),
        }
    }
}

fn session_object(ids: &Ids) -> Value {
    wire::pcmu_session(&ids.session, "gpt-realtime", "marin")
}

/// `session.created` or `session.updated`.
pub fn session_event(kind: &str, event_id: &str, ids: &Ids) -> String {
    json!({"type": kind, "event_id": event_id, "session": session_object(ids)}).to_string()
}

fn item(ids: &Ids) -> Value {
    wire::assistant_json(&ids.item, "in_progress", true, None)
}

/// The events that open the response, in the order OpenAI sends them; `event_ids` gives one
/// id per event.
pub fn response_start(ids: &Ids, mut event_id: impl FnMut() -> String) -> Vec<String> {
    vec![
        json!({
            "type": "response.created",
            "event_id": event_id(),
            "response": {
                "object": "realtime.response",
                "id": ids.response,
                "status": "in_progress",
                "status_details": null,
                "output": [],
                "conversation_id": ids.conversation,
                "output_modalities": ["audio"],
                "max_output_tokens": "inf",
                "audio": {"output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
                "usage": null,
                "metadata": null
            }
        })
        .to_string(),
        json!({
            "type": "conversation.item.added",
            "event_id": event_id(),
            "previous_item_id": null,
            "item": item(ids)
        })
        .to_string(),
        json!({
            "type": "response.output_item.added",
            "event_id": event_id(),
            "response_id": ids.response,
            "output_index": 0,
            "item": item(ids)
        })
        .to_string(),
        json!({
            "type": "response.content_part.added",
            "event_id": event_id(),
            "response_id": ids.response,
            "item_id": ids.item,
            "output_index": 0,
            "content_index": 0,
            "part": wire::empty_part(true)
        })
        .to_string(),
    ]
}

/// Everything of a `response.output_audio.delta` before its event id's sequence number,
/// so a delta is built with two string pushes.
pub fn delta_prefix(ids: &Ids) -> String {
    format!(
        r#"{{"type":"response.output_audio.delta","response_id":"{}","item_id":"{}","output_index":0,"content_index":0,"event_id":"event_{}_"#,
        ids.response, ids.item, ids.session
    )
}

/// A complete delta event from its prefix, sequence number and base64 audio.
pub fn delta(prefix: &str, seq: u32, audio_b64: &str) -> String {
    delta_with(prefix, seq, audio_b64.len(), |s| s.push_str(audio_b64))
}

/// A complete delta event whose audio `audio` writes straight into the event (one buffer
/// per frame); `audio_len` is its length, for the allocation.
pub fn delta_with(
    prefix: &str,
    seq: u32,
    audio_len: usize,
    audio: impl FnOnce(&mut String),
) -> String {
    let mut s = String::with_capacity(prefix.len() + audio_len + 24);
    s.push_str(prefix);
    super::twilio::push_u64(&mut s, u64::from(seq));
    s.push_str(r#"","delta":""#);
    audio(&mut s);
    s.push_str(r#""}"#);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_ga_fields_the_gateway_reads() {
        let ids = Ids::new(1, 2);
        let d: Value = serde_json::from_str(&delta(&delta_prefix(&ids), 7, "AAAA")).unwrap();
        assert_eq!(d["type"], "response.output_audio.delta");
        assert_eq!(d["response_id"], ids.response);
        assert_eq!(d["item_id"], ids.item);
        assert_eq!(d["output_index"], 0);
        assert_eq!(d["content_index"], 0);
        assert_eq!(d["delta"], "AAAA");
        assert_eq!(d["event_id"], format!("event_{}_7", ids.session));

        let mut n = 0;
        let start = response_start(&ids, || {
            n += 1;
            format!("e{n}")
        });
        let created: Value = serde_json::from_str(&start[0]).unwrap();
        assert_eq!(created["type"], "response.created");
        assert_eq!(created["response"]["id"], ids.response);
        let types: Vec<String> = start
            .iter()
            .map(|s| {
                serde_json::from_str::<Value>(s).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            types,
            [
                "response.created",
                "conversation.item.added",
                "response.output_item.added",
                "response.content_part.added"
            ]
        );

        let s: Value = serde_json::from_str(&session_event("session.updated", "e9", &ids)).unwrap();
        assert_eq!(s["session"]["type"], "realtime");
        assert_eq!(
            s["session"]["audio"]["output"]["format"]["type"],
            "audio/pcmu"
        );
    }
}
