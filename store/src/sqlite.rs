//! The embedded store: one SQLite file (WAL), for laptops and single-pod tenants.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::backlog::{self, AnalysisMark, BacklogQuery, MarkOutcome};
use super::query::{self, Arg, CallPage, CallQuery, DailyStats, DayRange};
use super::rows::{
    self, CALL_COLUMNS, CLEAR_RECORDING, DELETE_TOOL_CALLS, DELETE_TRANSCRIPT, ENSURE_CALL,
    SELECT_OWNER, SELECT_STATUS_EVENTS, SELECT_TOOL_CALLS, SELECT_TRANSCRIPT, SELECT_TRANSFERS,
    SET_ANALYSIS, SET_VOICEMAIL, UPDATE_DATA_KEY, UPSERT_RECORDING, UPSERT_TRANSFER, call_from_row,
    status_event_from_row, to_sql, tool_call_from_row, transcript_from_row, transfer_from_row,
};
use super::{
    BoxFuture, CallAnalysis, CallEnd, CallRecord, CallRecording, CallStart, CallStatusUpdate,
    CallStore, CallTransfer, CallVoicemail, RecordingGone, StoreError, StoreOp,
};

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// After an upsert that did not apply: refuses the write if the row is another tenant's
/// ([`rows::refuse_foreign`]).
async fn refuse_foreign(
    tx: &mut Transaction<'static, Sqlite>,
    call_sid: &str,
    tenant: &str,
) -> Result<(), StoreError> {
    let owner: Option<String> = sqlx::query_scalar(SELECT_OWNER)
        .bind(call_sid)
        .fetch_optional(&mut **tx)
        .await?;
    rows::refuse_foreign(call_sid, tenant, owner)
}

fn migrator() -> Migrator {
    crate::migrations!("sqlite")
}

