//! String formats the API accepts, each as a Rust predicate (what [`crate::validate`] runs)
//! and as the regular expression published in the CRD schema (what an API server runs).
//!
//! The two forms must agree; `tests/schema.rs` checks every pair on the same samples.
//! The patterns are RE2 syntax, the dialect of the Kubernetes API server.

/// Pattern of a Twilio API key SID.
pub const API_KEY_SID_PATTERN: &str = "^SK[0-9a-fA-F]{32}$";
/// Pattern of a transfer target's name (the length limit is separate).
pub const TRANSFER_NAME_PATTERN: &str = "^[a-z][a-z0-9_-]*$";
/// Pattern of a SIP URI to dial.
pub const SIP_URI_PATTERN: &str = r"^sips?:[^\s<>]+@[^\s<>]+$";
/// Pattern of a non-blank string (at least one non-whitespace character).
pub const NOT_BLANK_PATTERN: &str = r"\S";
/// Pattern of an E.164 phone number.
pub const E164_PATTERN: &str = r"^\+[1-9][0-9]{1,14}$";
/// Pattern of a Twilio account SID.
pub const ACCOUNT_SID_PATTERN: &str = "^AC[0-9a-fA-F]{32}$";
/// Pattern of a Kubernetes object name (DNS-1123 subdomain; the length limit is separate).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Longest Kubernetes object name (and longest Secret key).
pub const DNS_SUBDOMAIN_MAX: u32 = 253;
/// Pattern of a key in a Secret's data.
pub const SECRET_KEY_PATTERN: &str = "^[-._a-zA-Z0-9]+$";
/// Pattern of an environment variable name.
pub const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// Pattern of a WebSocket URL.
pub const WS_URL_PATTERN: &str = r"^wss?://\S+$";
/// Pattern of an ISO-639-1 language code.
pub const LANGUAGE_PATTERN: &str = "^[a-z]{2}$";
/// Pattern of an S3 bucket name (the general-purpose bucket naming rules, without the
/// rarely met prohibitions such as IP-address-like names).
pub const S3_BUCKET_PATTERN: &str = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$";
/// Pattern of an `http://` or `https://` URL.
pub const HTTP_URL_PATTERN: &str = r"^https?://\S+$";
/// Pattern of a Pinecone index name (lowercase alphanumerics and `-`, starting and ending
/// with an alphanumeric; the length limit is separate).
pub const PINECONE_INDEX_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest Pinecone index name.
pub const PINECONE_INDEX_MAX: u32 = 45;
/// Pattern of an AWS region code (`us-east-1`, `eu-central-2`, `us-gov-west-1`).
pub const AWS_REGION_PATTERN: &str = "^[a-z]{2}(-[a-z]+)+-[0-9]+$";
/// Pattern of a recording key prefix: `/`-separated segments of `A-Z a-z 0-9 . _ -`, none
/// of them `.` or `..` (a segment is one starting with a non-dot, or `.` and a non-dot,
/// or `..` and one more character); leading and trailing `/` ignored. Go's RE2 has no
/// look-ahead, hence the three forms of a segment.
pub const RECORDING_PREFIX_PATTERN: &str = r"^/*(([A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(/([A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*)?/*$";
/// Longest recording key prefix.
pub const RECORDING_PREFIX_MAX: u32 = 256;

/// Pattern of an analysis field name (`spec.analysis.fields[].name`): a JSON property
/// name the model fills.
pub const FIELD_NAME_PATTERN: &str = "^[a-zA-Z][a-zA-Z0-9_]{0,63}$";

/// Whether `s` matches [`FIELD_NAME_PATTERN`].
pub fn is_field_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `s` has a non-whitespace character.
pub fn is_not_blank(s: &str) -> bool {
    s.chars().any(|c| !c.is_whitespace())
}

/// Whether `s` is an E.164 number: `+`, a non-zero digit, then 1–14 digits.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Whether `s` is a Twilio account SID: `AC` and 32 hex digits.
pub fn is_account_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("AC") && s.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` is a valid Kubernetes object name (DNS-1123 subdomain, at most 253 bytes).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= DNS_SUBDOMAIN_MAX as usize && !s.is_empty() && s.split('.').all(is_dns_label_shape)
}

/// One dot-separated part of a subdomain: lowercase alphanumerics and `-`, starting and
/// ending with an alphanumeric.
fn is_dns_label_shape(label: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|&b| alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// Whether `s` may be a key in a Secret's data: alphanumerics, `-`, `_`, `.`; at most 253.
pub fn is_secret_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS_SUBDOMAIN_MAX as usize
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `s` is an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `s` is a `ws://` or `wss://` URL with something after the scheme and no spaces.
pub fn is_ws_url(s: &str) -> bool {
    let rest = s.strip_prefix("wss://").or_else(|| s.strip_prefix("ws://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.chars().any(char::is_whitespace))
}

/// Whether `s` is an ISO-639-1 code: two lowercase ASCII letters.
pub fn is_language(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase())
}

/// Whether `s` is an S3 bucket name: 3–63 of lowercase letters, digits, `.`, `-`, starting
/// and ending with a letter or digit.
pub fn is_s3_bucket(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes.first().is_some_and(|&b| alnum(b))
        && bytes.last().is_some_and(|&b| alnum(b))
        && bytes.iter().all(|&b| alnum(b) || b == b'.' || b == b'-')
}

/// Whether `s` is a recording key prefix ([`RECORDING_PREFIX_PATTERN`]; the length limit
/// is separate). The prefix becomes part of object keys and, without a bucket, of file
/// paths under the gateway's data directory: no `.`/`..` segments, no characters a path
/// or key would treat specially.
pub fn is_recording_prefix(s: &str) -> bool {
    let trimmed = s.trim_matches('/');
    trimmed.is_empty()
        || trimmed.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        })
}

/// Whether `s` is an `http://` or `https://` URL with something after the scheme and no
/// spaces.
pub fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.chars().any(char::is_whitespace))
}

/// Whether `s` is a Pinecone index name: at most 45 of lowercase letters, digits and `-`,
/// starting and ending with a letter or digit.
pub fn is_pinecone_index(s: &str) -> bool {
    s.len() <= PINECONE_INDEX_MAX as usize && is_dns_label_shape(s)
}

/// Whether `s` is an AWS region code: two lowercase letters, one or more `-word` parts,
/// then `-` and a number.
pub fn is_aws_region(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(area), Some(number)) = (parts.next(), parts.next_back()) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    area.len() == 2
        && area.bytes().all(|b| b.is_ascii_lowercase())
        && !middle.is_empty()
        && middle
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is a transfer target's name: a lowercase letter, then lowercase letters,
/// digits, `-` or `_`; at most 64.
pub fn is_transfer_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= crate::limits::TRANSFER_NAME_MAX as usize
        && matches!(bytes.next(), Some(b) if b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether `s` is a SIP URI to dial: `sip:` or `sips:`, then `user@host` without spaces or
/// angle brackets.
pub fn is_sip_uri(s: &str) -> bool {
    let rest = s.strip_prefix("sips:").or_else(|| s.strip_prefix("sip:"));
    matches!(rest, Some(r) if r.split_once('@').is_some_and(|(u, h)| !u.is_empty() && !h.is_empty())
        && !r.chars().any(|c| c.is_whitespace() || c == '<' || c == '>'))
}

/// Whether `s` is a Twilio API key SID: `SK` and 32 hex digits.
pub fn is_api_key_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("SK") && s.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}
