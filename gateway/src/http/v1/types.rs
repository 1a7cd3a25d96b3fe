//! What the admin API answers: its own types (documented in the OpenAPI document), built
//! from the store's records, so the store can change without changing the API.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_store::{CallRecord, DailyStats, Role};
use utoipa::{IntoParams, ToSchema};

/// RFC 3339 (UTC) of a Unix ms time.
pub fn rfc3339(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_string())
}

/// A call in a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallSummary {
    /// Twilio CallSid.
    pub call_sid: String,
    /// The caller's number.
    pub from: Option<String>,
    /// The number called.
    pub to: Option<String>,
    /// When the gateway answered (RFC 3339, UTC).
    pub started_at: Option<String>,
    /// When the media session ended (RFC 3339, UTC); absent while the call runs.
    pub ended_at: Option<String>,
    /// Seconds: Twilio's `CallDuration`, else the media session's length.
    pub duration_s: Option<i64>,
    /// How the call ended: one of the values listed under "Outcomes" in docs/api.md
    /// (`caller_hangup`, `agent_hangup`, `transferred`, `max_duration`, …).
    pub outcome: Option<String>,
    /// Twilio's latest call status.
    pub status: Option<String>,
    /// Whether the call was handed to a person.
    pub transferred: bool,
    /// Post-call analysis: `positive`, `neutral`, `negative` or `unknown`.
    pub sentiment: Option<String>,
    /// Post-call analysis: whether the call met the tenant's rubric.
    pub success: Option<bool>,
    /// The call's cost in US dollars; absent when the model's prices are unknown.
    pub cost_usd: Option<f64>,
    /// The Realtime model.
    pub model: Option<String>,
    /// Times the caller interrupted the agent.
    pub barge_ins: u32,
}

impl From<&CallRecord> for CallSummary {
    fn from(r: &CallRecord) -> Self {
        let session_s = match (r.started_at_ms, r.ended_at_ms) {
            (Some(s), Some(e)) if e >= s => Some((e - s) / 1000),
            _ => None,
        };
        Self {
            call_sid: r.call_sid.clone(),
            from: r.from.clone(),
            to: r.to.clone(),
            started_at: r.started_at_ms.and_then(rfc3339),
            ended_at: r.ended_at_ms.and_then(rfc3339),
            duration_s: r.duration_s.or(session_s),
            outcome: r.outcome.clone(),
            status: r.status.clone(),
            // Same rule as the store's filter (switchboard_store::query::TRANSFERRED_SQL).
            transferred: r.outcome.as_deref() == Some("transferred"),
            sentiment: r.analysis.sentiment.clone(),
            success: r.analysis.success,
            #[allow(clippy::cast_precision_loss)]
            cost_usd: r.cost.as_ref().map(|c| c.total_micro_usd as f64 / 1e6),
            model: r.model.clone(),
            barge_ins: r.barge_ins,
        }
    }
}

/// A page of calls.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallList {
    /// Calls, newest first.
    pub calls: Vec<CallSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One utterance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TranscriptLine {
    /// Position in the call.
    pub seq: u32,
    /// `caller` or `agent`.
    pub role: String,
    /// What was said.
    pub text: String,
    /// Start, ms since the media stream started (the recording's clock).
    pub start_ms: u64,
    /// End, ms since the media stream started.
    pub end_ms: u64,
    /// An agent turn the caller cut short (barge-in).
    pub interrupted: bool,
    /// For an interrupted turn, how much of it the caller heard, ms.
    pub heard_ms: Option<u64>,
}

/// A knowledge passage a lookup returned, with its similarity score.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Passage {
    /// `<knowledge base>/<chunk id>`.
    pub source: String,
    /// The document's title, when it has one.
    pub title: Option<String>,
    /// The passage.
    pub text: String,
    /// Similarity score (higher is closer).
    pub score: f64,
}

/// A tool the model called.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    /// The model's call id.
    pub call_id: String,
    /// Tool name.
    pub name: String,
    /// Arguments (JSON as the model sent it; a string when it was not JSON).
    #[schema(value_type = Object)]
    pub arguments: Value,
    /// What the tool answered (JSON; a string when it was not JSON).
    #[schema(value_type = Object)]
    pub output: Value,
    /// Arguments received → output sent, ms.
    pub latency_ms: u64,
    /// When the model called it, ms since the media stream started.
    pub at_ms: Option<u64>,
    /// For knowledge lookups: the passages the answer was built from, best first.
    pub passages: Vec<Passage>,
}

