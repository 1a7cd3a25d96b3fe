//! The known field a misspelt key most likely meant.

/// The name among `known` closest to `key`, when one is close enough to be a slip of the
/// keyboard (a letter or two per word, case ignored); `None` rather than a far-fetched
/// guess.
pub(super) fn closest<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let key_lower = key.to_lowercase();
    // One edit in four characters (at least one): `phoneNumber` -> `phoneNumbers`,
    // `interuptible` -> `interruptible`, but `colour` matches nothing.
    let limit = (key_lower.chars().count() / 4).max(1);
    known
        .into_iter()
        .map(|name| {
            let distance = strsim::damerau_levenshtein(&key_lower, &name.to_lowercase());
            (distance, name)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn a_slip_finds_the_field_and_a_stranger_finds_none() {
        let spec = [
            "displayName",
            "phoneNumbers",
            "twilio",
            "openai",
            "agent",
            "tools",
        ];
        assert_eq!(closest("phoneNumber", spec), Some("phoneNumbers"));
        assert_eq!(closest("phonenumbers", spec), Some("phoneNumbers"));
        assert_eq!(closest("twlio", spec), Some("twilio"));
        assert_eq!(closest("colour", spec), None);
        assert_eq!(closest("x", spec), None);
    }
}
