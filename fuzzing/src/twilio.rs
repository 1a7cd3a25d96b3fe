//! Twilio: Media Streams messages ([`twilio_media`]) and webhook form bodies with their
//! `X-Twilio-Signature` ([`twilio_signature`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use switchboard_gateway::twilio::media::{self, Inbound, MAX_MEDIA_BYTES};
use switchboard_gateway::twilio::signature;

/// `switchboard_gateway::twilio::media::parse` on one text frame (what the call task does
/// with every frame Twilio sends), and `validate_base64` against a plain base64 decode.
///
/// Must hold: no panic; a `start` carries SIDs; a `media` payload is base64 of at most
/// [`MAX_MEDIA_BYTES`] bytes whose decoded length is the `bytes` reported, and splices into
/// an outbound `media` message that is JSON; a `dtmf` digit is a key; an error has a kind.
pub fn twilio_media(data: &[u8]) {
    let text = crate::text(data);
    match media::parse(&text) {
        Ok(Inbound::Start(s)) => {
            for sid in [&s.stream_sid, &s.call_sid, &s.account_sid] {
                assert!(media::is_sid(sid), "start accepted a non-SID {sid:?}");
            }
        }
        Ok(Inbound::Media { payload, bytes, .. }) => {
            let decoded = STANDARD.decode(payload.as_bytes());
            assert_eq!(
                decoded.as_ref().map(Vec::len).ok(),
                Some(bytes),
                "payload {payload:?}"
            );
            assert!(bytes <= MAX_MEDIA_BYTES, "{bytes} bytes accepted");
            let out = media::media_message("MZ0123456789abcdef", &payload);
            let json: Result<serde_json::Value, _> = serde_json::from_str(&out);
            assert!(json.is_ok(), "outbound media message is not JSON: {out}");
        }
        Ok(Inbound::Dtmf { digit }) => {
            assert!(
                digit.is_ascii_digit() || "*#ABCD".contains(digit),
                "{digit:?}"
            );
        }
        Ok(Inbound::Connected | Inbound::Mark { .. } | Inbound::Stop) => {}
        Err(e) => {
            assert!(!e.kind().is_empty());
            let _ = e.to_string();
        }
    }
    // The stack-buffer fast path and the heap path must agree with a plain decode.
    let checked = media::validate_base64(&text);
    if text.len() <= MAX_MEDIA_BYTES.div_ceil(3) * 4 {
        let plain = STANDARD.decode(text.as_bytes()).map(|v| v.len());
        assert_eq!(checked.ok(), plain.ok(), "validate_base64({text:?})");
    } else {
        assert!(checked.is_err(), "{} characters accepted", text.len());
    }
}

/// A webhook form body and the signature check around it. The input is split at its
/// first four newlines into auth token, public base URL, path and query, the
/// `X-Twilio-Signature` header, and the body (bytes, parsed as the gateway's `http::form`
/// does: `form_urlencoded`, duplicates kept; that module is private to the gateway, so its
/// one-line parse is repeated here). The first byte of the path picks HTTP or WebSocket.
///
/// Must hold: no panic; [`signature::candidate_urls`] lists the URL as written first;
/// the signature [`signature::compute`] gives for a candidate URL [`signature::verify`]s
/// and equals the simulator's independent signer; an arbitrary header is checked without
/// panicking (and is accepted only if it decodes to the right MAC).
pub fn twilio_signature(data: &[u8]) {
    let mut parts = data.splitn(5, |b| *b == b'\n');
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (token, base, path, header) = (next(), next(), next(), next());
    let body = data.splitn(5, |b| *b == b'\n').nth(4).unwrap_or_default();
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let websocket = path.len() % 2 == 1;

    let urls = signature::candidate_urls(&base, &path, websocket);
    assert!(!urls.is_empty());
    if !websocket {
        assert_eq!(urls[0], format!("{}{path}", base.trim_end_matches('/')));
    }
    for url in &urls {
        let sig = signature::compute(&token, url, &params);
        assert!(
            signature::verify(&token, std::slice::from_ref(url), &params, &sig),
            "own signature refused for {url:?}"
        );
        assert!(signature::verify(&token, &urls, &params, &sig));
        assert_eq!(
            sig,
            switchboard_sim::signature::twilio_signature(&token, url, &params),
            "gateway and simulator sign {url:?} differently"
        );
    }
    if signature::verify(&token, &urls, &params, &header) {
        let expected = STANDARD.decode(header.trim()).unwrap_or_default();
        assert!(
            urls.iter().any(|u| STANDARD
                .decode(signature::compute(&token, u, &params))
                .is_ok_and(|mac| mac == expected)),
            "header {header:?} accepted without matching any candidate"
        );
    }
}
