//! Label and field selectors of list and watch requests.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Which objects a list or watch returns: namespace, labels and fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Filter {
    /// `None` = all namespaces.
    pub namespace: Option<String>,
    labels: Vec<Requirement>,
    /// (dotted field path, equal?, value).
    fields: Vec<(String, bool, String)>,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector` values.
    pub fn new(
        namespace: Option<String>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Filter, String> {
        Ok(Filter {
            namespace,
            labels: labels.map(parse_labels).transpose()?.unwrap_or_default(),
            fields: fields.map(parse_fields).transpose()?.unwrap_or_default(),
        })
    }

    /// The fields the field selector tests.
    pub fn field_paths(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(path, _, _)| path.as_str())
    }

    /// Whether `obj` is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        let meta = obj.get("metadata");
        if let Some(ns) = &self.namespace {
            let obj_ns = meta
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if obj_ns != ns {
                return false;
            }
        }
        let labels = meta.and_then(|m| m.get("labels"));
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            Requirement::Eq(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|(path, eq, want)| {
                let mut cur = Some(obj);
                for part in path.split('.') {
                    cur = cur.and_then(|c| c.get(part));
                }
                let got = match cur {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                (got == *want) == *eq
            })
    }
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_labels(s: &str) -> Result<Vec<Requirement>, String> {
    let mut reqs = Vec::new();
    for raw in split_top(s) {
        let r = raw.trim();
        if r.is_empty() {
            continue;
        }
        let bad = || format!("unable to parse requirement: {r:?}");
        let req = if let Some(key) = r.strip_prefix('!') {
            Requirement::NotExists(key.trim().to_owned())
        } else if let (Some(open), true) = (r.find('('), r.ends_with(')')) {
            let mut words = r[..open].split_whitespace();
            let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad());
            };
            let values: Vec<String> = r[open + 1..r.len() - 1]
                .split(',')
                .map(|v| v.trim().to_owned())
                .collect();
            match op {
                "in" => Requirement::In(key.to_owned(), values),
                "notin" => Requirement::NotIn(key.to_owned(), values),
                _ => return Err(bad()),
            }
        } else if let Some((k, v)) = r.split_once("!=") {
            Requirement::NotEq(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
            Requirement::Eq(k.trim().to_owned(), v.trim().to_owned())
        } else if r.contains(['<', '>', ' ', '(', ')']) {
            return Err(bad());
        } else {
            Requirement::Exists(r.to_owned())
        };
        reqs.push(req);
    }
    Ok(reqs)
}

fn parse_fields(s: &str) -> Result<Vec<(String, bool, String)>, String> {
    let mut out = Vec::new();
    for raw in s.split(',') {
        let r = raw.trim();
        if r.is_empty() {
            continue;
        }
        let (k, eq, v) = if let Some((k, v)) = r.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
            (k, true, v)
        } else {
            return Err(format!("invalid selector: {r:?}; can't understand {r:?}"));
        };
        out.push((k.trim().to_owned(), eq, v.trim().to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_selectors() {
        let o = obj(json!({"app": "gw", "tier": "edge"}));
        let sel = |s: &str| Filter::new(None, Some(s), None).unwrap().matches(&o);
        assert!(sel("app=gw"));
        assert!(sel("app==gw,tier"));
        assert!(!sel("app!=gw"));
        assert!(sel("app in (x, gw),!missing"));
        assert!(!sel("tier notin (edge)"));
        assert!(!sel("missing"));
        assert!(sel(""));
        assert!(Filter::new(None, Some("a b c"), None).is_err());
    }

    #[test]
    fn field_selectors_and_namespace() {
        let o = obj(json!({}));
        let f = Filter::new(Some("ns".into()), None, Some("metadata.name=a")).unwrap();
        assert!(f.matches(&o));
        let f = Filter::new(None, None, Some("metadata.namespace!=ns")).unwrap();
        assert!(!f.matches(&o));
        let f = Filter::new(Some("other".into()), None, None).unwrap();
        assert!(!f.matches(&o));
    }
}
