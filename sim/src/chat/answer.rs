//! The simulator's deterministic answer: the request's JSON schema filled from the
//! transcript in its messages (lines `Caller: …` and `Agent: …`, as the gateway sends
//! them).
//!
//! - `summary`: the caller's first line;
//! - `sentiment`: word rules over the caller's lines (more of "thank", "great",
//!   "perfect", "wonderful", "happy", "love" → positive; more of "angry", "terrible",
//!   "awful", "frustrated", "complaint", "useless", "ridiculous" → negative; otherwise
//!   neutral; no caller line → unknown);
//! - `success`: true unless the sentiment is negative or the caller never spoke;
//! - other properties by type: a string is the rest of the caller's sentence after
//!   "<name words> is " (e.g. `callerName` ← "my caller name is Ada"; `name` ← "name is
//!   Ada"), a number the first number the caller said, a boolean whether the caller said
//!   "yes", an enum the first choice the transcript mentions; `null` when nothing
//!   matches and the schema allows it (else the empty value of its type).

use serde_json::{Map, Value};

const POSITIVE: [&str; 6] = ["thank", "great", "perfect", "wonderful", "happy", "love"];
const NEGATIVE: [&str; 7] = [
    "angry",
    "terrible",
    "awful",
    "frustrated",
    "complaint",
    "useless",
    "ridiculous",
];

fn caller_lines(transcript: &str) -> Vec<&str> {
    transcript
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Caller:"))
        .map(str::trim)
        .collect()
}

/// The sentiment the word rules give.
pub fn sentiment_of(transcript: &str) -> &'static str {
    let lines = caller_lines(transcript);
    if lines.is_empty() {
        return "unknown";
    }
    let text = lines.join(" ").to_lowercase();
    let count = |words: &[&str]| words.iter().map(|w| text.matches(w).count()).sum::<usize>();
    let (pos, neg) = (count(&POSITIVE), count(&NEGATIVE));
    if pos > neg {
        "positive"
    } else if neg > pos {
        "negative"
    } else {
        "neutral"
    }
}

/// `callerName` / `caller_name` → "caller name".
fn words_of(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c == '_' || c == '-' {
            out.push(' ');
        } else if c.is_ascii_uppercase() {
            out.push(' ');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn nothing(schema: &Value, ts: &[&str]) -> Value {
    if ts.contains(&"null") {
        return Value::Null;
    }
    match ts.first().copied() {
        Some("number") | Some("integer") => Value::from(0),
        Some("boolean") => Value::Bool(false),
        Some("array") => Value::Array(Vec::new()),
        Some("object") => fill(schema, ""),
        _ => Value::String(String::new()),
    }
}

fn value_for(name: &str, schema: &Value, transcript: &str) -> Value {
    let callers = caller_lines(transcript);
    let ts = types(schema);
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        let strings: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
        if name == "sentiment" && strings.contains(&sentiment_of(transcript)) {
            return Value::String(sentiment_of(transcript).into());
        }
        let lower = transcript.to_lowercase();
        return strings
            .iter()
            .find(|c| lower.contains(&c.to_lowercase()))
            .or(strings.first().filter(|_| !choices.contains(&Value::Null)))
            .map_or(Value::Null, |c| Value::String((*c).to_string()));
    }
    if ts.contains(&"object") {
        return fill(schema, transcript);
    }
    if name == "summary"
        && ts.contains(&"string")
        && let Some(first) = callers.first()
    {
        return Value::String((*first).to_string());
    }
    if name == "success" && ts.contains(&"boolean") {
        let s = sentiment_of(transcript);
        return Value::Bool(s != "negative" && s != "unknown");
    }
    if ts.contains(&"boolean") {
        let yes = callers.iter().any(|l| {
            l.to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w == "yes")
        });
        return Value::Bool(yes);
    }
    if ts.contains(&"number") || ts.contains(&"integer") {
        let number = callers
            .iter()
            .flat_map(|l| l.split_whitespace())
            .find_map(|w| {
                w.trim_matches(|c: char| !c.is_ascii_digit() && c != '.')
                    .parse::<f64>()
                    .ok()
            });
        if let Some(n) = number {
            return serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number);
        }
    }
    if ts.contains(&"string") {
        let phrase = format!("{} is ", words_of(name));
        for l in &callers {
            let lower = l.to_lowercase();
            if let Some(at) = lower.find(&phrase) {
                let rest = &l[at + phrase.len()..];
                let value = rest
                    .split(['.', ',', '!', '?', ';'])
                    .next()
                    .unwrap_or_default()
                    .trim();
                if !value.is_empty() {
                    return Value::String(value.to_string());
                }
            }
        }
    }
    nothing(schema, &ts)
}

fn fill(schema: &Value, transcript: &str) -> Value {
    let mut out = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            out.insert(name.clone(), value_for(name, sub, transcript));
        }
    }
    Value::Object(out)
}

/// The answer to a request for `schema` over `transcript` (the user messages' text).
pub fn answer_for(schema: &Value, transcript: &str) -> Value {
    fill(schema, transcript)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_the_schema_from_the_transcript() {
        let schema = json!({"type": "object", "additionalProperties": false,
        "required": ["summary", "sentiment", "success", "fields"],
        "properties": {
            "summary": {"type": "string"},
            "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative", "unknown"]},
            "success": {"type": "boolean"},
            "fields": {"type": "object", "additionalProperties": false,
                "required": ["callerName", "partySize", "callback", "intent", "missing"],
                "properties": {
                    "callerName": {"type": ["string", "null"]},
                    "partySize": {"type": ["number", "null"]},
                    "callback": {"type": ["boolean", "null"]},
                    "intent": {"type": ["string", "null"], "enum": ["booking", "question", null]},
                    "missing": {"type": ["string", "null"]}
                }}
        }});
        let t = "Caller: Hi, I'd like a table.\nAgent: Sure.\nCaller: My caller name is Ada Lovelace, party of 4. Yes please, thanks, great booking!";
        let a = answer_for(&schema, t);
        assert_eq!(a["summary"], "Hi, I'd like a table.");
        assert_eq!(a["sentiment"], "positive");
        assert_eq!(a["success"], true);
        assert_eq!(a["fields"]["callerName"], "Ada Lovelace");
        assert_eq!(a["fields"]["partySize"], 4.0);
        assert_eq!(a["fields"]["callback"], true);
        assert_eq!(a["fields"]["intent"], "booking");
        assert_eq!(a["fields"]["missing"], Value::Null);
        assert_eq!(sentiment_of("Caller: this is terrible"), "negative");
        assert_eq!(sentiment_of("Caller: hello"), "neutral");
        assert_eq!(sentiment_of("Agent: hello"), "unknown");
    }
}
