//! Media-stream wire messages: what the simulated Twilio sends, and a strict reader for
//! what a gateway may send back (only `media`, `mark` and `clear` are valid).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Builds Twilio → gateway messages with the counters Twilio keeps: `sequenceNumber`
/// over every message after `connected`, `chunk` over media messages only. Numbers
/// travel as strings, as in Twilio's JSON.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    account_sid: String,
    call_sid: String,
    stream_sid: String,
    seq: u64,
    chunk: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, T: Serialize> {
    event: &'static str,
    sequence_number: String,
    stream_sid: &'a str,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartBody<'a> {
    start: Start<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Start<'a> {
    account_sid: &'a str,
    stream_sid: &'a str,
    call_sid: &'a str,
    tracks: [&'static str; 1],
    custom_parameters: &'a BTreeMap<String, String>,
    media_format: MediaFormat,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    encoding: &'static str,
    sample_rate: u32,
    channels: u32,
}

#[derive(Serialize)]
struct MediaBody {
    media: Media,
}

#[derive(Serialize)]
struct Media {
    track: &'static str,
    chunk: String,
    timestamp: String,
    payload: String,
}

#[derive(Serialize)]
struct DtmfBody {
    dtmf: Dtmf,
}

#[derive(Serialize)]
struct Dtmf {
    track: &'static str,
    digit: String,
}

#[derive(Serialize)]
struct MarkBody<'a> {
    mark: Mark<'a>,
}

#[derive(Serialize)]
struct Mark<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct StopBody<'a> {
    stop: Stop<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stop<'a> {
    account_sid: &'a str,
    call_sid: &'a str,
}

impl Outbound {
    /// Counters for a new stream.
    pub fn new(account_sid: &str, call_sid: &str, stream_sid: &str) -> Self {
        Self {
            account_sid: account_sid.to_owned(),
            call_sid: call_sid.to_owned(),
            stream_sid: stream_sid.to_owned(),
            seq: 0,
            chunk: 0,
        }
    }

    fn envelope<T: Serialize>(&mut self, event: &'static str, body: T) -> String {
        self.seq += 1;
        let env = Envelope {
            event,
            sequence_number: self.seq.to_string(),
            stream_sid: &self.stream_sid,
            body,
        };
        // Plain structs of strings and maps: serialisation cannot fail.
        serde_json::to_string(&env).unwrap_or_default()
    }

    /// `connected`, the first message on every stream (no sequence number).
    pub fn connected(&self) -> String {
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned()
    }

    /// `start`, right after `connected`.
    pub fn start(&mut self, custom_parameters: &BTreeMap<String, String>) -> String {
        let (account_sid, stream_sid, call_sid) = (
            self.account_sid.clone(),
            self.stream_sid.clone(),
            self.call_sid.clone(),
        );
        self.envelope(
            "start",
            StartBody {
                start: Start {
                    account_sid: &account_sid,
                    stream_sid: &stream_sid,
                    call_sid: &call_sid,
                    tracks: ["inbound"],
                    custom_parameters,
                    media_format: MediaFormat {
                        encoding: "audio/x-mulaw",
                        sample_rate: 8000,
                        channels: 1,
                    },
                },
            },
        )
    }

    /// One inbound `media` frame presented `timestamp_ms` after the stream started.
    pub fn media(&mut self, timestamp_ms: u64, audio: &[u8]) -> String {
        self.chunk += 1;
        let media = Media {
            track: "inbound",
            chunk: self.chunk.to_string(),
            timestamp: timestamp_ms.to_string(),
            payload: B64.encode(audio),
        };
        self.envelope("media", MediaBody { media })
    }

    /// A keypress on the caller's phone.
    pub fn dtmf(&mut self, digit: char) -> String {
        let dtmf = Dtmf {
            track: "inbound_track",
            digit: digit.to_string(),
        };
        self.envelope("dtmf", DtmfBody { dtmf })
    }

    /// Echo of a gateway mark whose audio has played (or was cleared).
    pub fn mark(&mut self, name: &str) -> String {
        self.envelope(
            "mark",
            MarkBody {
                mark: Mark { name },
            },
        )
    }

    /// `stop`: the caller hung up.
    pub fn stop(&mut self) -> String {
        let (account_sid, call_sid) = (self.account_sid.clone(), self.call_sid.clone());
        self.envelope(
            "stop",
            StopBody {
                stop: Stop {
                    account_sid: &account_sid,
                    call_sid: &call_sid,
                },
            },
        )
    }
}

/// A valid gateway → Twilio message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GatewayMessage {
    /// Raw µ-law audio to queue for playout.
    Media(Vec<u8>),
    /// A mark to echo once the audio queued before it has played.
    Mark(String),
    /// Drop all queued audio and echo pending marks.
    Clear,
}

