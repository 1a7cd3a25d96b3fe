//! Switchboard's call store. Call records: what is written, the store trait, its SQLite
//! and Postgres implementations, and the write-behind queue that keeps writes off the
//! gateway's audio path. The gateway writes and reads through it; the operator runs its
//! Postgres migrations ([`postgres::migrate`]) as each tenant's role.
//!
//! Every write is a [`StoreOp`], an idempotent upsert keyed by `call_sid`, so the queue
//! may replay a spooled op after a crash without duplicating anything.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// The store's migrations for one database folder (`sqlite` or `postgres`), in version
/// order: the one list of versions both databases share, so a new migration is added
/// once (with a file in each folder) and never out of order.
macro_rules! migrations {
    ($dir:literal) => {
        sqlx::migrate::Migrator::with_migrations(
            [
                (
                    1,
                    "calls",
                    include_str!(concat!("../migrations/", $dir, "/0001_calls.sql")),
                ),
                (
                    2,
                    "call_control",
                    include_str!(concat!("../migrations/", $dir, "/0002_call_control.sql")),
                ),
                (
                    3,
                    "reconnects",
                    include_str!(concat!("../migrations/", $dir, "/0003_reconnects.sql")),
                ),
                (
                    4,
                    "recordings",
                    include_str!(concat!("../migrations/", $dir, "/0004_recordings.sql")),
                ),
                (
                    5,
                    "data_key",
                    include_str!(concat!("../migrations/", $dir, "/0005_data_key.sql")),
                ),
                (
                    6,
                    "api",
                    include_str!(concat!("../migrations/", $dir, "/0006_api.sql")),
                ),
                (
                    7,
                    "list_filters",
                    include_str!(concat!("../migrations/", $dir, "/0007_list_filters.sql")),
                ),
                (
                    8,
                    "analysis_backlog",
                    include_str!(concat!(
                        "../migrations/",
                        $dir,
                        "/0008_analysis_backlog.sql"
                    )),
                ),
            ]
            .into_iter()
            .map(|(version, description, sql)| {
                sqlx::migrate::Migration::new(
                    version,
                    description.into(),
                    sqlx::migrate::MigrationType::Simple,
                    sqlx::SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
        )
    };
}
pub(crate) use migrations;

pub mod backlog;
pub mod postgres;
pub mod query;
pub mod queue;
mod rows;
pub mod sqlite;
pub mod swap;

pub use backlog::{AnalysisMark, BacklogQuery, MarkOutcome};
pub use query::{CallPage, CallQuery, Cursor, DailyStats, DayRange};
pub use queue::{QueueFull, WriteBehind, WriteBehindConfig};
pub use swap::SwappableStore;

/// A boxed future, so the store trait stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused the statement.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The spool file could not be read or written.
    #[error("spool I/O error at {path}: {source}")]
    Spool {
        /// The spool file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A URL names a database this build does not support. Holds only the text before
    /// the first `:` (the scheme): the rest may carry a password.
    #[error("unsupported database URL scheme {0:?} (expected sqlite:… or postgres://…)")]
    UnsupportedUrl(String),
    /// The CallSid is already recorded for another tenant: the write was refused and
    /// nothing of it applied (a call row is only ever written by its own tenant).
    #[error("call {call_sid} is recorded for another tenant: write for tenant {tenant:?} refused")]
    TenantConflict {
        /// The call.
        call_sid: String,
        /// The tenant whose write was refused.
        tenant: String,
    },
}

/// Who spoke a transcript entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person who called.
    Caller,
    /// The voice agent.
    Agent,
}

impl Role {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Caller => "caller",
            Role::Agent => "agent",
        }
    }
}

/// One utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// Position in the call (0-based, by start time).
    pub seq: u32,
    /// Who spoke.
    pub role: Role,
    /// What was said (for an interrupted agent turn: what the model had generated).
    pub text: String,
    /// Start, ms since the call's media stream started.
    pub start_ms: u64,
    /// End, ms since the call's media stream started.
    pub end_ms: u64,
    /// An agent turn the caller cut short (barge-in).
    pub interrupted: bool,
    /// For an interrupted agent turn, how much of its audio the caller heard, in ms.
    pub heard_ms: Option<u64>,
}

