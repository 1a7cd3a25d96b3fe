//! The production store: Postgres, one schema per tenant.
//!
//! The schema comes from the URL's `options` (`?options=-c%20search_path%3Dtenant_a`, or
//! `?options[search_path]=tenant_a`): every pooled connection starts with that search
//! path, so tables and the migrations table land in the tenant's schema.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pg_escape::quote_identifier;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::OnceCell;

use super::backlog::{self, AnalysisMark, BacklogQuery, MarkOutcome};
use super::query::{self, Arg, CallPage, CallQuery, DailyStats, DayRange};
use super::rows::{
    self, CALL_COLUMNS, CLEAR_RECORDING, DELETE_TOOL_CALLS, DELETE_TRANSCRIPT, ENSURE_CALL,
    SELECT_OWNER, SET_ANALYSIS, SET_VOICEMAIL, UPDATE_DATA_KEY, UPSERT_RECORDING, UPSERT_TRANSFER,
    call_from_row, to_sql,
};
use super::{
    BoxFuture, CallAnalysis, CallEnd, CallRecord, CallRecording, CallStart, CallStatusUpdate,
    CallStore, CallTransfer, CallVoicemail, RecordingGone, StoreError, StoreOp,
};

/// A call's children as JSON arrays (text), in the order and with the columns of
/// `rows::SELECT_TRANSCRIPT`, `SELECT_TOOL_CALLS`, `SELECT_STATUS_EVENTS` and
/// `SELECT_TRANSFERS` (which SQLite still runs one by one: in process, a query is not
/// a round trip); decoded by `rows::*_from_json`.
const CHILDREN_JSON: &str = "\
    (SELECT COALESCE(json_agg(json_build_object('seq', t.seq, 'role', t.role, \
       'text', t.text, 'start_ms', t.start_ms, 'end_ms', t.end_ms, \
       'interrupted', t.interrupted, 'heard_ms', t.heard_ms) ORDER BY t.seq), '[]')::text \
     FROM transcript_entries t WHERE t.call_sid = calls.call_sid) AS transcript_json, \
    (SELECT COALESCE(json_agg(json_build_object('call_id', c.call_id, 'name', c.name, \
       'arguments', c.arguments, 'output', c.output, 'latency_ms', c.latency_ms, \
       'at_ms', c.at_ms) ORDER BY c.seq), '[]')::text \
     FROM tool_calls c WHERE c.call_sid = calls.call_sid) AS tool_calls_json, \
    (SELECT COALESCE(json_agg(json_build_object('sequence_number', e.sequence_number, \
       'status', e.status, 'duration_s', e.duration_s, 'received_at_ms', e.received_at_ms) \
       ORDER BY e.sequence_number), '[]')::text \
     FROM call_status_events e WHERE e.call_sid = calls.call_sid) AS status_json, \
    (SELECT COALESCE(json_agg(json_build_object('leg', x.leg, 'target', x.target, \
       'dial_status', x.dial_status, 'dial_duration_s', x.dial_duration_s, \
       'dial_call_sid', x.dial_call_sid, 'at_ms', x.at_ms) ORDER BY x.leg), '[]')::text \
     FROM call_transfers x WHERE x.call_sid = calls.call_sid) AS transfers_json";

/// How long an op waits for a connection before it counts as "store down" (the
/// write-behind queue then spools instead of stalling).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// After an upsert that did not apply: refuses the write if the row is another tenant's
/// ([`rows::refuse_foreign`]).
async fn refuse_foreign(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    call_sid: &str,
    tenant: &str,
) -> Result<(), StoreError> {
    let owner: Option<String> = sqlx::query_scalar(SELECT_OWNER)
        .bind(text(call_sid))
        .fetch_optional(&mut **tx)
        .await?;
    rows::refuse_foreign(call_sid, tenant, owner)
}

fn migrator() -> Migrator {
    crate::migrations!("postgres")
}

/// How many migrations the store's Postgres schema has (what a provisioned schema's
/// `_sqlx_migrations` holds once [`migrate`] ran).
pub fn migration_count() -> usize {
    migrator().iter().count()
}

