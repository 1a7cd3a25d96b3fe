//! Test inputs for the JSON fast paths: small random edits of a well-formed message, the
//! edge cases a hand-written scanner gets wrong (one copy for every fast path's test).

use rand::Rng;

/// Bytes an edit inserts or writes: JSON's structure, digits, escapes, control bytes.
const ALPHABET: &[u8] = b"{}[]\":,. -01239eEaA/+=_tnul\\\n\t\x01";

/// `n` variants of `seed`, each with one to three random edits (replace, remove or
/// insert one byte); variants that are not UTF-8 are left out.
pub(crate) fn of(seed: &str, n: usize) -> Vec<String> {
    let mut rng = rand::rng();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut b = seed.as_bytes().to_vec();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..=b.len());
            let c = ALPHABET[rng.random_range(0..ALPHABET.len())];
            match rng.random_range(0..3) {
                0 if at < b.len() => b[at] = c,
                1 if at < b.len() => {
                    b.remove(at);
                }
                _ => b.insert(at, c),
            }
        }
        if let Ok(text) = String::from_utf8(b) {
            out.push(text);
        }
    }
    out
}
