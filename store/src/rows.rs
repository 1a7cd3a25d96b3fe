//! Row decoding and integer conversions shared by the SQLite and Postgres stores.
//!
//! Both schemas use the same column names and 64-bit signed integers, so one generic
//! decoder serves both drivers.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{
    Analysis, CallCost, CallRecord, RecordingRef, Role, StatusEvent, StoreError, ToolCallRecord,
    TranscriptEntry, Usage,
};

/// The `calls` columns every read selects; [`call_from_row`] decodes them by name.
pub(crate) const CALL_COLUMNS: &str = "call_sid, tenant, from_number, to_number, \
    started_at_ms, ended_at_ms, outcome, detail, status, duration_s, status_sequence, \
    barge_ins, usage_responses, usage_total_tokens, usage_input_tokens, \
    usage_output_tokens, usage_input_audio_tokens, usage_input_text_tokens, \
    usage_cached_tokens, usage_output_audio_tokens, usage_output_text_tokens, reconnects, \
    usage_cached_text_tokens, usage_cached_audio_tokens, model, cost_micro_usd, cost_detail, \
    analysis_sentiment, analysis_success, analysis, \
    recording_bucket, recording_key, recording_ms, recording_bytes, data_key, \
    voicemail_url, voicemail_duration_s";

/// Sets a call's recording (same SQL for SQLite and Postgres): `$1` call_sid, `$2`
/// tenant, `$3` bucket, `$4` key, `$5` ms, `$6` bytes. Like every upsert of `calls`, it
/// updates only a row of the same tenant and returns the CallSid when it applied (see
/// [`refuse_foreign`]).
pub(crate) const UPSERT_RECORDING: &str = "INSERT INTO calls \
       (call_sid, tenant, recording_bucket, recording_key, recording_ms, recording_bytes) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (call_sid) DO UPDATE SET \
       recording_bucket = excluded.recording_bucket, recording_key = excluded.recording_key, \
       recording_ms = excluded.recording_ms, recording_bytes = excluded.recording_bytes \
     WHERE calls.tenant = excluded.tenant \
     RETURNING call_sid";

/// The tenant a call row belongs to: `$1` call_sid.
pub(crate) const SELECT_OWNER: &str = "SELECT tenant FROM calls WHERE call_sid = $1";

/// Sets the wrapped data key of a call of this tenant: `$1` call_sid, `$2` key, `$3` tenant.
pub(crate) const UPDATE_DATA_KEY: &str =
    "UPDATE calls SET data_key = $2 WHERE call_sid = $1 AND tenant = $3";

/// Clears a call's transcript before it is rewritten, only for a call of this tenant:
/// `$1` call_sid, `$2` tenant.
pub(crate) const DELETE_TRANSCRIPT: &str = "DELETE FROM transcript_entries WHERE call_sid = $1 \
     AND EXISTS (SELECT 1 FROM calls WHERE calls.call_sid = $1 AND calls.tenant = $2)";

/// Clears a call's tool calls before they are rewritten, only for a call of this tenant:
/// `$1` call_sid, `$2` tenant.
pub(crate) const DELETE_TOOL_CALLS: &str = "DELETE FROM tool_calls WHERE call_sid = $1 \
     AND EXISTS (SELECT 1 FROM calls WHERE calls.call_sid = $1 AND calls.tenant = $2)";