/// Applies the call store's Postgres migrations on `conn`, into the first schema of its
/// `search_path`, owned by its current role: what the operator runs, as the tenant's
/// role, when it provisions a tenant (one definition of the tables for both). The schema
/// must exist. A store opened later on that schema finds nothing left to apply.
///
/// # Errors
///
/// [`MigrateError`] when the database cannot be reached, a migration fails, or the schema
/// holds migrations this build does not know (a newer gateway ran there).
pub async fn migrate(conn: &mut sqlx::PgConnection) -> Result<(), MigrateError> {
    // `run_direct` on the connection itself: `Migrator::run`'s `Acquire` bound makes its
    // future not provably `Send` for every lifetime of a borrowed connection, so callers
    // could not await it in a spawned task (the operator's reconcile).
    migrator().run_direct(None, conn, false).await
}

/// Postgres rejects NUL in text; a model may emit one, and one bad character must not
/// make the whole call record unwritable.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt_text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

/// The first schema named in a `search_path` value, unquoted, skipping `"$user"`.
fn first_schema(search_path: &str) -> Option<String> {
    let mut chars = search_path.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        chars.peek()?;
        let mut name = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                if c == '"' && chars.next_if_eq(&'"').is_none() {
                    break;
                }
                name.push(c);
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                name.push(c);
            }
            name = name.trim().to_string();
        }
        if !name.is_empty() && name != "$user" {
            return Some(name);
        }
    }
}

/// The server could not be reached (as opposed to refusing us): worth waiting for.
fn unreachable(err: &StoreError) -> bool {
    let sql = match err {
        StoreError::Database(e) | StoreError::Migrate(MigrateError::Execute(e)) => e,
        _ => return false,
    };
    matches!(
        sql,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut
    )
}

/// Call records in a Postgres schema.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Schema and migrations are in place (done once, possibly after `open`).
    ready: Arc<OnceCell<()>>,
}

