//! The Chat Completions request of one call's analysis, and the checks on its answer
//! (pure: no I/O). The answer is constrained by a JSON schema built from the tenant's
//! `spec.analysis` (`response_format: {type: json_schema, json_schema: {strict: true}}`),
//! and checked again here: a compatible server may not enforce the schema.

use serde_json::{Map, Value, json};
use switchboard_crds::{AnalysisSpec, FieldType};
use switchboard_store::{CallEnd, Role};

/// Schema name sent in `json_schema.name`.
pub const SCHEMA_NAME: &str = "call_analysis";
/// The sentiments the model may answer.
pub const SENTIMENTS: [&str; 4] = ["positive", "neutral", "negative", "unknown"];
/// Most transcript characters sent (the newest kept): bounds the request's size and cost.
pub const MAX_TRANSCRIPT_CHARS: usize = 48_000;
/// Most characters of one tool call's arguments or output quoted in the transcript.
const MAX_TOOL_CHARS: usize = 1_000;

/// The JSON schema of the answer: every requested part is a required property (strict
/// mode requires all properties required and no others); extracted fields may be `null`.
pub fn schema(spec: &AnalysisSpec) -> Value {
    let mut props = Map::new();
    if spec.summary {
        props.insert(
            "summary".into(),
            json!({"type": "string", "description": "Two or three sentences: what the caller wanted and how the call ended."}),
        );
    }
    if spec.sentiment {
        props.insert(
            "sentiment".into(),
            json!({"type": "string", "enum": SENTIMENTS, "description": "The caller's sentiment over the call."}),
        );
    }
    if spec.success_rubric.is_some() {
        props.insert(
            "success".into(),
            json!({"type": "boolean", "description": "Whether the call met the success rubric."}),
        );
    }
    if !spec.fields.is_empty() {
        let mut fields = Map::new();
        for f in &spec.fields {
            let t = match f.kind {
                FieldType::String => json!({"type": ["string", "null"]}),
                FieldType::Number => json!({"type": ["number", "null"]}),
                FieldType::Boolean => json!({"type": ["boolean", "null"]}),
                FieldType::Enum => {
                    let mut choices: Vec<Value> =
                        f.choices.iter().cloned().map(Value::String).collect();
                    choices.push(Value::Null);
                    json!({"type": ["string", "null"], "enum": choices})
                }
            };
            let mut t = t;
            t["description"] = Value::String(f.description.clone());
            fields.insert(f.name.clone(), t);
        }
        let names: Vec<&str> = spec.fields.iter().map(|f| f.name.as_str()).collect();
        props.insert(
            "fields".into(),
            json!({"type": "object", "properties": fields, "required": names, "additionalProperties": false}),
        );
    }
    let required: Vec<String> = props.keys().cloned().collect();
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// The transcript (and tool calls, at their place) as plain text lines, newest
/// `MAX_TRANSCRIPT_CHARS` kept.
pub fn transcript_text(end: &CallEnd) -> String {
    // Tool calls without a time (older records) go at the end.
    let mut lines: Vec<(u64, String)> = end
        .transcript
        .iter()
        .map(|t| {
            let who = match t.role {
                Role::Caller => "Caller",
                Role::Agent => "Agent",
            };
            let cut = if t.interrupted {
                " [interrupted by the caller]"
            } else {
                ""
            };
            (t.start_ms, format!("{who}: {}{cut}", t.text))
        })
        .collect();
    for c in &end.tool_calls {
        lines.push((
            c.at_ms.unwrap_or(u64::MAX),
            format!(
                "[tool {} called with {} → {}]",
                c.name,
                clip(&c.arguments, MAX_TOOL_CHARS),
                clip(&c.output, MAX_TOOL_CHARS)
            ),
        ));
    }
    lines.sort_by_key(|(at, _)| *at);
    let text = lines
        .into_iter()
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n");
    let n = text.chars().count();
    if n <= MAX_TRANSCRIPT_CHARS {
        text
    } else {
        text.chars().skip(n - MAX_TRANSCRIPT_CHARS).collect()
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// The instructions: what to produce, and the tenant's rubric.
fn system_prompt(spec: &AnalysisSpec) -> String {
    let mut p = String::from(
        "You analyse a finished phone call between a caller and a voice agent. Answer only \
         from the transcript below (lines starting 'Caller:' and 'Agent:'; bracketed lines \
         are tools the agent used). Fill the JSON schema exactly.",
    );
    if spec.sentiment {
        p.push_str(
            " sentiment: the caller's overall sentiment; 'unknown' when the caller said too little to tell.",
        );
    }
    if let Some(r) = &spec.success_rubric {
        p.push_str(" success: true only if the call meets this rubric: ");
        p.push_str(r);
    }
    if !spec.fields.is_empty() {
        p.push_str(
            " fields: each value as the field's description asks; null when the call does not say.",
        );
    }
    p
}

/// The Chat Completions request body.
pub fn body(spec: &AnalysisSpec, end: &CallEnd) -> Value {
    json!({
        "model": spec.model,
        "messages": [
            {"role": "system", "content": system_prompt(spec)},
            {"role": "user", "content": transcript_text(end)},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "strict": true, "schema": schema(spec)},
        },
        "temperature": 0,
    })
}

/// Whether the call is long enough to analyse.
pub fn long_enough(spec: &AnalysisSpec, end: &CallEnd) -> bool {
    end.transcript.len() >= spec.min_turns as usize
}

/// What an answer said, checked against the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// One of [`SENTIMENTS`], when asked for.
    pub sentiment: Option<String>,
    /// The rubric's verdict, when a rubric is set.
    pub success: Option<bool>,
    /// The document stored and returned by the API: summary, sentiment, success,
    /// fields, and the model that wrote it.
    pub document: Value,
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not the Chat Completions response shape.
    #[error("unexpected response shape: {0}")]
    Shape(String),
    /// The model refused (`message.refusal`).
    #[error("the model refused: {0}")]
    Refused(String),
    /// The content does not match the schema.
    #[error("answer does not match the schema: {0}")]
    Schema(String),
}

/// Reads a Chat Completions response and checks its content against the spec's schema.
///
/// # Errors
/// See [`AnswerError`].
pub fn parse_answer(spec: &AnalysisSpec, response: &Value) -> Result<Verdict, AnswerError> {
    let message = response
        .pointer("/choices/0/message")
        .ok_or_else(|| AnswerError::Shape("no choices[0].message".into()))?;
    if let Some(r) = message.get("refusal").and_then(Value::as_str) {
        return Err(AnswerError::Refused(r.to_string()));
    }
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| AnswerError::Shape("message.content is not a string".into()))?;
    let answer: Value = serde_json::from_str(content)
        .map_err(|e| AnswerError::Schema(format!("content is not JSON: {e}")))?;
    let obj = answer
        .as_object()
        .ok_or_else(|| AnswerError::Schema("content is not an object".into()))?;
    let bad = |m: &str| AnswerError::Schema(m.to_string());
    let mut doc = Map::new();
    if spec.summary {
        let s = obj
            .get("summary")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("summary missing or not a string"))?;
        doc.insert("summary".into(), Value::String(s.to_string()));
    }
    let sentiment = if spec.sentiment {
        let s = obj
            .get("sentiment")
            .and_then(Value::as_str)
            .filter(|s| SENTIMENTS.contains(s))
            .ok_or_else(|| {
                bad("sentiment missing or not one of positive, neutral, negative, unknown")
            })?;
        doc.insert("sentiment".into(), Value::String(s.to_string()));
        Some(s.to_string())
    } else {
        None
    };
    let success = if spec.success_rubric.is_some() {
        let b = obj
            .get("success")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("success missing or not a boolean"))?;
        doc.insert("success".into(), Value::Bool(b));
        Some(b)
    } else {
        None
    };
    if !spec.fields.is_empty() {
        let given = obj
            .get("fields")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("fields missing or not an object"))?;
        let mut fields = Map::new();
        for f in &spec.fields {
            let v = given.get(&f.name).cloned().unwrap_or(Value::Null);
            let ok = match (&v, f.kind) {
                (Value::Null, _) => true,
                (Value::String(_), FieldType::String) => true,
                (Value::Number(_), FieldType::Number) => true,
                (Value::Bool(_), FieldType::Boolean) => true,
                (Value::String(s), FieldType::Enum) => f.choices.contains(s),
                _ => false,
            };
            if !ok {
                return Err(AnswerError::Schema(format!(
                    "field {:?} is not a {:?} value{}",
                    f.name,
                    f.kind,
                    if f.kind == FieldType::Enum {
                        " of its choices"
                    } else {
                        ""
                    }
                )));
            }
            fields.insert(f.name.clone(), v);
        }
        doc.insert("fields".into(), Value::Object(fields));
    }
    if let Some(m) = response.get("model").and_then(Value::as_str) {
        doc.insert("model".into(), Value::String(m.to_string()));
    }
    Ok(Verdict {
        sentiment,
        success,
        document: Value::Object(doc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_crds::AnalysisField;
    use switchboard_store::TranscriptEntry;

    fn spec() -> AnalysisSpec {
        AnalysisSpec {
            model: "gpt-4o-mini".into(),
            base_url: None,
            api_key: None,
            summary: true,
            sentiment: true,
            success_rubric: Some("booked".into()),
            fields: vec![AnalysisField {
                name: "intent".into(),
                kind: FieldType::Enum,
                description: "why".into(),
                choices: vec!["booking".into(), "question".into()],
            }],
            min_turns: 2,
        }
    }

    fn answer(content: &str) -> Value {
        json!({"model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
    }

    #[test]
    fn schema_is_strict_and_requires_every_part() {
        let s = schema(&spec());
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(
            s["required"],
            json!(["fields", "sentiment", "success", "summary"])
        );
        assert_eq!(s["properties"]["fields"]["required"], json!(["intent"]));
        assert_eq!(
            s["properties"]["fields"]["properties"]["intent"]["enum"],
            json!(["booking", "question", null])
        );
    }

    #[test]
    fn answers_are_checked_against_the_spec() {
        let ok = r#"{"summary":"s","sentiment":"positive","success":true,"fields":{"intent":"booking"}}"#;
        let v = parse_answer(&spec(), &answer(ok)).unwrap();
        assert_eq!(v.sentiment.as_deref(), Some("positive"));
        assert_eq!(v.success, Some(true));
        assert_eq!(v.document["fields"]["intent"], "booking");
        for bad in [
            r#"{"summary":"s","sentiment":"happy","success":true,"fields":{"intent":"booking"}}"#,
            r#"{"summary":"s","sentiment":"positive","success":"yes","fields":{"intent":"booking"}}"#,
            r#"{"summary":"s","sentiment":"positive","success":true,"fields":{"intent":"refund"}}"#,
            r#"{"sentiment":"positive","success":true,"fields":{}}"#,
            "not json",
        ] {
            assert!(
                matches!(
                    parse_answer(&spec(), &answer(bad)),
                    Err(AnswerError::Schema(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_answer(&spec(), &json!({"choices": []})),
            Err(AnswerError::Shape(_))
        ));
    }

    #[test]
    fn transcript_interleaves_tool_calls_and_keeps_the_newest() {
        let mut end = CallEnd {
            call_sid: "CA1".into(),
            tenant: "t".into(),
            ended_at_ms: 0,
            outcome: "caller_hangup".into(),
            detail: None,
            transcript: vec![TranscriptEntry {
                seq: 0,
                role: Role::Caller,
                text: "hello".into(),
                start_ms: 10,
                end_ms: 20,
                interrupted: false,
                heard_ms: None,
            }],
            usage: Default::default(),
            tool_calls: Vec::new(),
            barge_ins: 0,
            reconnects: Vec::new(),
            model: None,
            cost: None,
            data_key: None,
        };
        assert_eq!(transcript_text(&end), "Caller: hello");
        end.transcript[0].text = "x".repeat(MAX_TRANSCRIPT_CHARS * 2);
        assert_eq!(transcript_text(&end).chars().count(), MAX_TRANSCRIPT_CHARS);
    }
}
