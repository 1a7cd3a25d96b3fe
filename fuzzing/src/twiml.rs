//! TwiML: the simulator's reader on arbitrary documents ([`twiml`]), and the gateway's
//! builders with arbitrary strings read back by that reader ([`twiml_roundtrip`]).

use std::collections::BTreeMap;

use switchboard_gateway::twilio::twiml as build;
use switchboard_sim::caller::{Twiml, parse_twiml, resolve_stream_url};

/// The webhook URL the simulator resolves relative stream URLs against.
const WEBHOOK: &str = "https://gw.example.com/twilio/voice";
/// The fallback verbs the gateway writes after `</Connect>` (fixed here: the fuzzed
/// strings are the rest).
const AFTER: &str = "<Say>Sorry.</Say><Hangup/>";

/// `switchboard_sim::caller::parse_twiml` on the input as a webhook answer, and
/// `resolve_stream_url` on any stream URL it finds (what the caller simulator does with
/// a gateway's answer). Must hold: no panic.
pub fn twiml(data: &[u8]) {
    let text = crate::text(data);
    if let Ok(Twiml::Connect(target)) = parse_twiml(&text) {
        let _ = resolve_stream_url(&target.url, WEBHOOK);
    }
}

/// The gateway's TwiML builders with strings from the input (split at newlines: the
/// stream URL, then parameter names and values in turn; the whole input as `<Say>` text),
/// read back by the simulator's reader.
///
/// Must hold: what `connect_stream` writes reads back as `<Connect><Stream>` with the same
/// URL and parameters (the last of equal names wins, as in the reader's map), and what
/// `say_and_hangup` writes as a refusal saying the same (trimmed) text — each with the
/// characters XML cannot hold replaced by U+FFFD, as the builders write them.
pub fn twiml_roundtrip(data: &[u8]) {
    let text = crate::text(data);
    let xml = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if build::is_xml_char(c) {
                    c
                } else {
                    char::REPLACEMENT_CHARACTER
                }
            })
            .collect()
    };
    let mut fields = text.split('\n');
    let url = fields.next().unwrap_or_default();
    let rest: Vec<&str> = fields.collect();
    let params: Vec<(&str, &str)> = rest
        .chunks(2)
        .map(|p| (p[0], p.get(1).copied().unwrap_or_default()))
        .collect();
    // The gateway always writes an absolute URL; a blank one is refused by the reader.
    if !url.trim().is_empty() {
        let doc = build::connect_stream(url, &params, AFTER);
        match parse_twiml(&doc) {
            Ok(Twiml::Connect(target)) => {
                assert_eq!(target.url, xml(url), "url of {doc}");
                let expected: BTreeMap<String, String> =
                    params.iter().map(|(n, v)| (xml(n), xml(v))).collect();
                assert_eq!(target.parameters, expected, "parameters of {doc}");
            }
            other => panic!("connect_stream wrote {doc:?}, read back as {other:?}"),
        }
    }

    let doc = build::say_and_hangup(&text);
    let expected = Twiml::Refused(format!("hangup after say \"{}\"", xml(&text).trim()));
    assert_eq!(
        parse_twiml(&doc),
        Ok(expected),
        "say_and_hangup wrote {doc:?}"
    );
}
