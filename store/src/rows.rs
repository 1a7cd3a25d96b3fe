//! Row decoding and integer conversions shared by the SQLite and Postgres stores.
//!
//! Both schemas use the same column names and 64-bit signed integers, so one generic
//! decoder serves both drivers.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{CallRecord, Role, ToolCallRecord, TranscriptEntry, Usage};

/// The `calls` columns every read selects; [`call_from_row`] decodes them by name.
pub(crate) const CALL_COLUMNS: &str = "call_sid, tenant, from_number, to_number, \
    started_at_ms, ended_at_ms, outcome, detail, status, duration_s, status_sequence, \
    barge_ins, usage_responses, usage_total_tokens, usage_input_tokens, \
    usage_output_tokens, usage_input_audio_tokens, usage_input_text_tokens, \
    usage_cached_tokens, usage_output_audio_tokens, usage_output_text_tokens, \
    voicemail_url, voicemail_duration_s";

/// A call's transfers, by leg (same SQL for SQLite and Postgres).
pub(crate) const SELECT_TRANSFERS: &str = "SELECT leg, target, dial_status, dial_duration_s, \
     dial_call_sid, at_ms FROM call_transfers WHERE call_sid = $1 ORDER BY leg";

/// Makes sure the call row exists (a transfer or voicemail can be written before the
/// call's other ops reach the store).
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

/// Sets the voicemail ($1 call, $2 url, $3 duration).
pub(crate) const SET_VOICEMAIL: &str =
    "UPDATE calls SET voicemail_url = $2, voicemail_duration_s = $3 WHERE call_sid = $1";

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
pub(crate) const SELECT_TOOL_CALLS: &str = "SELECT call_id, name, arguments, output, latency_ms \
     FROM tool_calls WHERE call_sid = $1 ORDER BY seq";

/// Decodes one `calls` row (selected with [`CALL_COLUMNS`]) without transcript or tools.
pub(crate) fn call_from_row<'r, R>(row: &'r R) -> Result<CallRecord, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let n = |col: &'r str| -> Result<u64, sqlx::Error> { Ok(from_sql(row.try_get(col)?)) };
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
        },
        transcript: Vec::new(),
        tool_calls: Vec::new(),
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
    })
}
