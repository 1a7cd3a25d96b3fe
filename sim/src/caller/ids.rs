//! Twilio-style resource ids.

/// A random id in Twilio's format: a two-letter prefix (`CA` call, `MZ` stream, `AC`
/// account) and 32 lowercase hex digits.
pub fn new_sid(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sids_have_twilio_shape_and_differ() {
        let a = new_sid("CA");
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("CA"));
        assert!(
            a[2..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, new_sid("CA"));
    }
}