/// After an upsert of `calls` that did not apply (its `WHERE calls.tenant =
/// excluded.tenant` was false, or a status callback was older than the stored one),
/// `owner` is the row's tenant: a row of another tenant refuses the whole write. CallSids
/// are Twilio's and unique per account, but two tenants sharing a database (laptop mode,
/// one `spec.database.url` for two tenants) must never overwrite each other's records,
/// whatever a peer or a replayed spool sends.
pub(crate) fn refuse_foreign(
    call_sid: &str,
    tenant: &str,
    owner: Option<String>,
) -> Result<(), StoreError> {
    match owner {
        Some(owner) if owner != tenant => Err(StoreError::TenantConflict {
            call_sid: call_sid.to_string(),
            tenant: tenant.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Clears a call's recording if it still names the deleted key: `$1` call_sid, `$2` key.
pub(crate) const CLEAR_RECORDING: &str = "UPDATE calls SET recording_bucket = NULL, \
       recording_key = NULL, recording_ms = NULL, recording_bytes = NULL \
     WHERE call_sid = $1 AND recording_key = $2";

/// A call's transfers, by leg (same SQL for SQLite and Postgres).
pub(crate) const SELECT_TRANSFERS: &str = "SELECT leg, target, dial_status, dial_duration_s, \
     dial_call_sid, at_ms FROM call_transfers WHERE call_sid = $1 ORDER BY leg";

/// Makes sure the call row exists (a transfer or voicemail can be written before the
/// call's other ops reach the store); the caller then refuses the write when the row is
/// another tenant's ([`refuse_foreign`]).
pub(crate) const ENSURE_CALL: &str =
    "INSERT INTO calls (call_sid, tenant) VALUES ($1, $2) ON CONFLICT (call_sid) DO NOTHING";

/// Upserts one transfer ($1 call, $2 leg, $3 target, $4 status, $5 duration, $6 dial sid,
/// $7 at).
pub(crate) const UPSERT_TRANSFER: &str = "INSERT INTO call_transfers \
     (call_sid, leg, target, dial_status, dial_duration_s, dial_call_sid, at_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (call_sid, leg) DO UPDATE SET target = excluded.target, \
       dial_status = excluded.dial_status, dial_duration_s = excluded.dial_duration_s, \
       dial_call_sid = excluded.dial_call_sid, at_ms = excluded.at_ms";

/// Sets the voicemail of a call of this tenant ($1 call, $2 url, $3 duration, $4 tenant).
pub(crate) const SET_VOICEMAIL: &str = "UPDATE calls SET voicemail_url = $2, \
     voicemail_duration_s = $3 WHERE call_sid = $1 AND tenant = $4";

/// Decodes one row of [`SELECT_TRANSFERS`].
pub(crate) fn transfer_from_row<'r, R>(row: &'r R) -> Result<super::TransferRecord, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(super::TransferRecord {
        leg: u32::try_from(from_sql(row.try_get("leg")?)).unwrap_or(u32::MAX),
        target: row.try_get("target")?,
        dial_status: row.try_get("dial_status")?,
        dial_duration_s: row.try_get("dial_duration_s")?,
        dial_call_sid: row.try_get("dial_call_sid")?,
        at_ms: row.try_get("at_ms")?,
    })
}

/// Sets the analysis of a call of this tenant: `$1` call_sid, `$2` sentiment, `$3`
/// success, `$4` document, `$5` tenant. A call without a row yet is left alone (analysis
/// runs after the end record was queued, and the queue applies ops in order). The first
/// analysis stored stays (two gateways that both analysed a call, or a replayed spool,
/// change nothing), and the call's claim ends with it ([`crate::backlog`]).
pub(crate) const SET_ANALYSIS: &str = "UPDATE calls SET analysis_sentiment = $2, \
       analysis_success = $3, analysis = $4, analysis_claim_owner = NULL, \
       analysis_claim_until_ms = NULL \
     WHERE call_sid = $1 AND tenant = $5 AND analysis IS NULL";

/// Counters are unsigned in Rust and signed in SQL; values past `i64::MAX` cannot occur in
/// practice, so saturating keeps a corrupt value from failing the whole write.
pub(crate) fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Inverse of [`to_sql`]; a negative value (never written by us) reads as 0.
pub(crate) fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn role_from_str(s: &str) -> Result<Role, sqlx::Error> {
    match s {
        "caller" => Ok(Role::Caller),
        "agent" => Ok(Role::Agent),
        other => Err(sqlx::Error::Decode(
            format!("unknown transcript role {other:?}").into(),
        )),
    }
}

/// A call's transcript, in order (same SQL for SQLite and Postgres).
pub(crate) const SELECT_TRANSCRIPT: &str = "SELECT seq, role, text, start_ms, end_ms, interrupted, heard_ms \
     FROM transcript_entries WHERE call_sid = $1 ORDER BY seq";

/// A call's tool calls, in order (same SQL for SQLite and Postgres).
pub(crate) const SELECT_TOOL_CALLS: &str = "SELECT call_id, name, arguments, output, latency_ms, at_ms \
     FROM tool_calls WHERE call_sid = $1 ORDER BY seq";

/// A call's status callbacks, in order (same SQL for SQLite and Postgres).
pub(crate) const SELECT_STATUS_EVENTS: &str = "SELECT sequence_number, status, duration_s, received_at_ms \
     FROM call_status_events WHERE call_sid = $1 ORDER BY sequence_number";

/// Decodes one `call_status_events` row.
pub(crate) fn status_event_from_row<'r, R>(row: &'r R) -> Result<StatusEvent, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(StatusEvent {
        sequence_number: row.try_get("sequence_number")?,
        status: row.try_get("status")?,
        duration_s: row.try_get("duration_s")?,
        received_at_ms: row.try_get("received_at_ms")?,
    })
}