/// Call records in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating file and parent directory if missing) the database a
    /// `sqlite:PATH` / `sqlite://PATH` URL names and runs migrations. `sqlite::memory:`
    /// gives a private in-memory database.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Records are the product: a commit must survive a power cut, and the write
            // rate (a few rows per call) makes the extra fsync cheap.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let mut pool = SqlitePoolOptions::new().acquire_timeout(BUSY_TIMEOUT * 2);
        if in_memory {
            // An in-memory database lives only while a connection holds it open.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            let path = options.get_filename();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
            }
            pool = pool.max_connections(4);
        }
        let pool = pool.connect_with(options).await?;
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        // IMMEDIATE takes the write lock up front, so busy_timeout applies instead of a
        // deferred transaction failing at its first write.
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn start(&self, s: &CallStart) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let applied = sqlx::query(
            "INSERT INTO calls (call_sid, tenant, from_number, to_number, started_at_ms) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (call_sid) DO UPDATE SET \
               from_number = COALESCE(calls.from_number, excluded.from_number), \
               to_number = COALESCE(calls.to_number, excluded.to_number), \
               started_at_ms = COALESCE(calls.started_at_ms, excluded.started_at_ms) \
             WHERE calls.tenant = excluded.tenant \
             RETURNING call_sid",
        )
        .bind(&s.call_sid)
        .bind(&s.tenant)
        .bind(&s.from)
        .bind(&s.to)
        .bind(s.started_at_ms)
        .fetch_optional(&mut *tx)
        .await?;
        if applied.is_none() {
            refuse_foreign(&mut tx, &s.call_sid, &s.tenant).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn end(&self, e: &CallEnd) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let u = &e.usage;
        let applied = sqlx::query(
            "INSERT INTO calls (call_sid, tenant, ended_at_ms, outcome, detail, barge_ins, \
               usage_responses, usage_total_tokens, usage_input_tokens, usage_output_tokens, \
               usage_input_audio_tokens, usage_input_text_tokens, usage_cached_tokens, \
               usage_output_audio_tokens, usage_output_text_tokens, reconnects, \
               usage_cached_text_tokens, usage_cached_audio_tokens, model, cost_micro_usd, \
               cost_detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
               $16, $17, $18, $19, $20, $21) \
             ON CONFLICT (call_sid) DO UPDATE SET \
               ended_at_ms = excluded.ended_at_ms, outcome = excluded.outcome, \
               detail = excluded.detail, barge_ins = excluded.barge_ins, \
               reconnects = excluded.reconnects, \
               usage_responses = excluded.usage_responses, \
               usage_total_tokens = excluded.usage_total_tokens, \
               usage_input_tokens = excluded.usage_input_tokens, \
               usage_output_tokens = excluded.usage_output_tokens, \
               usage_input_audio_tokens = excluded.usage_input_audio_tokens, \
               usage_input_text_tokens = excluded.usage_input_text_tokens, \
               usage_cached_tokens = excluded.usage_cached_tokens, \
               usage_output_audio_tokens = excluded.usage_output_audio_tokens, \
               usage_output_text_tokens = excluded.usage_output_text_tokens, \
               usage_cached_text_tokens = excluded.usage_cached_text_tokens, \
               usage_cached_audio_tokens = excluded.usage_cached_audio_tokens, \
               model = excluded.model, cost_micro_usd = excluded.cost_micro_usd, \
               cost_detail = excluded.cost_detail \
             WHERE calls.tenant = excluded.tenant \
             RETURNING call_sid",
        )
        .bind(&e.call_sid)
        .bind(&e.tenant)
        .bind(e.ended_at_ms)
        .bind(&e.outcome)
        .bind(&e.detail)
        .bind(i64::from(e.barge_ins))
        .bind(to_sql(u.responses))
        .bind(to_sql(u.total_tokens))
        .bind(to_sql(u.input_tokens))
        .bind(to_sql(u.output_tokens))
        .bind(to_sql(u.input_audio_tokens))
        .bind(to_sql(u.input_text_tokens))
        .bind(to_sql(u.cached_tokens))
        .bind(to_sql(u.output_audio_tokens))
        .bind(to_sql(u.output_text_tokens))
        .bind(e.reconnects.join(","))
        .bind(to_sql(u.cached_text_tokens))
        .bind(to_sql(u.cached_audio_tokens))
        .bind(&e.model)
        .bind(e.cost.as_ref().map(|c| c.total_micro_usd))
        .bind(e.cost.as_ref().map(|c| c.detail.as_str()))
        .fetch_optional(&mut *tx)
        .await?;
        if applied.is_none() {
            refuse_foreign(&mut tx, &e.call_sid, &e.tenant).await?;
        }
        sqlx::query(UPDATE_DATA_KEY)
            .bind(&e.call_sid)
            .bind(&e.data_key)
            .bind(&e.tenant)
            .execute(&mut *tx)
            .await?;

        sqlx::query(DELETE_TRANSCRIPT)
            .bind(&e.call_sid)
            .bind(&e.tenant)
            .execute(&mut *tx)
            .await?;
        for t in &e.transcript {
            sqlx::query(
                "INSERT INTO transcript_entries \
                   (call_sid, seq, role, text, start_ms, end_ms, interrupted, heard_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&e.call_sid)
            .bind(i64::from(t.seq))
            .bind(t.role.as_str())
            .bind(&t.text)
            .bind(to_sql(t.start_ms))
            .bind(to_sql(t.end_ms))
            .bind(t.interrupted)
            .bind(t.heard_ms.map(to_sql))
            .execute(&mut *tx)
            .await?;
        }

        sqlx::query(DELETE_TOOL_CALLS)
            .bind(&e.call_sid)
            .bind(&e.tenant)
            .execute(&mut *tx)
            .await?;
        for (seq, c) in (0_i64..).zip(&e.tool_calls) {
            sqlx::query(
                "INSERT INTO tool_calls \
                   (call_sid, seq, call_id, name, arguments, output, latency_ms, at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&e.call_sid)
            .bind(seq)
            .bind(&c.call_id)
            .bind(&c.name)
            .bind(&c.arguments)
            .bind(&c.output)
            .bind(to_sql(c.latency_ms))
            .bind(c.at_ms.map(to_sql))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn transfer(&self, t: &CallTransfer) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(ENSURE_CALL)
            .bind(&t.call_sid)
            .bind(&t.tenant)
            .execute(&mut *tx)
            .await?;
        refuse_foreign(&mut tx, &t.call_sid, &t.tenant).await?;
        sqlx::query(UPSERT_TRANSFER)
            .bind(&t.call_sid)
            .bind(i64::from(t.leg))
            .bind(&t.target)
            .bind(&t.dial_status)
            .bind(t.dial_duration_s)
            .bind(&t.dial_call_sid)
            .bind(t.at_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn voicemail(&self, v: &CallVoicemail) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(ENSURE_CALL)
            .bind(&v.call_sid)
            .bind(&v.tenant)
            .execute(&mut *tx)
            .await?;
        refuse_foreign(&mut tx, &v.call_sid, &v.tenant).await?;
        sqlx::query(SET_VOICEMAIL)
            .bind(&v.call_sid)
            .bind(&v.recording_url)
            .bind(v.duration_s)
            .bind(&v.tenant)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn status(&self, s: &CallStatusUpdate) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let applied = sqlx::query(
            "INSERT INTO calls (call_sid, tenant, status, duration_s, status_sequence) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (call_sid) DO UPDATE SET \
               status = excluded.status, \
               duration_s = COALESCE(excluded.duration_s, calls.duration_s), \
               status_sequence = excluded.status_sequence \
             WHERE calls.tenant = excluded.tenant \
               AND (calls.status_sequence IS NULL \
                 OR calls.status_sequence < excluded.status_sequence) \
             RETURNING call_sid",
        )
        .bind(&s.call_sid)
        .bind(&s.tenant)
        .bind(&s.status)
        .bind(s.duration_s)
        .bind(s.sequence_number)
        .fetch_optional(&mut *tx)
        .await?;
        if applied.is_none() {
            // Either an older callback (kept in the history below) or another tenant's call.
            refuse_foreign(&mut tx, &s.call_sid, &s.tenant).await?;
        }
        // The history keeps every callback, older ones arriving late included.
        sqlx::query(
            "INSERT INTO call_status_events \
               (call_sid, sequence_number, status, duration_s, received_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (call_sid, sequence_number) DO NOTHING",
        )
        .bind(&s.call_sid)
        .bind(s.sequence_number)
        .bind(&s.status)
        .bind(s.duration_s)
        .bind(s.received_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recording(&self, r: &CallRecording) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let applied = sqlx::query(UPSERT_RECORDING)
            .bind(&r.call_sid)
            .bind(&r.tenant)
            .bind(&r.recording.bucket)
            .bind(&r.recording.key)
            .bind(to_sql(r.recording.duration_ms))
            .bind(to_sql(r.recording.bytes))
            .fetch_optional(&mut *tx)
            .await?;
        if applied.is_none() {
            refuse_foreign(&mut tx, &r.call_sid, &r.tenant).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn analysis(&self, a: &CallAnalysis) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let applied = sqlx::query(SET_ANALYSIS)
            .bind(&a.call_sid)
            .bind(a.analysis.sentiment.as_deref())
            .bind(a.analysis.success)
            .bind(a.analysis.document.as_deref())
            .bind(&a.tenant)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if applied == 0 {
            refuse_foreign(&mut tx, &a.call_sid, &a.tenant).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn backlog(&self, q: &BacklogQuery) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(backlog::SELECT_BACKLOG)
            .bind(&q.tenant)
            .bind(q.ended_from_ms)
            .bind(q.ended_before_ms)
            .bind(i64::from(q.max_attempts))
            .bind(q.now_ms)
            .bind(i64::from(q.min_turns))
            .bind(i64::from(q.limit))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn mark(&self, m: &AnalysisMark) -> Result<MarkOutcome, StoreError> {
        let stmt = match m {
            AnalysisMark::Claim {
                call_sid,
                tenant,
                owner,
                now_ms,
                until_ms,
            } => sqlx::query(backlog::CLAIM)
                .bind(call_sid)
                .bind(tenant)
                .bind(owner)
                .bind(*now_ms)
                .bind(*until_ms),
            AnalysisMark::Release { call_sid, owner } => {
                sqlx::query(backlog::RELEASE).bind(call_sid).bind(owner)
            }
            AnalysisMark::Fail {
                call_sid,
                tenant,
                reason,
            } => sqlx::query(backlog::FAIL)
                .bind(call_sid)
                .bind(tenant)
                .bind(reason),
        };
        if stmt.execute(&self.pool).await?.rows_affected() > 0 {
            return Ok(MarkOutcome::Applied);
        }
        let Some(tenant) = m.tenant() else {
            return Ok(MarkOutcome::Refused);
        };
        let row: Option<i32> = sqlx::query_scalar(backlog::EXISTS)
            .bind(m.call_sid())
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        Ok(if row.is_some() {
            MarkOutcome::Refused
        } else {
            MarkOutcome::Missing
        })
    }

    async fn recording_gone(&self, r: &RecordingGone) -> Result<(), StoreError> {
        sqlx::query(CLEAR_RECORDING)
            .bind(&r.call_sid)
            .bind(&r.key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn read_call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        // One read transaction, so the call and its children are one consistent snapshot.
        let mut tx = self.pool.begin().await?;
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE call_sid = $1");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(call_sid)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let mut call = call_from_row(&row)?;
        call.transcript = sqlx::query(SELECT_TRANSCRIPT)
            .bind(call_sid)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(transcript_from_row)
            .collect::<Result<_, _>>()?;
        call.tool_calls = sqlx::query(SELECT_TOOL_CALLS)
            .bind(call_sid)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(tool_call_from_row)
            .collect::<Result<_, _>>()?;
        call.status_history = sqlx::query(SELECT_STATUS_EVENTS)
            .bind(call_sid)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(status_event_from_row)
            .collect::<Result<_, _>>()?;
        call.transfers = sqlx::query(SELECT_TRANSFERS)
            .bind(call_sid)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(transfer_from_row)
            .collect::<Result<_, _>>()?;
        tx.commit().await?;
        Ok(Some(call))
    }

    async fn read_recent(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        // SQLite sorts NULLs first ascending, so DESC puts calls without a start last.
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls \
             ORDER BY started_at_ms DESC, call_sid DESC LIMIT $1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(call_from_row).collect::<Result<_, _>>()?)
    }
}

impl CallStore for SqliteStore {
    fn apply<'a>(&'a self, op: &'a StoreOp) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match op {
                StoreOp::Start(s) => self.start(s).await,
                StoreOp::End(e) => self.end(e).await,
                StoreOp::Status(s) => self.status(s).await,
                StoreOp::Recording(r) => self.recording(r).await,
                StoreOp::RecordingGone(r) => self.recording_gone(r).await,
                StoreOp::Transfer(t) => self.transfer(t).await,
                StoreOp::Voicemail(v) => self.voicemail(v).await,
                StoreOp::Analysis(a) => self.analysis(a).await,
            }
        })
    }

    fn get_call<'a>(
        &'a self,
        call_sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<CallRecord>, StoreError>> {
        Box::pin(self.read_call(call_sid))
    }

    fn recent_calls(&self, limit: u32) -> BoxFuture<'_, Result<Vec<CallRecord>, StoreError>> {
        Box::pin(self.read_recent(limit))
    }

    fn list_calls<'a>(&'a self, q: &'a CallQuery) -> BoxFuture<'a, Result<CallPage, StoreError>> {
        Box::pin(async move {
            let (sql, args) = query::list_sql(q);
            let mut stmt = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in args {
                stmt = match a {
                    Arg::Int(v) => stmt.bind(v),
                    Arg::Text(v) => stmt.bind(v),
                };
            }
            let rows = stmt.fetch_all(&self.pool).await?;
            let calls = rows.iter().map(call_from_row).collect::<Result<_, _>>()?;
            Ok(query::into_page(calls, q))
        })
    }

    fn daily_stats<'a>(
        &'a self,
        tenant: &'a str,
        range: DayRange,
    ) -> BoxFuture<'a, Result<Vec<DailyStats>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(query::daily_sql()))
                .bind(tenant)
                .bind(range.from_ms)
                .bind(range.before_ms)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows
                .iter()
                .map(query::daily_from_row)
                .collect::<Result<_, _>>()?)
        })
    }

    fn analysis_backlog<'a>(
        &'a self,
        q: &'a BacklogQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(self.backlog(q))
    }

    fn mark_analysis<'a>(
        &'a self,
        mark: &'a AnalysisMark,
    ) -> BoxFuture<'a, Result<MarkOutcome, StoreError>> {
        Box::pin(self.mark(mark))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pool.close())
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
    }
}