/// Token usage summed over every `response.done` of a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Number of `response.done` events.
    pub responses: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Input tokens (all modalities, cached included).
    pub input_tokens: u64,
    /// Output tokens (all modalities).
    pub output_tokens: u64,
    /// Input audio tokens.
    pub input_audio_tokens: u64,
    /// Input text tokens.
    pub input_text_tokens: u64,
    /// Cached input tokens (a subset of `input_tokens`).
    pub cached_tokens: u64,
    /// Cached input text tokens (a subset of `input_text_tokens` and of `cached_tokens`).
    #[serde(default)]
    pub cached_text_tokens: u64,
    /// Cached input audio tokens (a subset of `input_audio_tokens` and of `cached_tokens`).
    #[serde(default)]
    pub cached_audio_tokens: u64,
    /// Output audio tokens.
    pub output_audio_tokens: u64,
    /// Output text tokens.
    pub output_text_tokens: u64,
}

/// One tool call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// The model's call id.
    pub call_id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as the model sent them (JSON text).
    pub arguments: String,
    /// Output returned to the model (JSON text).
    pub output: String,
    /// Arguments received → output sent, ms.
    pub latency_ms: u64,
    /// When the model called it, ms since the call's media stream started (the
    /// transcript's clock); absent in records written before it was kept.
    #[serde(default)]
    pub at_ms: Option<u64>,
}

/// A call was answered by a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStart {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Tenant name (`metadata.name`).
    pub tenant: String,
    /// Caller (`From`).
    pub from: String,
    /// Called number (`To`).
    pub to: String,
    /// Unix time in ms.
    pub started_at_ms: i64,
}

/// A call's media session ended; everything learned during the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEnd {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Tenant name.
    pub tenant: String,
    /// Unix time in ms.
    pub ended_at_ms: i64,
    /// Why the call ended: `caller_hangup`, `agent_hangup`, `openai_error`, `openai_closed`,
    /// `max_duration`, `silence_timeout`, `drain_deadline`, `twilio_error`.
    pub outcome: String,
    /// Extra detail for the outcome (e.g. the OpenAI error code), if any.
    pub detail: Option<String>,
    /// Transcript in order.
    pub transcript: Vec<TranscriptEntry>,
    /// Usage.
    pub usage: Usage,
    /// Tool calls.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Number of barge-ins.
    pub barge_ins: u32,
    /// Why the call moved to a new Realtime session, once per move, in order
    /// (`dropped`, `closed`, `error`, `session_limit`, `rotation`).
    #[serde(default)]
    pub reconnects: Vec<String>,
    /// The Realtime model the call used.
    #[serde(default)]
    pub model: Option<String>,
    /// What the call cost, when the model's prices are known.
    #[serde(default)]
    pub cost: Option<CallCost>,
    /// When the transcript text and tool-call arguments and outputs are sealed (the
    /// tenant's `spec.encryption`): the call's data key wrapped by KMS, base64. The store
    /// keeps it as is and never sees a clear field of such a record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<String>,
}

/// What a call cost, with what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCost {
    /// Total, in millionths of a US dollar (integers: sums stay exact).
    pub total_micro_usd: i64,
    /// The breakdown and the prices used (a JSON document the gateway writes; the store
    /// keeps it as text).
    pub detail: String,
}

/// Post-call analysis results as stored (written by the analysis step of issue 15 §1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    /// `positive`, `neutral`, `negative` or `unknown`.
    pub sentiment: Option<String>,
    /// Whether the call met the tenant's rubric.
    pub success: Option<bool>,
    /// The whole analysis document (JSON text).
    pub document: Option<String>,
}

/// A call's post-call analysis ran; its results for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallAnalysis {
    /// Twilio CallSid.
    pub call_sid: String,
    /// The tenant the call belongs to (a call of another tenant is refused).
    pub tenant: String,
    /// The results (the document sealed like the transcript for a tenant that encrypts).
    pub analysis: Analysis,
}

/// One Twilio status callback, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    /// Twilio's `SequenceNumber`.
    pub sequence_number: i64,
    /// `CallStatus`.
    pub status: String,
    /// `CallDuration`, seconds, when Twilio sent it.
    pub duration_s: Option<i64>,
    /// When the gateway received it, Unix ms (absent for callbacks spooled by older builds).
    pub received_at_ms: Option<i64>,
}

