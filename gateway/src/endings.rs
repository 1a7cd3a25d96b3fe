//! How calls end: the [`Outcome`] of every agent leg (recorded, a metric label), the
//! legs of transfers kept for their return, and the endings kept briefly for streams
//! whose TwiML has a `<Connect action>`.
//!
//! The TwiML the gateway writes today has no `<Connect action>`: the fallback follows
//! `</Connect>` and endings on purpose reach Twilio through its REST API before the
//! stream closes (`call/task.rs`). Calls answered by an earlier version (with an action,
//! still running across an upgrade) make Twilio request `/twilio/after-stream` when
//! their stream closes: the call task records here, *before* it closes the stream,
//! whether it ended the call on purpose (then the action answers `<Hangup/>`); anything
//! else gets the tenant's fallback. Touched once per call end and once per action
//! request, never on the audio path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchboard_store::{ToolCallRecord, TranscriptEntry, Usage};

/// How long an ending is remembered: Twilio requests the action within a second or two
/// of the stream closing.
const KEEP: Duration = Duration::from_secs(120);
/// Bound on remembered endings (a flood of streams cannot grow the table without limit).
const MAX_ENTRIES: usize = 100_000;

/// Every way an agent leg of a call ends: recorded on the call (`outcome`) and the label
/// of `switchboard_calls_total`. One enum in one place: a new way to end is a variant
/// here, with its stored value and whether the caller already heard why. The stored
/// values are stable (records and dashboards keep them): never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The caller hung up (Twilio `stop`, or its socket closed).
    CallerHangup,
    /// The agent ended the call (`end_call`) after its goodbye was heard (or the goodbye
    /// wait ran out).
    AgentHangup,
    /// The agent handed the caller to a person (`transfer_call`): the call left the
    /// stream for `<Dial>`. Whether the person answered is the transfer record's.
    Transferred,
    /// The caller said nothing for `silenceTimeoutSeconds` (or past the idle re-prompts):
    /// goodbye, then hang-up.
    SilenceTimeout,
    /// `maxCallDurationSeconds` was reached: goodbye, then hang-up.
    MaxDuration,
    /// The first Realtime session could not be opened: the fallback played.
    OpenAiConnectFailed,
    /// A lost Realtime session could not be replaced within the reconnect attempts: the
    /// fallback played.
    ModelUnavailable,
    /// Twilio stopped reading the media stream (a write did not complete in time).
    TwilioWriteTimeout,
    /// The gateway's drain deadline passed with the call still running: the fallback
    /// played (another replica is not reachable from a stream).
    DrainDeadline,
    /// The gateway itself failed (the call task ended without an outcome).
    GatewayError,
}

