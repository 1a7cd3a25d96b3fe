//! The Twilio side of a load call: webhook parameters, the TwiML answer, and
//! Media Streams messages as Twilio writes them (numbers as strings).

use crate::caller::xml::Element;

/// The form parameters Twilio sends with an inbound call's webhook.
pub fn webhook_params(
    account_sid: &str,
    call_sid: &str,
    from: &str,
    to: &str,
) -> Vec<(String, String)> {
    [
        ("AccountSid", account_sid),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Called", to),
        ("Caller", from),
        ("Direction", "inbound"),
        ("From", from),
        ("To", to),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// What the TwiML told Twilio to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `<Connect><Stream url>` with its `<Parameter>`s.
    Stream {
        /// WebSocket URL.
        url: String,
        /// Custom parameters in document order.
        params: Vec<(String, String)>,
    },
    /// `<Reject>` (busy, over capacity).
    Rejected,
    /// Anything else (`<Say>…<Hangup/>`, garbage).
    Other,
}

/// Reads the parts of a TwiML answer a load call needs: the first `<Stream>`'s url and its
/// `<Parameter>`s in document order, through the caller's XML reader. A document that is
/// not well-formed XML is `Other`, as Twilio would not act on it either.
pub fn parse_answer(twiml: &str) -> Answer {
    let Ok(root) = crate::caller::xml::parse(twiml) else {
        return Answer::Other;
    };
    if let Some(stream) = find(&root, "Stream") {
        let Some(url) = stream.attr("url") else {
            return Answer::Other;
        };
        let params = stream
            .elements()
            .filter(|p| p.name == "Parameter")
            .filter_map(|p| Some((p.attr("name")?.to_owned(), p.attr("value")?.to_owned())))
            .collect();
        return Answer::Stream {
            url: url.to_owned(),
            params,
        };
    }
    if find(&root, "Reject").is_some() {
        Answer::Rejected
    } else {
        Answer::Other
    }
}

/// The first element named `name` in document order, `el` included.
fn find<'a>(el: &'a Element, name: &str) -> Option<&'a Element> {
    if el.name == name {
        return Some(el);
    }
    el.elements().find_map(|child| find(child, name))
}

/// Twilio's `connected` message.
pub fn connected() -> String {
    r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned()
}

/// Twilio's `start` message (sequence number 1).
pub fn start(
    stream_sid: &str,
    account_sid: &str,
    call_sid: &str,
    params: &[(String, String)],
) -> String {
    let custom: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "accountSid": account_sid,
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": custom,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        }
    })
    .to_string()
}

