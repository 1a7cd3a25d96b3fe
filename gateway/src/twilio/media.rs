//! Twilio Media Streams messages (bidirectional `<Connect><Stream>`).
//!
//! Inbound messages are parsed strictly: every field the event requires must be there
//! with the right type (Twilio sends numbers as strings), the payload must be valid
//! base64, and anything else is a [`ParseError`] naming what was wrong. Unknown extra
//! fields are tolerated because Twilio may add fields at any time.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// Largest payload accepted in one inbound `media` message (decoded bytes). Twilio sends
/// 160; anything past a second of audio is not Twilio.
pub const MAX_MEDIA_BYTES: usize = 8000;

/// Why an inbound message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object with a string `event`.
    #[error("not a Media Streams message: {0}")]
    NotAMessage(String),
    /// An `event` this protocol does not define.
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// A required field is missing or has the wrong type.
    #[error("{event}: {problem}")]
    BadField {
        /// The event.
        event: &'static str,
        /// What was wrong.
        problem: String,
    },
    /// The media payload is not valid base64 or is too large.
    #[error("media payload: {0}")]
    BadPayload(String),
}

impl ParseError {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::InvalidJson(_) => "invalid_json",
            ParseError::NotAMessage(_) => "not_a_message",
            ParseError::UnknownEvent(_) => "unknown_event",
            ParseError::BadField { .. } => "bad_field",
            ParseError::BadPayload(_) => "bad_payload",
        }
    }
}

/// The `start` message's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Stream id (`MZ…`).
    pub stream_sid: String,
    /// Account that owns the call.
    pub account_sid: String,
    /// The call.
    pub call_sid: String,
    /// `<Parameter>` values from the TwiML.
    pub custom_parameters: BTreeMap<String, String>,
    /// `mediaFormat.encoding` (always `audio/x-mulaw` today).
    pub encoding: String,
    /// `mediaFormat.sampleRate`.
    pub sample_rate: u32,
}

/// One inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// First message of a stream.
    Connected,
    /// Stream metadata; arrives once, right after `connected`.
    Start(Start),
    /// 20 ms of caller audio.
    Media {
        /// `media.timestamp`: ms since the stream started.
        timestamp_ms: u64,
        /// The base64 payload exactly as received (validated).
        payload: String,
        /// Decoded length in bytes (= samples at 8 kHz µ-law).
        bytes: usize,
    },
    /// A mark we sent has played (or was cleared).
    Mark {
        /// The mark's name.
        name: String,
    },
    /// The caller pressed a key.
    Dtmf {
        /// The digit (`0`-`9`, `*`, `#`, `A`-`D`).
        digit: char,
    },
    /// The call ended.
    Stop,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default, rename = "streamSid", borrow)]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    media: Option<RawMedia<'a>>,
    #[serde(default)]
    start: Option<RawStart>,
    #[serde(default)]
    mark: Option<RawMark>,
    #[serde(default)]
    dtmf: Option<RawDtmf>,
}