/// Token usage over the call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageOut {
    /// `response.done` events.
    pub responses: u64,
    /// Input tokens, cached included.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input text tokens.
    pub input_text_tokens: u64,
    /// Input audio tokens.
    pub input_audio_tokens: u64,
    /// Cached input tokens (a subset of input).
    pub cached_tokens: u64,
    /// Cached text tokens.
    pub cached_text_tokens: u64,
    /// Cached audio tokens.
    pub cached_audio_tokens: u64,
    /// Output text tokens.
    pub output_text_tokens: u64,
    /// Output audio tokens.
    pub output_audio_tokens: u64,
}

/// A call's cost.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CostOut {
    /// Total, US dollars; `null` when the model's prices are unknown (no published price
    /// was found and `spec.pricing` does not set them: never a guess).
    pub total_usd: Option<f64>,
    /// How it was computed: model, price source, prices, tokens by class, minutes; for
    /// an unknown cost `{model, source: "unknown", reason}`.
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// Post-call analysis.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AnalysisOut {
    /// `positive`, `neutral`, `negative` or `unknown`.
    pub sentiment: Option<String>,
    /// Whether the call met the tenant's rubric.
    pub success: Option<bool>,
    /// A short summary of the call (tenants with `spec.analysis.summary`).
    pub summary: Option<String>,
    /// The extracted values by field name (`spec.analysis.fields`); a value is `null`
    /// when the call did not say.
    #[schema(value_type = Option<Object>)]
    pub fields: Option<Value>,
    /// The model that wrote the analysis, as its server named it.
    pub model: Option<String>,
    /// The whole analysis document as stored (summary, sentiment, success, fields,
    /// model); absent until analysis ran.
    #[schema(value_type = Option<Object>)]
    pub document: Option<Value>,
}

impl AnalysisOut {
    fn of(a: &switchboard_store::Analysis) -> Self {
        let document = a.document.as_deref().map(json_or_string);
        let get = |k: &str| document.as_ref().and_then(|d| d.get(k)).cloned();
        Self {
            sentiment: a.sentiment.clone(),
            success: a.success,
            summary: get("summary").and_then(|v| v.as_str().map(str::to_string)),
            fields: get("fields").filter(Value::is_object),
            model: get("model").and_then(|v| v.as_str().map(str::to_string)),
            document,
        }
    }
}

/// One Twilio status callback.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusChange {
    /// Twilio's `SequenceNumber`.
    pub sequence_number: i64,
    /// `CallStatus`.
    pub status: String,
    /// `CallDuration`, seconds.
    pub duration_s: Option<i64>,
    /// When the gateway received it (RFC 3339).
    pub received_at: Option<String>,
}

/// One call with everything known about it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: CallSummary,
    /// Extra detail for the outcome (e.g. an OpenAI error code).
    pub detail: Option<String>,
    /// The transcript in order.
    pub transcript: Vec<TranscriptLine>,
    /// Tool calls in order, with the passages behind each knowledge answer.
    pub tool_calls: Vec<ToolCall>,
    /// Post-call analysis.
    pub analysis: AnalysisOut,
    /// The cost and how it was computed.
    pub cost: Option<CostOut>,
    /// The token usage the cost came from.
    pub usage: UsageOut,
    /// Every status callback, in sequence order.
    pub status_history: Vec<StatusChange>,
    /// The call's recording, when one was stored (and retention has not removed it).
    pub recording: Option<RecordingInfo>,
    /// Transfers to a person, by agent leg (an unanswered one sits between two agent
    /// legs of the same call).
    pub transfers: Vec<TransferOut>,
    /// The fallback voicemail, when the caller left one.
    pub voicemail: Option<VoicemailOut>,
    /// Why the call moved to a new Realtime session, in order (`dropped`, `closed`,
    /// `error`, `session_limit`, `rotation`; see "Outcomes" in docs/api.md).
    /// Empty when one session served the whole call.
    pub reconnects: Vec<String>,
}

/// One transfer to a person (the `<Dial action>` Twilio reported).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransferOut {
    /// The agent leg that transferred (1 = the first).
    pub leg: u32,
    /// The transfer target's name (`spec.agent.transfer[].name`; `unknown` for a name
    /// the tenant no longer declares).
    pub target: String,
    /// Twilio's `DialCallStatus`: `completed`, `answered`, `busy`, `no-answer`,
    /// `failed`, `canceled`, or `other`.
    pub dial_status: String,
    /// How long the person talked, seconds (`DialCallDuration`).
    pub dial_duration_s: Option<i64>,
    /// The dialled leg's CallSid.
    pub dial_call_sid: Option<String>,
    /// When the dial ended (RFC 3339, UTC).
    pub at: Option<String>,
}

/// The fallback's voicemail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VoicemailOut {
    /// Twilio's recording URL.
    pub url: String,
    /// Its length, seconds.
    pub duration_s: Option<i64>,
}