/// A Twilio call status callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStatusUpdate {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Tenant name.
    pub tenant: String,
    /// `CallStatus` (`ringing`, `in-progress`, `completed`, …).
    pub status: String,
    /// `CallDuration` in seconds, on terminal events.
    pub duration_s: Option<i64>,
    /// `SequenceNumber`: an update with a lower number than the stored one is ignored.
    pub sequence_number: i64,
    /// When the gateway received the callback, Unix ms.
    #[serde(default)]
    pub received_at_ms: Option<i64>,
}

/// Where a call's recording is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRef {
    /// S3 bucket; `None`: a file under the gateway's recordings directory.
    pub bucket: Option<String>,
    /// S3 object key (never a URL), or the file's path relative to the recordings
    /// directory.
    pub key: String,
    /// Length of the recording, ms.
    pub duration_ms: u64,
    /// Size of the WAV file, bytes.
    pub bytes: u64,
}

/// A call's recording was stored (uploaded, or kept locally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecording {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Tenant name.
    pub tenant: String,
    /// Where it is.
    pub recording: RecordingRef,
}

/// A call's recording was deleted (retention): its reference is cleared if it still names
/// `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingGone {
    /// Twilio CallSid.
    pub call_sid: String,
    /// The key that was deleted.
    pub key: String,
}

/// The outcome of a transfer to a person (the `<Dial action>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallTransfer {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Tenant name.
    pub tenant: String,
    /// The agent leg that transferred (1 = the first): the key of the transfer.
    pub leg: u32,
    /// The transfer target's name.
    pub target: String,
    /// Twilio's `DialCallStatus`: `completed`, `answered`, `busy`, `no-answer`, `failed`,
    /// `canceled` (`other` for anything else).
    pub dial_status: String,
    /// `DialCallDuration`: how long the person talked, seconds.
    pub dial_duration_s: Option<i64>,
    /// `DialCallSid`, the dialled leg.
    pub dial_call_sid: Option<String>,
    /// Unix ms when the dial ended.
    pub at_ms: i64,
}

/// A voicemail the fallback recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallVoicemail {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Tenant name.
    pub tenant: String,
    /// Twilio's `RecordingUrl` (fetch `.wav`/`.mp3` with the account's credentials).
    pub recording_url: String,
    /// `RecordingDuration`, seconds.
    pub duration_s: Option<i64>,
}

/// A transfer as read back with its call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// See [`CallTransfer::leg`].
    pub leg: u32,
    /// See [`CallTransfer::target`].
    pub target: String,
    /// See [`CallTransfer::dial_status`].
    pub dial_status: String,
    /// See [`CallTransfer::dial_duration_s`].
    pub dial_duration_s: Option<i64>,
    /// See [`CallTransfer::dial_call_sid`].
    pub dial_call_sid: Option<String>,
    /// See [`CallTransfer::at_ms`].
    pub at_ms: i64,
}

/// One idempotent write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoreOp {
    /// Insert the call row if absent (fills from/to/start if a status came first).
    Start(CallStart),
    /// Set outcome, end time, usage; replace transcript and tool calls.
    End(Box<CallEnd>),
    /// Set status/duration when `sequence_number` is newer than the stored one.
    Status(CallStatusUpdate),
    /// Set where the call's recording is (inserts the row if absent).
    Recording(CallRecording),
    /// Clear the recording reference if it still names the deleted key.
    RecordingGone(RecordingGone),
    /// Upsert the transfer of one agent leg.
    Transfer(CallTransfer),
    /// Set the fallback voicemail's recording.
    Voicemail(CallVoicemail),
    /// Set the post-call analysis of a call (the first one stored stays: a replayed or
    /// second answer changes nothing) and end its claim.
    Analysis(CallAnalysis),
}

impl StoreOp {
    /// The call the op is about.
    pub fn call_sid(&self) -> &str {
        match self {
            StoreOp::Start(s) => &s.call_sid,
            StoreOp::End(e) => &e.call_sid,
            StoreOp::Status(s) => &s.call_sid,
            StoreOp::Recording(r) => &r.call_sid,
            StoreOp::RecordingGone(r) => &r.call_sid,
            StoreOp::Transfer(t) => &t.call_sid,
            StoreOp::Voicemail(v) => &v.call_sid,
            StoreOp::Analysis(a) => &a.call_sid,
        }
    }
}