#[derive(Deserialize)]
struct RawMedia<'a> {
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    payload: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStart {
    stream_sid: Option<String>,
    account_sid: String,
    call_sid: String,
    #[serde(default)]
    custom_parameters: BTreeMap<String, String>,
    media_format: RawFormat,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFormat {
    encoding: String,
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawMark {
    name: String,
}

#[derive(Deserialize)]
struct RawDtmf {
    digit: String,
}

/// Whether a SID has the shape Twilio uses (2 letters + hex/alphanumerics, bounded),
/// which also makes it safe to embed in JSON without escaping.
pub fn is_sid(s: &str) -> bool {
    (4..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn bad(event: &'static str, problem: impl Into<String>) -> ParseError {
    ParseError::BadField {
        event,
        problem: problem.into(),
    }
}

/// Parses one text frame from Twilio.
pub fn parse(text: &str) -> Result<Inbound, ParseError> {
    let raw: Raw<'_> = serde_json::from_str(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ParseError::InvalidJson(e.to_string())
        } else {
            ParseError::NotAMessage(e.to_string())
        }
    })?;
    match raw.event.as_ref() {
        "connected" => Ok(Inbound::Connected),
        "start" => {
            let s = raw
                .start
                .ok_or_else(|| bad("start", "missing start object"))?;
            let stream_sid = raw
                .stream_sid
                .map(Cow::into_owned)
                .or(s.stream_sid)
                .ok_or_else(|| bad("start", "missing streamSid"))?;
            if !is_sid(&stream_sid) || !is_sid(&s.call_sid) || !is_sid(&s.account_sid) {
                return Err(bad(
                    "start",
                    "streamSid, callSid and accountSid must be SIDs",
                ));
            }
            Ok(Inbound::Start(Start {
                stream_sid,
                account_sid: s.account_sid,
                call_sid: s.call_sid,
                custom_parameters: s.custom_parameters,
                encoding: s.media_format.encoding,
                sample_rate: s.media_format.sample_rate,
            }))
        }
        "media" => {
            let m = raw
                .media
                .ok_or_else(|| bad("media", "missing media object"))?;
            let ts = m
                .timestamp
                .ok_or_else(|| bad("media", "missing media.timestamp"))?;
            let timestamp_ms: u64 = ts
                .parse()
                .map_err(|_| bad("media", format!("media.timestamp {ts:?} is not a number")))?;
            let payload = m
                .payload
                .ok_or_else(|| bad("media", "missing media.payload"))?;
            let bytes = validate_base64(&payload)?;
            Ok(Inbound::Media {
                timestamp_ms,
                payload: payload.into_owned(),
                bytes,
            })
        }
        "mark" => {
            let m = raw.mark.ok_or_else(|| bad("mark", "missing mark.name"))?;
            Ok(Inbound::Mark { name: m.name })
        }
        "dtmf" => {
            let d = raw.dtmf.ok_or_else(|| bad("dtmf", "missing dtmf object"))?;
            let mut chars = d.digit.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || "*#ABCD".contains(c) => {
                    Ok(Inbound::Dtmf { digit: c })
                }
                _ => Err(bad(
                    "dtmf",
                    format!("dtmf.digit {:?} is not a key", d.digit),
                )),
            }
        }
        "stop" => Ok(Inbound::Stop),
        other => Err(ParseError::UnknownEvent(other.chars().take(64).collect())),
    }
}

/// Checks a base64 payload and returns its decoded length, without keeping the bytes.
pub fn validate_base64(payload: &str) -> Result<usize, ParseError> {
    if payload.len() > MAX_MEDIA_BYTES.div_ceil(3) * 4 {
        return Err(ParseError::BadPayload(format!(
            "{} base64 characters is more than {MAX_MEDIA_BYTES} bytes",
            payload.len()
        )));
    }
    // Twilio's 160-byte frames decode into a small stack buffer: zero-filling one sized
    // for the largest payload cost more, on every frame, than the decoding itself.
    if payload.len() <= SMALL_PAYLOAD_CHARS {
        let mut buf = [0u8; SMALL_PAYLOAD_CHARS / 4 * 3];
        STANDARD
            .decode_slice(payload.as_bytes(), &mut buf)
            .map_err(|e| ParseError::BadPayload(e.to_string()))
    } else {
        let mut buf = Vec::with_capacity(payload.len() / 4 * 3 + 3);
        STANDARD
            .decode_vec(payload.as_bytes(), &mut buf)
            .map(|()| buf.len())
            .map_err(|e| ParseError::BadPayload(e.to_string()))
    }
}

/// Payloads up to this many base64 characters are checked on the stack (Twilio sends 216).
const SMALL_PAYLOAD_CHARS: usize = 1024;

/// A JSON text built by pushing its parts into one exactly sized buffer. `format!` goes
/// through the formatting machinery for each part, which showed in per-frame profiles.
fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// Outbound `media` message (payload must be valid base64, sid a SID).
pub fn media_message(stream_sid: &str, payload_b64: &str) -> String {
    concat(&[
        r#"{"event":"media","streamSid":""#,
        stream_sid,
        r#"","media":{"payload":""#,
        payload_b64,
        r#""}}"#,
    ])
}

/// Outbound `mark` message (name made of JSON-safe characters).
pub fn mark_message(stream_sid: &str, name: &str) -> String {
    concat(&[
        r#"{"event":"mark","streamSid":""#,
        stream_sid,
        r#"","mark":{"name":""#,
        name,
        r#""}}"#,
    ])
}

