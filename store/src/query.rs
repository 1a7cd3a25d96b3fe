//! The admin API's reads (issue 15 §3): a tenant's calls filtered and paged by a cursor,
//! and per-day totals. The SQL is the same for SQLite and Postgres (numbered parameters,
//! row-value comparison); each store only binds and decodes.

use serde::{Deserialize, Serialize};

use super::CallRecord;
use super::rows::CALL_COLUMNS;

/// Most calls one page may hold.
pub const MAX_PAGE: u32 = 500;

/// A call's duration in seconds: Twilio's `CallDuration` when a status callback brought
/// it, else the media session's length; NULL for a call that has not ended.
pub(crate) const DURATION_SQL: &str = "COALESCE(duration_s, (ended_at_ms - started_at_ms) / 1000)";

/// Whether a call was transferred to a person: its last agent leg handed it over
/// (outcome `transferred`; an unanswered transfer that came back to the agent ends with
/// the return leg's outcome, its dial kept in `call_transfers`); this one expression
/// is what changes when a dedicated column exists.
pub(crate) const TRANSFERRED_SQL: &str = "COALESCE(outcome = 'transferred', FALSE)";

/// A page position: the last call of the previous page. The list is ordered by
/// `(started_at_ms, call_sid)` descending, a total order, so pages never repeat or skip
/// a call even when calls share a start time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The last call's start, Unix ms.
    pub started_at_ms: i64,
    /// The last call's CallSid.
    pub call_sid: String,
}

/// Which of a tenant's calls to list. Every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallQuery {
    /// The tenant whose calls are listed (always applied).
    pub tenant: String,
    /// Started at or after, Unix ms.
    pub started_from_ms: Option<i64>,
    /// Started before, Unix ms.
    pub started_before_ms: Option<i64>,
    /// The caller's number, exactly.
    pub from: Option<String>,
    /// The called number, exactly.
    pub to: Option<String>,
    /// The outcome, exactly (`caller_hangup`, `agent_hangup`, …).
    pub outcome: Option<String>,
    /// Transferred to a person (see [`TRANSFERRED_SQL`]).
    pub transferred: Option<bool>,
    /// Analysis sentiment, exactly.
    pub sentiment: Option<String>,
    /// Analysis success verdict.
    pub success: Option<bool>,
    /// At least this long, seconds (calls still running have no duration and are left out).
    pub min_duration_s: Option<i64>,
    /// Continue after this call.
    pub after: Option<Cursor>,
    /// Page size (clamped to 1..=[`MAX_PAGE`]).
    pub limit: u32,
}

/// One page of calls.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPage {
    /// Calls, newest first, without transcripts, tool calls or status history.
    pub calls: Vec<CallRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// A time range of whole UTC days, `[from_ms, before_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    /// Start, Unix ms.
    pub from_ms: i64,
    /// End (exclusive), Unix ms.
    pub before_ms: i64,
}

/// Totals of the calls started on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyStats {
    /// The day's start, Unix ms (midnight UTC).
    pub day_start_ms: i64,
    /// Calls started that day.
    pub calls: u64,
    /// Calls with a known duration (ended).
    pub timed_calls: u64,
    /// Their summed duration, seconds.
    pub duration_s: u64,
    /// Calls not transferred to a person.
    pub without_transfer: u64,
    /// Calls with a cost (the model's prices were known).
    pub priced_calls: u64,
    /// Their summed cost, millionths of a US dollar.
    pub cost_micro_usd: i64,
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// The list statement for `q` and its parameters; the statement fetches one row more
/// than the page, which tells whether a next page exists.
pub(crate) fn list_sql(q: &CallQuery) -> (String, Vec<Arg>) {
    let mut args = vec![Arg::Text(q.tenant.clone())];
    let mut sql =
        format!("SELECT {CALL_COLUMNS} FROM calls WHERE tenant = $1 AND started_at_ms IS NOT NULL");
    let mut bind = |sql: &mut String, clause: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&clause.replace('?', &format!("${}", args.len())));
    };
    if let Some(v) = q.started_from_ms {
        bind(&mut sql, " AND started_at_ms >= ?", Arg::Int(v));
    }
    if let Some(v) = q.started_before_ms {
        bind(&mut sql, " AND started_at_ms < ?", Arg::Int(v));
    }
    if let Some(v) = &q.from {
        bind(&mut sql, " AND from_number = ?", Arg::Text(v.clone()));
    }
    if let Some(v) = &q.to {
        bind(&mut sql, " AND to_number = ?", Arg::Text(v.clone()));
    }
    if let Some(v) = &q.outcome {
        bind(&mut sql, " AND outcome = ?", Arg::Text(v.clone()));
    }
    if let Some(v) = &q.sentiment {
        bind(
            &mut sql,
            " AND analysis_sentiment = ?",
            Arg::Text(v.clone()),
        );
    }
    if let Some(v) = q.min_duration_s {
        bind(&mut sql, &format!(" AND {DURATION_SQL} >= ?"), Arg::Int(v));
    }
    if let Some(c) = &q.after {
        bind(
            &mut sql,
            " AND (started_at_ms, call_sid) < (?, ",
            Arg::Int(c.started_at_ms),
        );
        bind(&mut sql, "?)", Arg::Text(c.call_sid.clone()));
    }
    match q.transferred {
        Some(true) => sql.push_str(&format!(" AND {TRANSFERRED_SQL}")),
        Some(false) => sql.push_str(&format!(" AND NOT {TRANSFERRED_SQL}")),
        None => {}
    }
    match q.success {
        Some(true) => sql.push_str(" AND analysis_success = TRUE"),
        Some(false) => sql.push_str(" AND analysis_success = FALSE"),
        None => {}
    }
    bind(
        &mut sql,
        " ORDER BY started_at_ms DESC, call_sid DESC LIMIT ?",
        Arg::Int(i64::from(page_size(q)) + 1),
    );
    (sql, args)
}