/// A call as read back from the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Twilio CallSid.
    pub call_sid: String,
    /// Tenant name.
    pub tenant: String,
    /// Caller.
    pub from: Option<String>,
    /// Called number.
    pub to: Option<String>,
    /// Unix ms.
    pub started_at_ms: Option<i64>,
    /// Unix ms.
    pub ended_at_ms: Option<i64>,
    /// See [`CallEnd::outcome`].
    pub outcome: Option<String>,
    /// See [`CallEnd::detail`].
    pub detail: Option<String>,
    /// Latest Twilio status.
    pub status: Option<String>,
    /// Twilio's `CallDuration`, seconds.
    pub duration_s: Option<i64>,
    /// Sequence number of the stored status.
    pub status_sequence: Option<i64>,
    /// Barge-ins.
    pub barge_ins: u32,
    /// See [`CallEnd::reconnects`].
    #[serde(default)]
    pub reconnects: Vec<String>,
    /// Usage.
    pub usage: Usage,
    /// Transcript in order.
    pub transcript: Vec<TranscriptEntry>,
    /// Tool calls in order.
    pub tool_calls: Vec<ToolCallRecord>,
    /// See [`CallEnd::model`].
    pub model: Option<String>,
    /// See [`CallEnd::cost`].
    pub cost: Option<CallCost>,
    /// Post-call analysis, when it ran.
    pub analysis: Analysis,
    /// Every status callback in sequence order (only read with one call).
    pub status_history: Vec<StatusEvent>,
    /// The call's recording, once stored (and until retention removed it).
    pub recording: Option<RecordingRef>,
    /// The wrapped data key of a record whose fields are sealed (see
    /// [`CallEnd::data_key`]); `None` once opened, or for a record stored in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<String>,
    /// Transfers to a person, by leg (an unanswered one sits between two agent legs).
    #[serde(default)]
    pub transfers: Vec<TransferRecord>,
    /// The fallback voicemail's recording URL.
    #[serde(default)]
    pub voicemail_url: Option<String>,
    /// Its length, seconds.
    #[serde(default)]
    pub voicemail_duration_s: Option<i64>,
}

/// Where call records live. Implementations must make every op an idempotent upsert.
pub trait CallStore: Send + Sync + 'static {
    /// Applies one op (in one transaction).
    fn apply<'a>(&'a self, op: &'a StoreOp) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Reads one call with its transcript, usage and tool calls.
    fn get_call<'a>(
        &'a self,
        call_sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<CallRecord>, StoreError>>;
    /// Lists the most recent calls (newest first), without transcripts.
    fn recent_calls(&self, limit: u32) -> BoxFuture<'_, Result<Vec<CallRecord>, StoreError>>;
    /// One page of a tenant's calls matching `query`, newest first by
    /// `(started_at_ms, call_sid)`, without transcripts, tool calls or status history.
    fn list_calls<'a>(
        &'a self,
        query: &'a CallQuery,
    ) -> BoxFuture<'a, Result<CallPage, StoreError>>;
    /// Per-day (UTC) totals of a tenant's calls started in `range`.
    fn daily_stats<'a>(
        &'a self,
        tenant: &'a str,
        range: DayRange,
    ) -> BoxFuture<'a, Result<Vec<DailyStats>, StoreError>>;
    /// Cheap liveness probe (e.g. `SELECT 1`).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The calls (CallSids) of a tenant that ended and still wait for their post-call
    /// analysis, oldest first ([`backlog`]).
    fn analysis_backlog<'a>(
        &'a self,
        q: &'a BacklogQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;
    /// Claims, releases or gives up a call's analysis ([`backlog`]); applied at once,
    /// not through the write-behind queue (a claim must be answered to mean anything).
    fn mark_analysis<'a>(
        &'a self,
        mark: &'a AnalysisMark,
    ) -> BoxFuture<'a, Result<MarkOutcome, StoreError>>;
    /// Closes the store's connections (waiting for those in use); later operations fail.
    /// Used when a rotated database URL replaced it ([`swap::SwappableStore`]).
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Opens the store a URL names (`sqlite:PATH` / `sqlite://PATH` or `postgres://…`) and
/// runs its migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn CallStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PgStore::open(url).await?))
    } else {
        // Only a URL scheme is shown: a secret that is not a URL (a bare password, a JSON
        // document with one) must not reach the logs.
        let scheme = url
            .split_once(':')
            .map(|(s, _)| s)
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 16
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            })
            .unwrap_or("(none)");
        Err(StoreError::UnsupportedUrl(scheme.to_string()))
    }
}
