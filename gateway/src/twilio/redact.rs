//! Caller numbers in logs: personal data, so info-level logs carry only a masked form
//! unless the tenant opts in (`spec.logging.callerNumbers`).

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

/// `number` as an info-level log line may show it: in full when the tenant opted in
/// (`spec.logging.callerNumbers`), else [`mask_number`].
pub fn number_for_log(number: &str, tenant_opted_in: bool) -> String {
    if tenant_opted_in {
        number.to_owned()
    } else {
        mask_number(number)
    }
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

    #[test]
    fn full_numbers_only_when_the_tenant_opted_in() {
        assert_eq!(number_for_log("+15551234567", false), "***67");
        assert_eq!(number_for_log("+15551234567", true), "+15551234567");
    }
}
