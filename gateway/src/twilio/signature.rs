//! `X-Twilio-Signature`: HMAC-SHA1 over the URL and the sorted POST parameters.
//!
//! Twilio signs the URL it requested, so the URL is rebuilt from the configured public
//! base URL, never from the `Host` header (a proxy or an attacker controls that).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

fn mac_over(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha1::new_from_slice(auth_token.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Unix byte order of names; equal names keep value order, as Twilio's helper libraries do.
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA1 accepts keys of any length")
}

/// The signature Twilio would send for a form POST (or, with no params, a GET or a
/// WebSocket handshake) to `url`.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac_over(auth_token, url, params).finalize().into_bytes())
}

/// Whether `header` is a valid signature of the request for any of the `urls` Twilio
/// may have signed. Compares in constant time.
pub fn verify(
    auth_token: &str,
    urls: &[String],
    params: &[(String, String)],
    header: &str,
) -> bool {
    let Ok(expected) = STANDARD.decode(header.trim()) else {
        return false;
    };
    urls.iter().any(|url| {
        mac_over(auth_token, url, params)
            .verify_slice(&expected)
            .is_ok()
    })
}

/// The URLs Twilio may have signed for `public_base` + `path_and_query`.
///
/// Twilio drops the port from HTTPS voice callback URLs before signing, and some
/// WebSocket handshakes are signed with a trailing `/`; each variant is accepted.
pub fn candidate_urls(public_base: &str, path_and_query: &str, websocket: bool) -> Vec<String> {
    let base = public_base.trim_end_matches('/');
    let base = if websocket {
        if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_string()
        }
    } else {
        base.to_string()
    };
    let mut out = vec![format!("{base}{path_and_query}")];
    if let Some(no_port) = without_port(&base) {
        out.push(format!("{no_port}{path_and_query}"));
    }
    if websocket && !path_and_query.ends_with('/') {
        let with_slash: Vec<String> = out.iter().map(|u| format!("{u}/")).collect();
        out.extend(with_slash);
    }
    out
}

fn without_port(base: &str) -> Option<String> {
    let (scheme, rest) = base.split_once("://")?;
    if scheme != "https" && scheme != "wss" {
        return None;
    }
    let (host_port, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    let (host, port) = host_port.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{scheme}://{host}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn twilio_published_vector() {
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute("12345", url, &doc_params()),
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        );
        assert!(verify(
            "12345",
            &[url.to_string()],
            &doc_params(),
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        ));
    }

    #[test]
    fn parameter_order_does_not_matter_but_values_do() {
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        let mut p = doc_params();
        p.reverse();
        assert!(verify(
            "12345",
            &[url.to_string()],
            &p,
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        ));
        p[0].1.push('0');
        assert!(!verify(
            "12345",
            &[url.to_string()],
            &p,
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        ));
    }

    #[test]
    fn wrong_token_missing_or_garbage_signature_fail() {
        let url = "https://example.com/myapp.php?foo=1&bar=2".to_string();
        assert!(!verify(
            "54321",
            std::slice::from_ref(&url),
            &doc_params(),
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        ));
        assert!(!verify(
            "12345",
            std::slice::from_ref(&url),
            &doc_params(),
            ""
        ));
        assert!(!verify("12345", &[url], &doc_params(), "%%% not base64"));
    }

    #[test]
    fn candidates_cover_port_drop_and_websocket_scheme() {
        let c = candidate_urls("https://gw.example.com:8443/", "/twilio/voice", false);
        assert_eq!(
            c,
            vec![
                "https://gw.example.com:8443/twilio/voice",
                "https://gw.example.com/twilio/voice"
            ]
        );
        let c = candidate_urls("http://127.0.0.1:8080", "/twilio/stream/demo/CA1", true);
        assert_eq!(
            c,
            vec![
                "ws://127.0.0.1:8080/twilio/stream/demo/CA1",
                "ws://127.0.0.1:8080/twilio/stream/demo/CA1/"
            ]
        );
    }
}