/// Decodes one `calls` row (selected with [`CALL_COLUMNS`]) without transcript or tools.
pub(crate) fn call_from_row<'r, R>(row: &'r R) -> Result<CallRecord, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let n = |col: &'r str| -> Result<u64, sqlx::Error> { Ok(from_sql(row.try_get(col)?)) };
    let cost_micro_usd: Option<i64> = row.try_get("cost_micro_usd")?;
    let cost_detail: Option<String> = row.try_get("cost_detail")?;
    let key: Option<String> = row.try_get("recording_key")?;
    let recording = match key {
        Some(key) => {
            let ms: Option<i64> = row.try_get("recording_ms")?;
            let bytes: Option<i64> = row.try_get("recording_bytes")?;
            Some(RecordingRef {
                bucket: row.try_get("recording_bucket")?,
                key,
                duration_ms: ms.map_or(0, from_sql),
                bytes: bytes.map_or(0, from_sql),
            })
        }
        None => None,
    };
    Ok(CallRecord {
        call_sid: row.try_get("call_sid")?,
        tenant: row.try_get("tenant")?,
        from: row.try_get("from_number")?,
        to: row.try_get("to_number")?,
        started_at_ms: row.try_get("started_at_ms")?,
        ended_at_ms: row.try_get("ended_at_ms")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        status: row.try_get("status")?,
        duration_s: row.try_get("duration_s")?,
        status_sequence: row.try_get("status_sequence")?,
        barge_ins: u32::try_from(n("barge_ins")?).unwrap_or(u32::MAX),
        reconnects: {
            let s: String = row.try_get("reconnects")?;
            s.split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        },
        usage: Usage {
            responses: n("usage_responses")?,
            total_tokens: n("usage_total_tokens")?,
            input_tokens: n("usage_input_tokens")?,
            output_tokens: n("usage_output_tokens")?,
            input_audio_tokens: n("usage_input_audio_tokens")?,
            input_text_tokens: n("usage_input_text_tokens")?,
            cached_tokens: n("usage_cached_tokens")?,
            output_audio_tokens: n("usage_output_audio_tokens")?,
            output_text_tokens: n("usage_output_text_tokens")?,
            cached_text_tokens: n("usage_cached_text_tokens")?,
            cached_audio_tokens: n("usage_cached_audio_tokens")?,
        },
        transcript: Vec::new(),
        tool_calls: Vec::new(),
        model: row.try_get("model")?,
        cost: cost_micro_usd.map(|total_micro_usd| CallCost {
            total_micro_usd,
            detail: cost_detail.unwrap_or_default(),
        }),
        analysis: Analysis {
            sentiment: row.try_get("analysis_sentiment")?,
            success: row.try_get("analysis_success")?,
            document: row.try_get("analysis")?,
        },
        status_history: Vec::new(),
        recording,
        data_key: row.try_get("data_key")?,
        transfers: Vec::new(),
        voicemail_url: row.try_get("voicemail_url")?,
        voicemail_duration_s: row.try_get("voicemail_duration_s")?,
    })
}

