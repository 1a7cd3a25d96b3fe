//! Object metadata: timestamps, uids, generated names, and the validation the real server
//! applies to names, labels, annotations, finalizers and owner references.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Now as RFC 3339 with second precision (`2026-05-01T12:00:00Z`), as metadata spells it.
pub(crate) fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// A random RFC 4122 version-4 uid.
pub(crate) fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The 5-character suffix the server appends to `generateName`.
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// A validation failure: the field and why.
pub(crate) type FieldError = (String, String);

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 subdomain (most object names).
pub(crate) fn check_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be no more than 253 characters and not empty".into());
    }
    let ok = s.split('.').all(|part| check_label(part).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (got \"{s}\")"
        ))
    }
}

/// RFC 1123 label (service and namespace names, subdomain parts).
pub(crate) fn check_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.starts_with(is_alnum_lower)
        && s.ends_with(is_alnum_lower);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', start and end with an alphanumeric character, and be at most 63 characters (got \"{s}\")"
        ))
    }
}

/// A label value or the name part of a qualified name (`[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`).
fn check_label_value(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
            && s.starts_with(alnum)
            && s.ends_with(alnum))
}

/// A label or annotation key: `[prefix/]name`.
fn check_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(|p| check_subdomain(p).is_ok()) && !name.is_empty() && check_label_value(name)
}

/// Validates the user-settable metadata of an object.
pub(crate) fn validate(meta: &Map<String, Value>) -> Result<(), FieldError> {
    if let Some(labels) = meta.get("labels") {
        let Some(labels) = labels.as_object() else {
            return Err(("metadata.labels".into(), "must be a map of strings".into()));
        };
        for (k, v) in labels {
            if !check_qualified_name(k) {
                return Err((
                    "metadata.labels".into(),
                    format!(
                        "Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                    ),
                ));
            }
            match v.as_str() {
                Some(v) if check_label_value(v) => {}
                _ => {
                    return Err((
                        "metadata.labels".into(),
                        format!(
                            "Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
                        ),
                    ));
                }
            }
        }
    }
    if let Some(ann) = meta.get("annotations") {
        let Some(ann) = ann.as_object() else {
            return Err((
                "metadata.annotations".into(),
                "must be a map of strings".into(),
            ));
        };
        for (k, v) in ann {
            if !check_qualified_name(k) || !v.is_string() {
                return Err((
                    "metadata.annotations".into(),
                    format!("Invalid value: \"{k}\": must be a qualified name with a string value"),
                ));
            }
        }
    }
    if let Some(f) = meta.get("finalizers") {
        let ok = f
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty())));
        if !ok {
            return Err((
                "metadata.finalizers".into(),
                "must be a list of non-empty strings".into(),
            ));
        }
    }
    if let Some(refs) = meta.get("ownerReferences") {
        let Some(refs) = refs.as_array() else {
            return Err(("metadata.ownerReferences".into(), "must be a list".into()));
        };
        let mut controllers = 0;
        for r in refs {
            for field in ["apiVersion", "kind", "name", "uid"] {
                if r.get(field)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err((
                        format!("metadata.ownerReferences.{field}"),
                        "Invalid value: \"\": must not be empty".into(),
                    ));
                }
            }
            if r.get("controller").and_then(Value::as_bool) == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            return Err((
                "metadata.ownerReferences".into(),
                "Invalid value: only one reference can have Controller set to true".into(),
            ));
        }
    }
    Ok(())
}

/// Drops empty labels, annotations, finalizers and owner references, as the real server's
/// typed metadata does (so `test /metadata/finalizers == null` behaves as there).
pub(crate) fn drop_empty(meta: &mut Map<String, Value>) {
    for key in ["labels", "annotations", "finalizers", "ownerReferences"] {
        let empty = match meta.get(key) {
            Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if empty {
            meta.remove(key);
        }
    }
}

/// Strings in an object's `metadata.finalizers`.
pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A string field of `metadata`.
pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(1_735_689_600), "2025-01-01T00:00:00Z");
    }

    #[test]
    fn names_and_labels() {
        assert!(check_subdomain("demo-gateway.v1").is_ok());
        assert!(check_subdomain("Demo").is_err());
        assert!(check_label("a.b").is_err());
        assert!(check_qualified_name("app.kubernetes.io/name"));
        assert!(!check_qualified_name("bad key"));
        assert!(check_label_value(""));
        assert!(!check_label_value(&"x".repeat(64)));
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(name_suffix().len(), 5);
    }
}
