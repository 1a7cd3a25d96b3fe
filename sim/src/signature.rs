//! `X-Twilio-Signature`: how Twilio signs webhooks and the media-stream handshake.
//!
//! The one signer of the crate: the caller (`sim call`), its status callbacks and the load
//! generator (`sim load`) all sign through [`twilio_signature`].

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Which `X-Twilio-Signature` header a simulated request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureMode {
    /// The signature Twilio would compute with the configured auth token.
    #[default]
    Valid,
    /// A well-formed signature computed with a different key.
    Wrong,
    /// No header at all.
    Missing,
}

/// Twilio's request signature: `base64(HMAC-SHA1(auth_token, url + name1 + value1 + …))`
/// with the parameters sorted by name in byte order (then by value, so repeated names
/// stay deterministic; Twilio's helper libraries sort a repeated name's values too, and
/// the gateway's validator does the same).
///
/// `url` must be the URL exactly as Twilio signs it; see [`signing_url`].
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL Twilio feeds into the signature for a voice callback: for `https` it drops any
/// port and any `user:pass@` before signing; other URLs are signed as configured.
pub fn signing_url(configured: &str) -> String {
    let Ok(mut url) = url::Url::parse(configured) else {
        return configured.to_owned();
    };
    if url.scheme() != "https" || (url.port().is_none() && !has_userinfo(&url)) {
        // Re-serialising could normalise the text (e.g. add a trailing '/'), which would
        // change what is signed; only touch URLs Twilio itself rewrites.
        return configured.to_owned();
    }
    // Both setters only fail for URLs that cannot have a host, and https always has one.
    let _ = url.set_port(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

fn has_userinfo(url: &url::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// The header value to send for `mode`, or `None` when the header is to be left out.
pub(crate) fn header_for(
    mode: SignatureMode,
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
) -> Option<String> {
    match mode {
        SignatureMode::Valid => Some(twilio_signature(auth_token, url, params)),
        SignatureMode::Wrong => Some(twilio_signature(
            &format!("{auth_token}-not-the-token"),
            url,
            params,
        )),
        SignatureMode::Missing => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn matches_twilio_published_vector() {
        // Deliberately unsorted: the function must sort.
        let params = vec![
            p("To", "+18005551212"),
            p("CallSid", "CA1234567890ABCDE"),
            p("Digits", "1234"),
            p("From", "+14158675310"),
            p("Caller", "+14158675310"),
        ];
        assert_eq!(
            twilio_signature(
                "12345",
                "https://example.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        );
    }

    #[test]
    fn sorting_is_byte_order_not_case_insensitive() {
        let a = twilio_signature("k", "u", &[p("b", "1"), p("B", "2")]);
        // Byte order puts "B" (0x42) before "b" (0x62).
        let mut mac = Hmac::<Sha1>::new_from_slice(b"k").unwrap();
        mac.update(b"uB2b1");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(a, expected);
    }

    #[test]
    fn signature_matches_twilios_documented_example() {
        // Moved from the load generator's own signer (sim/src/load/twilio.rs).
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .rev()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            twilio_signature(
                "12345",
                "https://example.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        );
    }

    #[test]
    fn a_repeated_name_is_signed_with_its_values_sorted() {
        // The load generator's old signer sorted by name only and kept the values in
        // request order; Twilio's helpers (and the gateway) sort the values as well.
        let a = twilio_signature("k", "u", &[p("n", "2"), p("n", "1")]);
        let b = twilio_signature("k", "u", &[p("n", "1"), p("n", "2")]);
        assert_eq!(a, b);
        let mut mac = Hmac::<Sha1>::new_from_slice(b"k").unwrap();
        mac.update(b"un1n2");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(a, expected);
    }

    #[test]
    fn https_port_and_credentials_are_dropped_before_signing() {
        assert_eq!(
            signing_url("https://user:pw@gw.example.com:8443/twilio/voice?x=1"),
            "https://gw.example.com/twilio/voice?x=1"
        );
        assert_eq!(
            signing_url("http://127.0.0.1:8080/twilio/voice"),
            "http://127.0.0.1:8080/twilio/voice"
        );
        assert_eq!(
            signing_url("https://gw.example.com/twilio/voice"),
            "https://gw.example.com/twilio/voice"
        );
    }

    #[test]
    fn modes_produce_valid_wrong_and_no_header() {
        let params = [p("CallSid", "CA1")];
        let valid = header_for(SignatureMode::Valid, "t", "u", &params);
        let wrong = header_for(SignatureMode::Wrong, "t", "u", &params);
        assert_eq!(
            valid.as_deref(),
            Some(twilio_signature("t", "u", &params).as_str())
        );
        assert!(wrong.is_some());
        assert_ne!(valid, wrong);
        assert_eq!(header_for(SignatureMode::Missing, "t", "u", &params), None);
    }
}
