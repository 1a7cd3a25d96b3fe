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

use crate::scan::{self, Value};

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
    #[serde(default, borrow)]
    mark: Option<RawMark<'a>>,
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
struct RawMark<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
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
    // `media` and `mark` are nearly every message of a call (50 of each a second): read
    // in one pass when they are plain, by serde otherwise.
    let raw = match raw_fast(text) {
        Some(raw) => raw,
        None => raw_serde(text)?,
    };
    from_raw(raw)
}

fn raw_serde(text: &str) -> Result<Raw<'_>, ParseError> {
    serde_json::from_str(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ParseError::InvalidJson(e.to_string())
        } else {
            ParseError::NotAMessage(e.to_string())
        }
    })
}

/// Sets `slot` once: a field given twice is an error for serde, so not for the fast path.
fn once<'a>(slot: &mut Option<&'a str>, value: Option<&'a str>) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value?);
            Some(())
        }
    }
}

/// A plain `media` or `mark` message read without serde (see [`crate::scan`]), or `None`
/// for anything else: then serde reads it. Accepted only when serde would read the same
/// [`Raw`] from it: each field of `Raw` (and of `media` and `mark`) at most once and of the
/// type serde wants, no `start` or `dtmf` (serde checks their shape), unknown fields
/// ignored as serde ignores them.
fn raw_fast(text: &str) -> Option<Raw<'_>> {
    let (mut event, mut stream_sid) = (None, None);
    let (mut timestamp, mut payload, mut name) = (None, None, None);
    let (mut media, mut mark) = (false, false);
    scan::object(text, |parent, key, value| match (parent, key) {
        (None, "event") => once(&mut event, value.str()),
        (None, "streamSid") => once(&mut stream_sid, value.str()),
        // An object's members come before the object itself.
        (Some("media"), "timestamp") => once(&mut timestamp, value.str()),
        (Some("media"), "payload") => once(&mut payload, value.str()),
        (Some("mark"), "name") => once(&mut name, value.str()),
        (None, "media") if !media && matches!(value, Value::Object(_)) => {
            media = true;
            Some(())
        }
        (None, "mark") if !mark && matches!(value, Value::Object(_)) => {
            mark = true;
            Some(())
        }
        (None, "media" | "mark" | "start" | "dtmf") => None,
        _ => Some(()),
    })?;
    Some(Raw {
        event: Cow::Borrowed(event?),
        stream_sid: stream_sid.map(Cow::Borrowed),
        media: media.then(|| RawMedia {
            timestamp: timestamp.map(Cow::Borrowed),
            payload: payload.map(Cow::Borrowed),
        }),
        start: None,
        mark: if mark {
            Some(RawMark {
                name: Cow::Borrowed(name?),
            })
        } else {
            None
        },
        dtmf: None,
    })
}

fn from_raw(raw: Raw<'_>) -> Result<Inbound, ParseError> {
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
            Ok(Inbound::Mark {
                name: m.name.into_owned(),
            })
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
    // Checked without decoding (the bytes are not needed); only a refused payload is
    // decoded, for the decoder's own description of what is wrong.
    match base64_len(payload) {
        Some(n) => Ok(n),
        None => Err(ParseError::BadPayload(match STANDARD.decode(payload) {
            Err(e) => e.to_string(),
            Ok(_) => "not canonical base64".into(),
        })),
    }
}

/// The decoded length of `b64` when it is what the standard engine of the `base64` crate
/// decodes (RFC 4648 alphabet, canonical `=` padding, unused bits of the last symbol
/// zero), `None` otherwise, without decoding it: a relay forwards the text as it came and
/// needs only its length (and to know it is base64, so it can go into JSON unescaped).
pub fn base64_len(b64: &str) -> Option<usize> {
    let b = b64.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let pad = b.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    let body = &b[..b.len() - pad];
    // Comparisons rather than a table, and no early exit within a block: the compiler
    // then checks many bytes per instruction.
    for block in body.chunks(32) {
        let bad = block.iter().fold(false, |bad, &c| {
            let letter = (c | 0x20).wrapping_sub(b'a') < 26;
            let digit = c.wrapping_sub(b'0') < 10;
            bad | !(letter | digit | (c == b'+') | (c == b'/'))
        });
        if bad {
            return None;
        }
    }
    let unused_bits = match (pad, body.last()) {
        (0, _) | (_, None) => 0,
        (1, Some(&c)) => symbol(c) & 0b11,
        (_, Some(&c)) => symbol(c) & 0b1111,
    };
    (unused_bits == 0).then(|| b.len() / 4 * 3 - pad)
}

