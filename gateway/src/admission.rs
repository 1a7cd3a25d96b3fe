//! Stream admission: what lets a media stream become a call.
//!
//! The webhook (signed by Twilio) is the only thing that proves a call is real; the
//! stream that follows carries a token the webhook issued. The token is MAC'd with a key
//! derived from the tenant's Twilio auth token for this one purpose (HKDF-SHA256), so a
//! stream token never doubles as a webhook signature key and vice versa.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// HKDF `info` of the stream admission key: names the purpose, so the same auth token
/// yields unrelated keys for anything else derived from it later.
const STREAM_KEY_INFO: &[u8] = b"switchboard stream admission v1";

/// Bytes of the MAC carried in a token (128 bits).
const TAG_BYTES: usize = 16;

/// The key that MACs a tenant's stream tokens. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct StreamKey([u8; 32]);

impl std::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamKey(..)")
    }
}

impl StreamKey {
    /// Derives the stream key from a tenant's Twilio auth token.
    pub fn derive(auth_token: &str) -> Self {
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit: expand cannot fail.
        let _ = Hkdf::<Sha256>::new(None, auth_token.as_bytes()).expand(STREAM_KEY_INFO, &mut key);
        Self(key)
    }

    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        for p in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") never MAC alike.
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac
    }

    /// The hex tag over `parts`.
    pub fn tag(&self, parts: &[&[u8]]) -> String {
        hex::encode(&self.mac(parts).finalize().into_bytes()[..TAG_BYTES])
    }

    /// Whether `tag` is the hex tag over `parts` (constant-time compare).
    pub fn verify(&self, parts: &[&[u8]], tag: &str) -> bool {
        let Ok(bytes) = hex::decode(tag) else {
            return false;
        };
        bytes.len() == TAG_BYTES && self.mac(parts).verify_truncated_left(&bytes).is_ok()
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA256 accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_key_is_not_the_auth_token() {
        let token = "e2e-auth-token-0123456789";
        let key = StreamKey::derive(token);
        // The old scheme: HMAC keyed with the auth token itself.
        let mut old = Hmac::<Sha256>::new_from_slice(token.as_bytes()).unwrap();
        old.update(b"switchboard-stream:CA1");
        let old = hex::encode(&old.finalize().into_bytes()[..TAG_BYTES]);
        assert_ne!(key.tag(&[b"CA1"]), old);
        assert_ne!(key.0.as_slice(), token.as_bytes());
        assert!(key.verify(&[b"CA1"], &key.tag(&[b"CA1"])));
        assert!(!key.verify(&[b"CA2"], &key.tag(&[b"CA1"])));
        assert!(!StreamKey::derive("other").verify(&[b"CA1"], &key.tag(&[b"CA1"])));
        assert!(!key.verify(&[b"C", b"A1"], &key.tag(&[b"CA1"])));
        assert!(!key.verify(&[b"CA1"], "zz"));
        assert!(!key.verify(&[b"CA1"], &key.tag(&[b"CA1"])[..30]));
        assert_eq!(format!("{key:?}"), "StreamKey(..)");
    }
}
