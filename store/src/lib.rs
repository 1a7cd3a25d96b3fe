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

pub mod postgres;
pub mod queue;
mod rows;
pub mod sqlite;

pub use queue::{QueueFull, WriteBehind, WriteBehindConfig};

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
    /// A URL names a database this build does not support.
    #[error("unsupported database URL {0:?} (expected sqlite:… or postgres://…)")]
    UnsupportedUrl(String),
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
    /// Cached input tokens.
    pub cached_tokens: u64,
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
    End(CallEnd),
    /// Set status/duration when `sequence_number` is newer than the stored one.
    Status(CallStatusUpdate),
    /// Upsert the transfer of one agent leg.
    Transfer(CallTransfer),
    /// Set the fallback voicemail's recording.
    Voicemail(CallVoicemail),
}

impl StoreOp {
    /// The call the op is about.
    pub fn call_sid(&self) -> &str {
        match self {
            StoreOp::Start(s) => &s.call_sid,
            StoreOp::End(e) => &e.call_sid,
            StoreOp::Status(s) => &s.call_sid,
            StoreOp::Transfer(t) => &t.call_sid,
            StoreOp::Voicemail(v) => &v.call_sid,
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
    /// Usage.
    pub usage: Usage,
    /// Transcript in order.
    pub transcript: Vec<TranscriptEntry>,
    /// Tool calls in order.
    pub tool_calls: Vec<ToolCallRecord>,
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
    /// Cheap liveness probe (e.g. `SELECT 1`).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// Opens the store a URL names (`sqlite:PATH` / `sqlite://PATH` or `postgres://…`) and
/// runs its migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn CallStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