impl PgStore {
    /// Opens the store a `postgres://` URL names: creates the search path's first schema
    /// if none exists yet (needs CREATE on the database) and runs migrations.
    ///
    /// A server that cannot be reached does not fail `open` (a gateway must start, and
    /// spool, while its database is down): schema and migrations are then set up by the
    /// first op or ping that reaches it. Any other failure (bad URL, authentication,
    /// a migration that does not apply) is an error here.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        let store = Self {
            pool,
            ready: Arc::new(OnceCell::new()),
        };
        match store.ready().await {
            Ok(()) => Ok(store),
            Err(e) if unreachable(&e) => {
                tracing::warn!(error = %e, "Postgres unreachable; migrations wait for it");
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.ready
            .get_or_try_init(|| async {
                ensure_schema(&self.pool).await?;
                migrator().run(&self.pool).await?;
                Ok::<(), StoreError>(())
            })
            .await?;
        Ok(())
    }

    async fn start(&self, s: &CallStart) -> Result<(), StoreError> {
        self.ready().await?;
        let mut tx = self.pool.begin().await?;
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
        .bind(text(&s.call_sid))
        .bind(text(&s.tenant))
        .bind(text(&s.from))
        .bind(text(&s.to))
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
        self.ready().await?;
        let sid = text(&e.call_sid);
        let mut tx = self.pool.begin().await?;
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
        .bind(&sid)
        .bind(text(&e.tenant))
        .bind(e.ended_at_ms)
        .bind(text(&e.outcome))
        .bind(opt_text(&e.detail))
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
        .bind(text(&e.reconnects.join(",")))
        .bind(to_sql(u.cached_text_tokens))
        .bind(to_sql(u.cached_audio_tokens))
        .bind(opt_text(&e.model))
        .bind(e.cost.as_ref().map(|c| c.total_micro_usd))
        .bind(e.cost.as_ref().map(|c| text(&c.detail)))
        .fetch_optional(&mut *tx)
        .await?;
        if applied.is_none() {
            refuse_foreign(&mut tx, &e.call_sid, &e.tenant).await?;
        }
        sqlx::query(UPDATE_DATA_KEY)
            .bind(&sid)
            .bind(opt_text(&e.data_key))
            .bind(text(&e.tenant))
            .execute(&mut *tx)
            .await?;

        sqlx::query(DELETE_TRANSCRIPT)
            .bind(&sid)
            .bind(text(&e.tenant))
            .execute(&mut *tx)
            .await?;
        if !e.transcript.is_empty() {
            // One round trip for the whole transcript: arrays unnested server-side.
            let t = &e.transcript;
            sqlx::query(
                "INSERT INTO transcript_entries \
                   (call_sid, seq, role, text, start_ms, end_ms, interrupted, heard_ms) \
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[], \
                   $5::bigint[], $6::bigint[], $7::boolean[], $8::bigint[])",
            )
            .bind(&sid)
            .bind(t.iter().map(|x| i64::from(x.seq)).collect::<Vec<_>>())
            .bind(t.iter().map(|x| x.role.as_str()).collect::<Vec<_>>())
            .bind(t.iter().map(|x| text(&x.text)).collect::<Vec<_>>())
            .bind(t.iter().map(|x| to_sql(x.start_ms)).collect::<Vec<_>>())
            .bind(t.iter().map(|x| to_sql(x.end_ms)).collect::<Vec<_>>())
            .bind(t.iter().map(|x| x.interrupted).collect::<Vec<_>>())
            .bind(t.iter().map(|x| x.heard_ms.map(to_sql)).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }

        sqlx::query(DELETE_TOOL_CALLS)
            .bind(&sid)
            .bind(text(&e.tenant))
            .execute(&mut *tx)
            .await?;
        if !e.tool_calls.is_empty() {
            let c = &e.tool_calls;
            sqlx::query(
                "INSERT INTO tool_calls \
                   (call_sid, seq, call_id, name, arguments, output, latency_ms, at_ms) \
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[], \
                   $5::text[], $6::text[], $7::bigint[], $8::bigint[])",
            )
            .bind(&sid)
            .bind((0_i64..).take(c.len()).collect::<Vec<_>>())
            .bind(c.iter().map(|x| text(&x.call_id)).collect::<Vec<_>>())
            .bind(c.iter().map(|x| text(&x.name)).collect::<Vec<_>>())
            .bind(c.iter().map(|x| text(&x.arguments)).collect::<Vec<_>>())
            .bind(c.iter().map(|x| text(&x.output)).collect::<Vec<_>>())
            .bind(c.iter().map(|x| to_sql(x.latency_ms)).collect::<Vec<_>>())
            .bind(c.iter().map(|x| x.at_ms.map(to_sql)).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn transfer(&self, t: &CallTransfer) -> Result<(), StoreError> {
        self.ready().await?;
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
        self.ready().await?;
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
        self.ready().await?;
        let mut tx = self.pool.begin().await?;
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
        .bind(text(&s.call_sid))
        .bind(text(&s.tenant))
        .bind(text(&s.status))
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
        .bind(text(&s.call_sid))
        .bind(s.sequence_number)
        .bind(text(&s.status))
        .bind(s.duration_s)
        .bind(s.received_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recording(&self, r: &CallRecording) -> Result<(), StoreError> {
        self.ready().await?;
        let mut tx = self.pool.begin().await?;
        let applied = sqlx::query(UPSERT_RECORDING)
            .bind(text(&r.call_sid))
            .bind(text(&r.tenant))
            .bind(r.recording.bucket.as_deref().map(text))
            .bind(text(&r.recording.key))
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
        self.ready().await?;
        let mut tx = self.pool.begin().await?;
        let applied = sqlx::query(SET_ANALYSIS)
            .bind(text(&a.call_sid))
            .bind(a.analysis.sentiment.as_deref().map(text))
            .bind(a.analysis.success)
            .bind(a.analysis.document.as_deref().map(text))
            .bind(text(&a.tenant))
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
        self.ready().await?;
        Ok(sqlx::query_scalar(backlog::SELECT_BACKLOG)
            .bind(text(&q.tenant))
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
        self.ready().await?;
        let stmt = match m {
            AnalysisMark::Claim {
                call_sid,
                tenant,
                owner,
                now_ms,
                until_ms,
            } => sqlx::query(backlog::CLAIM)
                .bind(text(call_sid))
                .bind(text(tenant))
                .bind(text(owner))
                .bind(*now_ms)
                .bind(*until_ms),
            AnalysisMark::Release { call_sid, owner } => sqlx::query(backlog::RELEASE)
                .bind(text(call_sid))
                .bind(text(owner)),
            AnalysisMark::Fail {
                call_sid,
                tenant,
                reason,
            } => sqlx::query(backlog::FAIL)
                .bind(text(call_sid))
                .bind(text(tenant))
                .bind(text(reason)),
        };
        if stmt.execute(&self.pool).await?.rows_affected() > 0 {
            return Ok(MarkOutcome::Applied);
        }
        let Some(tenant) = m.tenant() else {
            return Ok(MarkOutcome::Refused);
        };
        let row: Option<i32> = sqlx::query_scalar(backlog::EXISTS)
            .bind(text(m.call_sid()))
            .bind(text(tenant))
            .fetch_optional(&self.pool)
            .await?;
        Ok(if row.is_some() {
            MarkOutcome::Refused
        } else {
            MarkOutcome::Missing
        })
    }

    async fn recording_gone(&self, r: &RecordingGone) -> Result<(), StoreError> {
        self.ready().await?;
        sqlx::query(CLEAR_RECORDING)
            .bind(text(&r.call_sid))
            .bind(text(&r.key))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn read_call(&self, call_sid: &str) -> Result<Option<CallRecord>, StoreError> {
        self.ready().await?;
        // One statement, one round trip: the call row with its transcript, tool calls,
        // status callbacks and transfers aggregated as JSON arrays server-side. A single
        // statement reads one snapshot, so the children match the row even if an End
        // replaces the transcript meanwhile (what a REPEATABLE READ transaction over five
        // queries gave before, at seven round trips).
        let sql = format!("SELECT {CALL_COLUMNS}, {CHILDREN_JSON} FROM calls WHERE call_sid = $1");
        let Some(row) = sqlx::query(AssertSqlSafe(sql))
            .bind(call_sid)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut call = call_from_row(&row)?;
        let children = |col: &str| -> Result<String, sqlx::Error> { row.try_get(col) };
        call.transcript = rows::transcript_from_json(&children("transcript_json")?)?;
        call.tool_calls = rows::tool_calls_from_json(&children("tool_calls_json")?)?;
        call.status_history = rows::status_events_from_json(&children("status_json")?)?;
        call.transfers = rows::transfers_from_json(&children("transfers_json")?)?;
        Ok(Some(call))
    }

    async fn read_recent(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        self.ready().await?;
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls \
             ORDER BY started_at_ms DESC NULLS LAST, call_sid DESC LIMIT $1"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(call_from_row).collect::<Result<_, _>>()?)
    }
}

/// Creates the search path's first schema when none of its schemas exists yet (a fresh
/// tenant); otherwise migrations would fail with "no schema has been selected".
async fn ensure_schema(pool: &PgPool) -> Result<(), StoreError> {
    let current: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    if current.is_some() {
        return Ok(());
    }
    let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(pool)
        .await?;
    if let Some(schema) = first_schema(&path) {
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_identifier(&schema));
        sqlx::query(AssertSqlSafe(sql)).execute(pool).await?;
    }
    Ok(())
}

impl CallStore for PgStore {
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
            self.ready().await?;
            let (sql, args) = query::list_sql(q);
            let mut stmt = sqlx::query(AssertSqlSafe(sql));
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
            self.ready().await?;
            let rows = sqlx::query(AssertSqlSafe(query::daily_sql()))
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
            // Only a store that can take writes is "up": migrations count.
            self.ready().await?;
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{first_schema, quote_identifier, text};

    #[test]
    fn first_schema_parses_search_paths() {
        assert_eq!(first_schema("tenant_a").as_deref(), Some("tenant_a"));
        assert_eq!(first_schema("\"$user\", public").as_deref(), Some("public"));
        assert_eq!(
            first_schema(" \"My \"\"odd\"\" schema\" , public").as_deref(),
            Some("My \"odd\" schema")
        );
        assert_eq!(first_schema("\"$user\"").as_deref(), None);
        assert_eq!(first_schema("").as_deref(), None);
        assert_eq!(
            first_schema("\"unterminated").as_deref(),
            Some("unterminated")
        );
    }

    #[test]
    fn quote_ident_escapes_quotes() {
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn text_replaces_nul() {
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        assert_eq!(text("plain"), "plain");
    }
}
