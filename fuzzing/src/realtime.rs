//! The OpenAI Realtime (GA) wire format: server events in, client events out.

use serde_json::Value;
use switchboard_gateway::realtime::wire::{self, ServerEvent};

/// `switchboard_gateway::realtime::wire::parse_server_event` on one server text frame
/// (what the call task does with every frame), and the client-event builders with the
/// input as their free text.
///
/// Must hold: no panic; every builder gives JSON that carries the text back unchanged.
pub fn realtime_event(data: &[u8]) {
    let text = crate::text(data);
    match wire::parse_server_event(&text) {
        Ok(ServerEvent::AudioDelta { delta, .. }) => {
            // The call session splices the delta into a Twilio message as is.
            let _ = delta.len();
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }

    let user = json(&wire::user_text(&text));
    assert_eq!(user["item"]["content"][0]["text"].as_str(), Some(&*text));
    let out = json(&wire::function_call_output(&text, &text));
    assert_eq!(out["item"]["call_id"].as_str(), Some(&*text));
    assert_eq!(out["item"]["output"].as_str(), Some(&*text));
    let say = json(&wire::response_say_exactly(&text));
    let instructions = say["response"]["instructions"].as_str().unwrap_or_default();
    assert!(instructions.contains(&*text));
    let cut = json(&wire::truncate(&text, 0, u64::MAX));
    assert_eq!(cut["item_id"].as_str(), Some(&*text));
    assert_eq!(cut["audio_end_ms"].as_u64(), Some(u64::MAX));
}

fn json(s: &str) -> Value {
    match serde_json::from_str(s) {
        Ok(v) => v,
        Err(e) => panic!("client event is not JSON ({e}): {s}"),
    }
}