/// Reads one text frame from the gateway. `Err` is the violation as Twilio would log it
/// (warning 31951 for an invalid message).
pub(crate) fn parse_gateway_text(text: &str, stream_sid: &str) -> Result<GatewayMessage, String> {
    let bad = |why: String| format!("31951 invalid message: {why}: {}", excerpt(text));
    let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let Value::Object(obj) = value else {
        return Err(bad("not a JSON object".to_owned()));
    };
    let event = match obj.get("event") {
        Some(Value::String(e)) => e.as_str(),
        Some(_) => return Err(bad("event is not a string".to_owned())),
        None => return Err(bad("no event".to_owned())),
    };
    let (body_key, allowed): (Option<&str>, &[&str]) = match event {
        "media" => (Some("media"), &["event", "streamSid", "media"]),
        "mark" => (Some("mark"), &["event", "streamSid", "mark"]),
        "clear" => (None, &["event", "streamSid"]),
        other => return Err(bad(format!("unknown event {other:?}"))),
    };
    exact_keys(&obj, allowed).map_err(&bad)?;
    match obj.get("streamSid") {
        Some(Value::String(s)) if s == stream_sid => {}
        Some(Value::String(s)) => {
            return Err(bad(format!("streamSid {s:?} is not the active stream")));
        }
        _ => return Err(bad("streamSid is not a string".to_owned())),
    }
    let Some(key) = body_key else {
        return Ok(GatewayMessage::Clear);
    };
    let Some(Value::Object(body)) = obj.get(key) else {
        return Err(bad(format!("{key} is not an object")));
    };
    let field = if key == "media" { "payload" } else { "name" };
    exact_keys(body, &[field]).map_err(|why| bad(format!("{key}: {why}")))?;
    let Some(Value::String(s)) = body.get(field) else {
        return Err(bad(format!("{key}.{field} is not a string")));
    };
    if key == "media" {
        let audio = B64
            .decode(s)
            .map_err(|e| bad(format!("media.payload is not base64 ({e})")))?;
        Ok(GatewayMessage::Media(audio))
    } else {
        Ok(GatewayMessage::Mark(s.clone()))
    }
}

fn exact_keys(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("unexpected field {extra:?}"));
    }
    if let Some(missing) = allowed.iter().find(|k| !obj.contains_key(**k)) {
        return Err(format!("missing field {missing:?}"));
    }
    Ok(())
}

/// The start of a message, for reports (payloads can be large).
fn excerpt(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SID: &str = "MZ00000000000000000000000000000001";

    #[test]
    fn outbound_shapes_and_counters() {
        let mut out = Outbound::new("ACa", "CAb", SID);
        let connected: Value = serde_json::from_str(&out.connected()).unwrap();
        assert_eq!(
            connected,
            serde_json::json!({"event":"connected","protocol":"Call","version":"1.0.0"})
        );
        let params = BTreeMap::from([("tenant".to_owned(), "t1".to_owned())]);
        let start: Value = serde_json::from_str(&out.start(&params)).unwrap();
        assert_eq!(
            start,
            serde_json::json!({"event":"start","sequenceNumber":"1","streamSid":SID,
                "start":{"accountSid":"ACa","streamSid":SID,"callSid":"CAb","tracks":["inbound"],
                "customParameters":{"tenant":"t1"},
                "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}})
        );
        let media: Value = serde_json::from_str(&out.media(0, &[0xFF; 160])).unwrap();
        assert_eq!(media["sequenceNumber"], "2");
        assert_eq!(media["media"]["chunk"], "1");
        assert_eq!(media["media"]["timestamp"], "0");
        assert_eq!(media["media"]["track"], "inbound");
        assert_eq!(
            B64.decode(media["media"]["payload"].as_str().unwrap())
                .unwrap(),
            [0xFF; 160]
        );
        let dtmf: Value = serde_json::from_str(&out.dtmf('5')).unwrap();
        assert_eq!(
            dtmf,
            serde_json::json!({"event":"dtmf","sequenceNumber":"3","streamSid":SID,
                "dtmf":{"track":"inbound_track","digit":"5"}})
        );
        let media: Value = serde_json::from_str(&out.media(20, &[0xFF; 160])).unwrap();
        assert_eq!(media["sequenceNumber"], "4");
        assert_eq!(media["media"]["chunk"], "2");
        assert_eq!(media["media"]["timestamp"], "20");
        let mark: Value = serde_json::from_str(&out.mark("m1")).unwrap();
        assert_eq!(
            mark,
            serde_json::json!({"event":"mark","sequenceNumber":"5","streamSid":SID,"mark":{"name":"m1"}})
        );
        let stop: Value = serde_json::from_str(&out.stop()).unwrap();
        assert_eq!(
            stop,
            serde_json::json!({"event":"stop","sequenceNumber":"6","streamSid":SID,
                "stop":{"accountSid":"ACa","callSid":"CAb"}})
        );
    }

    #[test]
    fn accepts_the_three_valid_messages() {
        let media =
            format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"//8A"}}}}"#);
        assert_eq!(
            parse_gateway_text(&media, SID),
            Ok(GatewayMessage::Media(vec![0xFF, 0xFF, 0x00]))
        );
        let mark = format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{"name":"x:1"}}}}"#);
        assert_eq!(
            parse_gateway_text(&mark, SID),
            Ok(GatewayMessage::Mark("x:1".into()))
        );
        let clear = format!(r#"{{"streamSid":"{SID}","event":"clear"}}"#);
        assert_eq!(parse_gateway_text(&clear, SID), Ok(GatewayMessage::Clear));
    }

    #[test]
    fn everything_else_is_a_violation() {
        let other = "MZffffffffffffffffffffffffffffffff";
        for bad in [
            "not json".to_owned(),
            "[1,2]".to_owned(),
            format!(r#"{{"streamSid":"{SID}"}}"#),
            format!(r#"{{"event":"start","streamSid":"{SID}"}}"#),
            r#"{"event":"clear"}"#.to_owned(),
            format!(r#"{{"event":"clear","streamSid":"{other}"}}"#),
            format!(r#"{{"event":"clear","streamSid":"{SID}","extra":1}}"#),
            format!(r#"{{"event":"media","streamSid":"{SID}"}}"#),
            format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"!!"}}}}"#),
            format!(
                r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"//8A","track":"outbound"}}}}"#
            ),
            format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":7}}}}"#),
            format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{}}}}"#),
            format!(r#"{{"event":"mark","streamSid":"{SID}","mark":"m"}}"#),
            format!(r#"{{"event":3,"streamSid":"{SID}"}}"#),
        ] {
            let err = parse_gateway_text(&bad, SID).expect_err(&bad);
            assert!(err.starts_with("31951"), "{err}");
        }
    }
}