/// The page size `q` asks for, clamped.
pub(crate) fn page_size(q: &CallQuery) -> u32 {
    q.limit.clamp(1, MAX_PAGE)
}

/// Cuts the fetched rows (one more than the page) into a page and its cursor.
pub(crate) fn into_page(mut calls: Vec<CallRecord>, q: &CallQuery) -> CallPage {
    let size = usize::try_from(page_size(q)).unwrap_or(usize::MAX);
    let next = if calls.len() > size {
        calls.truncate(size);
        calls.last().and_then(|c| {
            Some(Cursor {
                started_at_ms: c.started_at_ms?,
                call_sid: c.call_sid.clone(),
            })
        })
    } else {
        None
    };
    CallPage { calls, next }
}

/// The per-day statement (parameters: tenant, from, before).
pub(crate) fn daily_sql() -> String {
    // CAST: Postgres sums BIGINT into NUMERIC; SQLite accepts the same cast.
    format!(
        "SELECT started_at_ms / 86400000 AS day, COUNT(*) AS calls, \
           COUNT({DURATION_SQL}) AS timed_calls, \
           CAST(COALESCE(SUM({DURATION_SQL}), 0) AS BIGINT) AS duration_s, \
           CAST(SUM(CASE WHEN {TRANSFERRED_SQL} THEN 0 ELSE 1 END) AS BIGINT) AS without_transfer, \
           COUNT(cost_micro_usd) AS priced_calls, \
           CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT) AS cost_micro_usd \
         FROM calls WHERE tenant = $1 AND started_at_ms >= $2 AND started_at_ms < $3 \
         GROUP BY started_at_ms / 86400000 ORDER BY day"
    )
}

/// Decodes one row of [`daily_sql`].
pub(crate) fn daily_from_row<'r, R>(row: &'r R) -> Result<DailyStats, sqlx::Error>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let n =
        |col: &'r str| -> Result<u64, sqlx::Error> { Ok(super::rows::from_sql(row.try_get(col)?)) };
    let day: i64 = row.try_get("day")?;
    Ok(DailyStats {
        day_start_ms: day.saturating_mul(86_400_000),
        calls: n("calls")?,
        timed_calls: n("timed_calls")?,
        duration_s: n("duration_s")?,
        without_transfer: n("without_transfer")?,
        priced_calls: n("priced_calls")?,
        cost_micro_usd: row.try_get("cost_micro_usd")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_sql_numbers_parameters_in_order() {
        let q = CallQuery {
            tenant: "t".into(),
            from: Some("+1".into()),
            min_duration_s: Some(30),
            after: Some(Cursor {
                started_at_ms: 5,
                call_sid: "CA1".into(),
            }),
            transferred: Some(false),
            success: Some(true),
            limit: 10,
            ..CallQuery::default()
        };
        let (sql, args) = list_sql(&q);
        assert!(sql.contains("from_number = $2"), "{sql}");
        assert!(sql.contains(">= $3"), "{sql}");
        assert!(
            sql.contains("(started_at_ms, call_sid) < ($4, $5)"),
            "{sql}"
        );
        assert!(
            sql.contains("NOT COALESCE(outcome = 'transferred'"),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT $6"), "{sql}");
        assert_eq!(args.len(), 6);
        assert_eq!(args[5], Arg::Int(11));
    }

    #[test]
    fn page_size_is_clamped() {
        let mut q = CallQuery::default();
        assert_eq!(page_size(&q), 1);
        q.limit = 100_000;
        assert_eq!(page_size(&q), MAX_PAGE);
    }
}