/// Decodes one `transcript_entries` row.
pub(crate) fn transcript_from_row<'r, R>(row: &'r R) -> Result<TranscriptEntry, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let role: String = row.try_get("role")?;
    let heard_ms: Option<i64> = row.try_get("heard_ms")?;
    Ok(TranscriptEntry {
        seq: u32::try_from(from_sql(row.try_get("seq")?)).unwrap_or(u32::MAX),
        role: role_from_str(&role)?,
        text: row.try_get("text")?,
        start_ms: from_sql(row.try_get("start_ms")?),
        end_ms: from_sql(row.try_get("end_ms")?),
        interrupted: row.try_get("interrupted")?,
        heard_ms: heard_ms.map(from_sql),
    })
}

/// Decodes one `tool_calls` row.
pub(crate) fn tool_call_from_row<'r, R>(row: &'r R) -> Result<ToolCallRecord, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ToolCallRecord {
        call_id: row.try_get("call_id")?,
        name: row.try_get("name")?,
        arguments: row.try_get("arguments")?,
        output: row.try_get("output")?,
        latency_ms: from_sql(row.try_get("latency_ms")?),
        at_ms: row.try_get::<Option<i64>, _>("at_ms")?.map(from_sql),
    })
}

/// A child row as the Postgres read aggregates it (`json_build_object` of the columns
/// the `SELECT_*` queries read), decoded with the same conversions as the row decoders.
mod json_rows {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub(super) struct Transcript {
        pub seq: i64,
        pub role: String,
        pub text: String,
        pub start_ms: i64,
        pub end_ms: i64,
        pub interrupted: bool,
        pub heard_ms: Option<i64>,
    }

    #[derive(Deserialize)]
    pub(super) struct ToolCall {
        pub call_id: String,
        pub name: String,
        pub arguments: String,
        pub output: String,
        pub latency_ms: i64,
        pub at_ms: Option<i64>,
    }

    #[derive(Deserialize)]
    pub(super) struct Transfer {
        pub leg: i64,
        pub target: String,
        pub dial_status: String,
        pub dial_duration_s: Option<i64>,
        pub dial_call_sid: Option<String>,
        pub at_ms: i64,
    }
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(json)
        .map_err(|e| sqlx::Error::Decode(format!("{what} of a call: {e}").into()))
}

/// A call's transcript from its JSON array (Postgres' one-statement read).
pub(crate) fn transcript_from_json(json: &str) -> Result<Vec<TranscriptEntry>, sqlx::Error> {
    from_json::<Vec<json_rows::Transcript>>("transcript", json)?
        .into_iter()
        .map(|r| {
            Ok(TranscriptEntry {
                seq: u32::try_from(from_sql(r.seq)).unwrap_or(u32::MAX),
                role: role_from_str(&r.role)?,
                text: r.text,
                start_ms: from_sql(r.start_ms),
                end_ms: from_sql(r.end_ms),
                interrupted: r.interrupted,
                heard_ms: r.heard_ms.map(from_sql),
            })
        })
        .collect()
}

/// A call's tool calls from their JSON array.
pub(crate) fn tool_calls_from_json(json: &str) -> Result<Vec<ToolCallRecord>, sqlx::Error> {
    Ok(from_json::<Vec<json_rows::ToolCall>>("tool calls", json)?
        .into_iter()
        .map(|r| ToolCallRecord {
            call_id: r.call_id,
            name: r.name,
            arguments: r.arguments,
            output: r.output,
            latency_ms: from_sql(r.latency_ms),
            at_ms: r.at_ms.map(from_sql),
        })
        .collect())
}

/// A call's status callbacks from their JSON array.
pub(crate) fn status_events_from_json(json: &str) -> Result<Vec<StatusEvent>, sqlx::Error> {
    from_json("status history", json)
}

/// A call's transfers from their JSON array.
pub(crate) fn transfers_from_json(json: &str) -> Result<Vec<super::TransferRecord>, sqlx::Error> {
    Ok(from_json::<Vec<json_rows::Transfer>>("transfers", json)?
        .into_iter()
        .map(|r| super::TransferRecord {
            leg: u32::try_from(from_sql(r.leg)).unwrap_or(u32::MAX),
            target: r.target,
            dial_status: r.dial_status,
            dial_duration_s: r.dial_duration_s,
            dial_call_sid: r.dial_call_sid,
            at_ms: r.at_ms,
        })
        .collect())
}