/// Appends the decimal digits of `n` (what `format!` would write, without its machinery).
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Appends `s` as a JSON string literal (quoted; escaped only when it must be).
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::Value::from(s).to_string());
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// A `media` message; `chunk` counts from 1, `timestamp_ms` from the stream's start. The
/// payload is written by `payload` straight into the message (one buffer per frame).
pub fn media_with(
    seq: u64,
    stream_sid: &str,
    chunk: u64,
    timestamp_ms: u64,
    payload_len: usize,
    payload: impl FnOnce(&mut String),
) -> String {
    let mut m = String::with_capacity(128 + stream_sid.len() + payload_len);
    m.push_str(r#"{"event":"media","sequenceNumber":""#);
    push_u64(&mut m, seq);
    m.push_str(r#"","streamSid":"#);
    push_json_str(&mut m, stream_sid);
    m.push_str(r#","media":{"track":"inbound","chunk":""#);
    push_u64(&mut m, chunk);
    m.push_str(r#"","timestamp":""#);
    push_u64(&mut m, timestamp_ms);
    m.push_str(r#"","payload":""#);
    payload(&mut m);
    m.push_str(r#""}}"#);
    m
}

/// A `media` message; `chunk` counts from 1, `timestamp_ms` from the stream's start.
#[cfg(test)]
pub fn media(seq: u64, stream_sid: &str, chunk: u64, timestamp_ms: u64, payload: &str) -> String {
    media_with(seq, stream_sid, chunk, timestamp_ms, payload.len(), |m| {
        m.push_str(payload)
    })
}

/// A `mark` echo.
pub fn mark(seq: u64, stream_sid: &str, name: &str) -> String {
    let mut m = String::with_capacity(80 + stream_sid.len() + name.len());
    m.push_str(r#"{"event":"mark","sequenceNumber":""#);
    push_u64(&mut m, seq);
    m.push_str(r#"","streamSid":"#);
    push_json_str(&mut m, stream_sid);
    m.push_str(r#","mark":{"name":"#);
    push_json_str(&mut m, name);
    m.push_str("}}");
    m
}

/// Twilio's `stop` message.
pub fn stop(seq: u64, stream_sid: &str, account_sid: &str, call_sid: &str) -> String {
    format!(
        r#"{{"event":"stop","sequenceNumber":"{seq}","streamSid":"{stream_sid}","stop":{{"accountSid":"{account_sid}","callSid":"{call_sid}"}}}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_answer_with_parameters() {
        let twiml = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="ws://127.0.0.1:1/twilio/stream/demo/CA1"><Parameter name="tenant" value="demo"/><Parameter name="from" value="+1&amp;2"/><Parameter name="to" value=""/><Parameter name='token' value='ab&quot;c'/></Stream></Connect></Response>"#;
        let Answer::Stream { url, params } = parse_answer(twiml) else {
            panic!("not a stream answer");
        };
        assert_eq!(url, "ws://127.0.0.1:1/twilio/stream/demo/CA1");
        let expected: Vec<(String, String)> = [
            ("tenant", "demo"),
            ("from", "+1&2"),
            ("to", ""),
            ("token", "ab\"c"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(params, expected);
    }

    #[test]
    fn busy_and_other_answers() {
        assert_eq!(
            parse_answer(r#"<Response><Reject reason="busy"/></Response>"#),
            Answer::Rejected
        );
        assert_eq!(
            parse_answer("<Response><Say>Sorry</Say><Hangup/></Response>"),
            Answer::Other
        );
        assert_eq!(
            parse_answer("<Response><Connect><Stream name=\"x\">"),
            Answer::Other
        );
        assert_eq!(parse_answer("<Stream url=\"unterminated"), Answer::Other);
    }

    #[test]
    fn messages_are_json_with_string_numbers() {
        let m: serde_json::Value = serde_json::from_str(&media(4, "MZ1", 3, 40, "AAAA")).unwrap();
        assert_eq!(m["sequenceNumber"], "4");
        assert_eq!(m["media"]["chunk"], "3");
        assert_eq!(m["media"]["timestamp"], "40");
        assert_eq!(m["media"]["payload"], "AAAA");
        let s: serde_json::Value =
            serde_json::from_str(&start("MZ1", "AC1", "CA1", &[("k".into(), "v\"".into())]))
                .unwrap();
        assert_eq!(s["start"]["customParameters"]["k"], "v\"");
        assert_eq!(s["start"]["mediaFormat"]["sampleRate"], 8000);
        let k: serde_json::Value = serde_json::from_str(&mark(9, "MZ1", "a\"b")).unwrap();
        assert_eq!(k["mark"]["name"], "a\"b");
        let k: serde_json::Value = serde_json::from_str(&mark(0, "MZ\\1", "plain")).unwrap();
        assert_eq!(k["sequenceNumber"], "0");
        assert_eq!(k["streamSid"], "MZ\\1");
        assert_eq!(k["mark"]["name"], "plain");
        let m: serde_json::Value =
            serde_json::from_str(&media(u64::MAX, "MZ1", 1, 0, "AAAA")).unwrap();
        assert_eq!(m["sequenceNumber"], u64::MAX.to_string());
        assert_eq!(m["media"]["track"], "inbound");
        let p: serde_json::Value = serde_json::from_str(&stop(10, "MZ1", "AC1", "CA1")).unwrap();
        assert_eq!(p["stop"]["callSid"], "CA1");
        assert!(serde_json::from_str::<serde_json::Value>(&connected()).is_ok());
    }
}