/// The 6-bit value of a base64 symbol (the caller has checked it is one).
fn symbol(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    }
}

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

    /// The fast path gives serde's answer or none: on the published shapes, on shapes it
    /// must leave to serde, and on many mutations of both.
    #[test]
    fn the_fast_path_never_disagrees_with_serde() {
        let shapes = [
            r#"{"event":"media","sequenceNumber":"4","streamSid":"MZ1","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"/////w=="}}"#,
            r#"{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":{"name":"item_1:20:g0:m1"}}"#,
            r#" { "media" : { "payload" : "AA==" , "timestamp" : "0" } , "event" : "media" } "#,
            r#"{"event":"stop","sequenceNumber":"5","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#,
            r#"{"event":"media","media":{"timestamp":"1","payload":"AA==","payload":"AA=="}}"#,
            r#"{"event":"media","media":{"timestamp":1,"payload":"AA=="}}"#,
            r#"{"event":"media","media":{"timestamp":"1","payload":"\/w=="}}"#,
            r#"{"event":"media","media":{"timestamp":"1","payload":"AA=="},"media":{"timestamp":"2","payload":"AA=="}}"#,
            r#"{"event":"media","media":"x"}"#,
            r#"{"event":"media","media":null}"#,
            r#"{"event":"mark","mark":{}}"#,
            r#"{"event":"mark","mark":{"name":5}}"#,
            r#"{"event":"mark","mark":{"name":"a\"1"}}"#,
            r#"{"event":"mark","event":"media","mark":{"name":"a"}}"#,
            r#"{"event":"media","start":{"x":"y"},"media":{"timestamp":"1","payload":"AA=="}}"#,
            r#"{"event":"dtmf","dtmf":{"digit":"1"}}"#,
            r#"{"streamSid":"MZ1"}"#,
            r#"{"ev\u0065nt":"media","media":{"timestamp":"1","payload":"AA=="}}"#,
        ];
        let check = |text: &str| {
            if let Some(fast) = raw_fast(text) {
                let slow = raw_serde(text);
                assert!(slow.is_ok(), "fast path read what serde refuses: {text:?}");
                let slow = slow.map(from_raw).ok();
                assert_eq!(Some(from_raw(fast)), slow, "{text:?}");
            }
        };
        for s in &shapes[..4] {
            assert!(raw_fast(s).is_some(), "{s}");
        }
        for s in &shapes[4..] {
            assert!(raw_fast(s).is_none(), "{s}");
        }
        for s in shapes {
            check(s);
            for text in crate::mutations::of(s, 4000) {
                check(&text);
            }
        }
    }

    /// `base64_len` accepts exactly what the decoder accepts, with its length: every
    /// string of up to 4 characters over symbols that matter (padding, symbols with and
    /// without low bits, outsiders) and random longer ones.
    #[test]
    fn base64_len_agrees_with_the_decoder() {
        let chars: Vec<char> = "AQBgw/+=9az!- \n\u{e9}".chars().collect();
        let agree = |s: &str| {
            assert_eq!(
                base64_len(s),
                STANDARD.decode(s).ok().map(|d| d.len()),
                "{s:?}"
            );
        };
        let mut strings = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = strings
                .iter()
                .filter(|s| s.chars().count() == strings.last().map_or(0, |l| l.chars().count()))
                .flat_map(|s| chars.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(longer);
        }
        assert!(strings.len() > 60_000);
        for s in &strings {
            agree(s);
        }
        let mut rng = rand::rng();
        for n in 0..2000usize {
            let bytes: Vec<u8> = (0..n % 300).map(|_| rand::Rng::random(&mut rng)).collect();
            let mut s = STANDARD.encode(&bytes);
            agree(&s);
            if !s.is_empty() {
                let at = rand::Rng::random_range(&mut rng, 0..s.len());
                let c = chars[rand::Rng::random_range(&mut rng, 0..chars.len())];
                s.replace_range(at..=at, &c.to_string());
                agree(&s);
            }
        }
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
