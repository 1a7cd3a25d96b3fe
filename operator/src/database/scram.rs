//! SCRAM-SHA-256 password verifiers (RFC 5802, RFC 7677), computed here so that a
//! tenant's password never reaches the server, its statement logs or
//! `pg_stat_activity` in clear: `CREATE ROLE … PASSWORD 'SCRAM-SHA-256$…'` stores the
//! verifier as given, exactly as Postgres would have computed it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Postgres's default `scram_iterations`.
const ITERATIONS: u32 = 4096;
/// Salt length Postgres uses.
const SALT_LEN: usize = 16;

/// The verifier of `password` with a fresh random salt, or `None` when Postgres would
/// normalise the password first (SASLprep changes some non-ASCII text): the server must
/// then hash it itself.
pub(super) fn verifier(password: &str) -> Option<String> {
    if password.is_empty() || !password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    Some(verifier_with(password, &salt, ITERATIONS))
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let salted = salted_password(password.as_bytes(), salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// SCRAM's `Hi()`: PBKDF2-HMAC-SHA256 with one output block (32 bytes).
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_postgres() {
        // What PostgreSQL 18 stored for `CREATE ROLE x PASSWORD 'pencil'` (it chose the
        // salt): the same password and salt must give the same verifier here.
        let stored = "SCRAM-SHA-256$4096:NirZD9Vr73bfJRGn+gC8Jw==$\
                      1Caza8Rm3NYM/Eaj//LCxZTKiQYU0NNZLvLdPfS2JTc=:\
                      tiZBJNQ2NX2jnJWXnuVG42circ/2lEg/Bpw/41REFKI=";
        let salt = STANDARD.decode("NirZD9Vr73bfJRGn+gC8Jw==").unwrap();
        assert_eq!(verifier_with("pencil", &salt, 4096), stored);
    }

    #[test]
    fn salts_differ_and_odd_passwords_go_to_the_server() {
        assert_ne!(verifier("pw"), verifier("pw"));
        assert_eq!(verifier("pässword"), None);
        assert_eq!(verifier(""), None);
    }
}