/// A call's recording as the call's page shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordingInfo {
    /// Where to fetch it: `/api/v1/calls/{call_sid}/recording` (with the same key).
    pub url: String,
    /// Length, ms.
    pub duration_ms: u64,
    /// Size of the WAV file, bytes.
    pub bytes: u64,
}

/// Where a recording can be fetched (`?redirect=false`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordingLink {
    /// A presigned S3 URL (works without a key until `expires_at`), or for a recording
    /// this gateway keeps locally the recording route itself (needs the key).
    pub url: String,
    /// When a presigned URL stops working (RFC 3339); absent for a local recording.
    pub expires_at: Option<String>,
    /// `s3` or `local`.
    pub storage: String,
    /// `audio/wav`: 16-bit PCM, 8 kHz, two channels (left the caller, right the agent).
    pub content_type: String,
    /// Length, ms.
    pub duration_ms: u64,
    /// Size, bytes.
    pub bytes: u64,
}

/// The recording route of a call.
pub fn recording_route(call_sid: &str) -> String {
    format!("/api/v1/calls/{call_sid}/recording")
}

fn json_or_string(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// The passages in a `search_knowledge_base` output (`{"passages": [...]}`); anything
/// else (another tool, an error output) has none.
fn passages(output: &Value) -> Vec<Passage> {
    output
        .get("passages")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| serde_json::from_value::<Passage>(p.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

impl From<&CallRecord> for CallDetail {
    fn from(r: &CallRecord) -> Self {
        let u = &r.usage;
        Self {
            summary: r.into(),
            detail: r.detail.clone(),
            transcript: r
                .transcript
                .iter()
                .map(|t| TranscriptLine {
                    seq: t.seq,
                    role: match t.role {
                        Role::Caller => "caller",
                        Role::Agent => "agent",
                    }
                    .into(),
                    text: t.text.clone(),
                    start_ms: t.start_ms,
                    end_ms: t.end_ms,
                    interrupted: t.interrupted,
                    heard_ms: t.heard_ms,
                })
                .collect(),
            tool_calls: r
                .tool_calls
                .iter()
                .map(|c| {
                    let output = json_or_string(&c.output);
                    ToolCall {
                        call_id: c.call_id.clone(),
                        name: c.name.clone(),
                        arguments: json_or_string(&c.arguments),
                        passages: passages(&output),
                        output,
                        latency_ms: c.latency_ms,
                        at_ms: c.at_ms,
                    }
                })
                .collect(),
            analysis: AnalysisOut::of(&r.analysis),
            #[allow(clippy::cast_precision_loss)]
            cost: match (&r.cost, &r.model) {
                (Some(c), _) => Some(CostOut {
                    total_usd: Some(c.total_micro_usd as f64 / 1e6),
                    detail: json_or_string(&c.detail),
                }),
                // A finished call whose model has no known price: said so, not left out.
                (None, Some(model)) if r.ended_at_ms.is_some() => Some(CostOut {
                    total_usd: None,
                    detail: serde_json::json!({
                        "model": model,
                        "source": "unknown",
                        "reason": crate::cost::unknown_reason(model),
                    }),
                }),
                (None, _) => None,
            },
            usage: UsageOut {
                responses: u.responses,
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                input_text_tokens: u.input_text_tokens,
                input_audio_tokens: u.input_audio_tokens,
                cached_tokens: u.cached_tokens,
                cached_text_tokens: u.cached_text_tokens,
                cached_audio_tokens: u.cached_audio_tokens,
                output_text_tokens: u.output_text_tokens,
                output_audio_tokens: u.output_audio_tokens,
            },
            status_history: r
                .status_history
                .iter()
                .map(|s| StatusChange {
                    sequence_number: s.sequence_number,
                    status: s.status.clone(),
                    duration_s: s.duration_s,
                    received_at: s.received_at_ms.and_then(rfc3339),
                })
                .collect(),
            recording: r.recording.as_ref().map(|rec| RecordingInfo {
                url: recording_route(&r.call_sid),
                duration_ms: rec.duration_ms,
                bytes: rec.bytes,
            }),
            transfers: r
                .transfers
                .iter()
                .map(|t| TransferOut {
                    leg: t.leg,
                    target: t.target.clone(),
                    dial_status: t.dial_status.clone(),
                    dial_duration_s: t.dial_duration_s,
                    dial_call_sid: t.dial_call_sid.clone(),
                    at: rfc3339(t.at_ms),
                })
                .collect(),
            voicemail: r.voicemail_url.as_ref().map(|url| VoicemailOut {
                url: url.clone(),
                duration_s: r.voicemail_duration_s,
            }),
            reconnects: r.reconnects.clone(),
        }
    }
}

/// Query of `GET /api/v1/calls`. Filters combine with AND.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Started at or after (RFC 3339, e.g. `2026-12-01T00:00:00Z`).
    pub since: Option<String>,
    /// Started before (RFC 3339).
    pub until: Option<String>,
    /// The caller's number, exactly (E.164).
    pub from: Option<String>,
    /// The called number, exactly.
    pub to: Option<String>,
    /// The outcome, exactly.
    pub outcome: Option<String>,
    /// Only calls handed to a person (`true`) or only those that were not (`false`).
    pub transferred: Option<bool>,
    /// Analysis sentiment, exactly.
    pub sentiment: Option<String>,
    /// Analysis success verdict.
    pub success: Option<bool>,
    /// At least this many seconds long.
    pub min_duration_s: Option<i64>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Query of `GET /api/v1/calls/{call_sid}/recording`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordingParams {
    /// `false`: answer where the recording is, as JSON (a `RecordingLink`), instead of
    /// redirecting to S3 or streaming the file. Default `true`.
    pub redirect: Option<bool>,
}

/// Query of `GET /api/v1/stats/daily`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyParams {
    /// First day (UTC, `YYYY-MM-DD`); default: 29 days before `until`.
    pub since: Option<String>,
    /// Last day, included (UTC, `YYYY-MM-DD`); default: today. At most 366 days in all.
    pub until: Option<String>,
}

/// Totals of one UTC day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DayTotals {
    /// The day (UTC, `YYYY-MM-DD`).
    pub date: String,
    /// Calls started that day.
    pub calls: u64,
    /// Minutes of the calls that ended.
    pub minutes: f64,
    /// Average duration of the calls that ended, seconds.
    pub average_duration_s: Option<f64>,
    /// Share of calls not handed to a person (0 to 1).
    pub without_transfer_share: f64,
    /// Summed cost of the priced calls, US dollars.
    pub cost_usd: f64,
    /// Calls with a cost (their model's prices were known).
    pub priced_calls: u64,
}

impl From<&DailyStats> for DayTotals {
    #[allow(clippy::cast_precision_loss)]
    fn from(d: &DailyStats) -> Self {
        let date = jiff::Timestamp::from_millisecond(d.day_start_ms)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_default();
        Self {
            date,
            calls: d.calls,
            minutes: d.duration_s as f64 / 60.0,
            average_duration_s: (d.timed_calls > 0)
                .then(|| d.duration_s as f64 / d.timed_calls as f64),
            without_transfer_share: if d.calls == 0 {
                0.0
            } else {
                d.without_transfer as f64 / d.calls as f64
            },
            cost_usd: d.cost_micro_usd as f64 / 1e6,
            priced_calls: d.priced_calls,
        }
    }
}

/// Daily totals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DailyTotals {
    /// Days with at least one call, oldest first.
    pub days: Vec<DayTotals>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_store::{ToolCallRecord, Usage};

    #[test]
    fn knowledge_passages_and_odd_outputs() {
        let mut rec = CallRecord {
            call_sid: "CA1".into(),
            tenant: "t".into(),
            from: None,
            to: None,
            started_at_ms: Some(1_000),
            ended_at_ms: Some(31_000),
            outcome: Some("caller_hangup".into()),
            detail: None,
            status: None,
            duration_s: None,
            status_sequence: None,
            barge_ins: 0,
            usage: Usage::default(),
            transcript: Vec::new(),
            tool_calls: Vec::new(),
            reconnects: Vec::new(),
            model: None,
            cost: None,
            analysis: Default::default(),
            status_history: Vec::new(),
            recording: None,
            data_key: None,
            transfers: Vec::new(),
            voicemail_url: None,
            voicemail_duration_s: None,
        };
        rec.tool_calls = vec![
            ToolCallRecord {
                call_id: "c1".into(),
                name: "search_knowledge_base".into(),
                arguments: r#"{"query":"hours"}"#.into(),
                output: r#"{"passages":[{"source":"demo-faq/3","title":"Hours","text":"Sat 9-1","score":0.71},{"bogus":1}]}"#.into(),
                latency_ms: 12,
                at_ms: Some(4_000),
            },
            ToolCallRecord {
                call_id: "c2".into(),
                name: "end_call".into(),
                arguments: "not json".into(),
                output: "{}".into(),
                latency_ms: 0,
                at_ms: None,
            },
        ];
        let d = CallDetail::from(&rec);
        assert_eq!(d.summary.duration_s, Some(30));
        assert_eq!(d.tool_calls[0].passages.len(), 1);
        assert_eq!(d.tool_calls[0].passages[0].source, "demo-faq/3");
        assert_eq!(d.tool_calls[0].passages[0].score, 0.71);
        assert_eq!(d.tool_calls[1].arguments, Value::String("not json".into()));
        assert!(d.tool_calls[1].passages.is_empty());
    }
}
