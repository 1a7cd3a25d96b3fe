//! Caller numbers in logs: personal data, so info-level logs carry only a masked form.

/// `+15551234567` → `***67`: enough to tell calls apart in a log, not to call anyone back.
/// Values of two characters or fewer are masked entirely.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 2 {
        return "***".to_owned();
    }
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("***{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_two_characters() {
        assert_eq!(mask_number("+15551234567"), "***67");
        assert_eq!(mask_number("anonymous"), "***us");
        assert_eq!(mask_number("12"), "***");
        assert_eq!(mask_number(""), "***");
        assert_eq!(mask_number("+1555123456é"), "***6é");
    }
}