impl Outcome {
    /// Every variant, for tests and dashboards.
    pub const ALL: &'static [Outcome] = &[
        Outcome::CallerHangup,
        Outcome::AgentHangup,
        Outcome::Transferred,
        Outcome::SilenceTimeout,
        Outcome::MaxDuration,
        Outcome::OpenAiConnectFailed,
        Outcome::ModelUnavailable,
        Outcome::TwilioWriteTimeout,
        Outcome::DrainDeadline,
        Outcome::GatewayError,
    ];

    /// The recorded value and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::CallerHangup => "caller_hangup",
            Outcome::AgentHangup => "agent_hangup",
            Outcome::Transferred => "transferred",
            Outcome::SilenceTimeout => "silence_timeout",
            Outcome::MaxDuration => "max_duration",
            Outcome::OpenAiConnectFailed => "openai_connect_failed",
            Outcome::ModelUnavailable => "model_unavailable",
            Outcome::TwilioWriteTimeout => "twilio_write_timeout",
            Outcome::DrainDeadline => "drain_deadline",
            Outcome::GatewayError => "gateway_error",
        }
    }

    /// The outcome a stored value names (`None` for a value this build does not know).
    pub fn parse(s: &str) -> Option<Outcome> {
        Self::ALL.iter().copied().find(|o| o.as_str() == s)
    }

    /// Whether the call ends here on purpose, the caller having heard why (a goodbye):
    /// then `<Connect action>` answers `<Hangup/>`, anything else the fallback.
    pub fn on_purpose(self) -> bool {
        matches!(
            self,
            Outcome::CallerHangup
                | Outcome::AgentHangup
                | Outcome::MaxDuration
                | Outcome::SilenceTimeout
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What Twilio should do after a stream the gateway closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStream {
    /// The call ended on purpose: hang up without another word.
    Hangup,
    /// Anything else: the tenant's fallback (`spec.agent.fallback`).
    Fallback,
    /// Agent leg `.0` handed the call to transfer target `.1` but Twilio's REST API could
    /// not move it: the action answers the `<Dial>` instead.
    Transfer(u32, String),
}

/// How long a transferred leg is kept for its return: the longest ring timeout (600 s)
/// plus the hand-off and Twilio's action request.
const KEEP_LEG: Duration = Duration::from_secs(15 * 60);

/// An agent leg that ended in a transfer, kept until the `<Dial action>` says whether the
/// caller comes back (then the return leg starts from it: one record for the call).
#[derive(Debug, Clone)]
pub struct TransferredLeg {
    /// The transfer target.
    pub target: String,
    /// The agent leg that transferred (1 = the first).
    pub leg: u32,
    /// When the call's first leg started (the return leg's transcript times continue
    /// from it).
    pub call_started: Instant,
    /// The call's transcript so far.
    pub transcript: Vec<TranscriptEntry>,
    /// Its tool calls so far.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Its usage so far.
    pub usage: Usage,
    /// Its barge-ins so far.
    pub barge_ins: u32,
    /// Its reconnect causes so far.
    pub reconnects: Vec<String>,
    /// `DialCallStatus`, once the `<Dial action>` came.
    pub dial_status: Option<String>,
}

/// Recent call endings by CallSid.
#[derive(Debug, Default)]
pub struct Endings {
    inner: Mutex<HashMap<String, (Instant, AfterStream)>>,
    legs: Mutex<HashMap<String, (Instant, TransferredLeg)>>,
}

impl Endings {
    /// Records how `call_sid` ended (its record outcome).
    pub fn record(&self, call_sid: &str, outcome: Outcome) {
        let after = if outcome.on_purpose() {
            AfterStream::Hangup
        } else {
            AfterStream::Fallback
        };
        self.record_after(call_sid, after);
    }

    /// Records what the `<Connect action>` of `call_sid` should answer.
    pub fn record_after(&self, call_sid: &str, after: AfterStream) {
        let now = Instant::now();
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (at, _)| now.duration_since(*at) < KEEP);
            if map.len() >= MAX_ENTRIES {
                // Still full of fresh entries: forget them rather than grow; the cost is
                // an apology after a goodbye, never silence.
                map.clear();
            }
        }
        map.insert(call_sid.to_owned(), (now, after));
    }

    /// Keeps the leg of `call_sid` that just ended in a transfer.
    pub fn park_leg(&self, call_sid: &str, leg: TransferredLeg) {
        let now = Instant::now();
        let mut map = self.legs.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (at, _)| now.duration_since(*at) < KEEP_LEG);
        if map.len() >= MAX_ENTRIES {
            // Full of fresh legs (a flood): the return leg starts without history rather
            // than the table growing.
            return;
        }
        map.insert(call_sid.to_owned(), (now, leg));
    }

    /// Notes the `<Dial action>` status on a parked leg; returns its target when there is
    /// one.
    pub fn dial_ended(&self, call_sid: &str, dial_status: &str) -> Option<String> {
        let mut map = self.legs.lock().unwrap_or_else(|p| p.into_inner());
        let (_, leg) = map.get_mut(call_sid)?;
        leg.dial_status = Some(dial_status.to_owned());
        Some(leg.target.clone())
    }

    /// Takes the parked leg of `call_sid` (its return leg starts).
    pub fn take_leg(&self, call_sid: &str) -> Option<TransferredLeg> {
        let mut map = self.legs.lock().unwrap_or_else(|p| p.into_inner());
        match map.remove(call_sid) {
            Some((at, leg)) if at.elapsed() < KEEP_LEG => Some(leg),
            _ => None,
        }
    }

    /// What to answer the `<Connect action>` request of `call_sid` with (taken: Twilio
    /// requests it once).
    pub fn take(&self, call_sid: &str) -> AfterStream {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match map.remove(call_sid) {
            Some((at, after)) if at.elapsed() < KEEP => after,
            _ => AfterStream::Fallback,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_purpose_endings_hang_up_everything_else_falls_back() {
        let e = Endings::default();
        e.record("CA1", Outcome::AgentHangup);
        e.record("CA2", Outcome::ModelUnavailable);
        e.record("CA3", Outcome::DrainDeadline);
        e.record_after("CA4", AfterStream::Transfer(1, "sales".into()));
        assert_eq!(e.take("CA1"), AfterStream::Hangup);
        assert_eq!(e.take("CA1"), AfterStream::Fallback, "taken once");
        assert_eq!(e.take("CA2"), AfterStream::Fallback);
        assert_eq!(e.take("CA3"), AfterStream::Fallback);
        assert_eq!(e.take("CA4"), AfterStream::Transfer(1, "sales".into()));
        assert_eq!(e.take("CA_unknown"), AfterStream::Fallback);
    }

    #[test]
    fn outcome_labels_are_distinct_metric_labels() {
        let mut seen = std::collections::HashSet::new();
        for o in Outcome::ALL {
            let l = o.as_str();
            assert!(seen.insert(l), "{l} twice");
            assert_eq!(Outcome::parse(l), Some(*o));
            assert!(
                l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
        }
    }
}