/// Outbound `clear` message.
pub fn clear_message(stream_sid: &str) -> String {
    format!(r#"{{"event":"clear","streamSid":"{stream_sid}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_published_shapes() {
        assert_eq!(
            parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#),
            Ok(Inbound::Connected)
        );
        let start = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",
            "start":{"accountSid":"AC0123456789abcdef0123456789abcdef","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0",
            "callSid":"CA0123456789abcdef0123456789abcdef","tracks":["inbound"],
            "customParameters":{"tenant":"demo"},
            "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
        match parse(start) {
            Ok(Inbound::Start(s)) => {
                assert_eq!(s.call_sid, "CA0123456789abcdef0123456789abcdef");
                assert_eq!(
                    s.custom_parameters.get("tenant").map(String::as_str),
                    Some("demo")
                );
                assert_eq!(s.sample_rate, 8000);
            }
            other => panic!("{other:?}"),
        }
        let media = r#"{"event":"media","sequenceNumber":"4","streamSid":"MZ1","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"/////w=="}}"#;
        assert_eq!(
            parse(media),
            Ok(Inbound::Media {
                timestamp_ms: 5,
                payload: "/////w==".into(),
                bytes: 4
            })
        );
        assert_eq!(
            parse(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"a:1"}}"#),
            Ok(Inbound::Mark { name: "a:1".into() })
        );
        assert_eq!(
            parse(
                r##"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"#"}}"##
            ),
            Ok(Inbound::Dtmf { digit: '#' })
        );
        assert_eq!(
            parse(
                r#"{"event":"stop","sequenceNumber":"5","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#
            ),
            Ok(Inbound::Stop)
        );
    }

    #[test]
    fn refuses_hostile_input_with_a_kind() {
        let cases = [
            ("not json", "invalid_json"),
            ("[1,2]", "not_a_message"),
            ("42", "not_a_message"),
            (r#"{"event":7}"#, "not_a_message"),
            (r#"{"event":"party"}"#, "unknown_event"),
            (
                r#"{"event":"media","media":{"timestamp":"x","payload":"AA=="}}"#,
                "bad_field",
            ),
            (
                r#"{"event":"media","media":{"timestamp":"1"}}"#,
                "bad_field",
            ),
            (
                r#"{"event":"media","media":{"timestamp":"1","payload":"!!!"}}"#,
                "bad_payload",
            ),
            (
                r#"{"event":"media","media":{"timestamp":"-1","payload":"AA=="}}"#,
                "bad_field",
            ),
            (
                r#"{"event":"media","media":{"timestamp":"18446744073709551616","payload":"AA=="}}"#,
                "bad_field",
            ),
            (
                r#"{"event":"media","media":{"timestamp":"1e30","payload":"AA=="}}"#,
                "bad_field",
            ),
            (r#"{"event":"dtmf","dtmf":{"digit":"55"}}"#, "bad_field"),
            (
                r#"{"event":"start","start":{"accountSid":"AC\"1","callSid":"CA1","streamSid":"MZ1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000}}}"#,
                "bad_field",
            ),
        ];
        for (input, kind) in cases {
            match parse(input) {
                Err(e) => assert_eq!(e.kind(), kind, "{input}: {e}"),
                Ok(m) => panic!("{input} parsed as {m:?}"),
            }
        }
        let huge = format!(
            r#"{{"event":"media","media":{{"timestamp":"1","payload":"{}"}}}}"#,
            "A".repeat(20000)
        );
        assert_eq!(parse(&huge).map_err(|e| e.kind()), Err("bad_payload"));
    }

    #[test]
    fn payloads_of_any_size_are_checked_alike() {
        for n in [0usize, 1, 2, 3, 160, 767, 768, 769, 5000, MAX_MEDIA_BYTES] {
            let p = STANDARD.encode(vec![0xA5u8; n]);
            assert_eq!(validate_base64(&p), Ok(n), "{n} bytes");
            let mut bad = p.clone();
            bad.push('!');
            assert_eq!(
                validate_base64(&bad).map_err(|e| e.kind()),
                Err("bad_payload")
            );
        }
        let too_big = STANDARD.encode(vec![0u8; MAX_MEDIA_BYTES + 3]);
        assert!(validate_base64(&too_big).is_err());
        assert!(
            validate_base64("AA==AAAA").is_err(),
            "padding in the middle"
        );
    }

    #[test]
    fn outbound_messages_are_valid_json() {
        for m in [
            media_message("MZ1", "/w=="),
            mark_message("MZ1", "item_1:20:g1:m1"),
            clear_message("MZ1"),
        ] {
            let v: serde_json::Value = serde_json::from_str(&m).unwrap();
            assert_eq!(v["streamSid"], "MZ1");
        }
    }
}
