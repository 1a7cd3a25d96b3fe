//! How calls ended, kept briefly so `<Connect action>` can tell Twilio what comes next.
//!
//! When the gateway closes a media stream, Twilio requests the `<Connect action>` URL and
//! runs the TwiML it gets back. The call task records here, *before* it closes the
//! stream, whether it ended the call on purpose (the agent said goodbye, a limit was
//! reached): then the action answers `<Hangup/>`. Anything else (no entry: OpenAI never
//! answered, the pod that ran the call died, the action reached another pod; or a
//! failure outcome) gets the tenant's fallback. Touched once per call end and once per
//! action request, never on the audio path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an ending is remembered: Twilio requests the action within a second or two
/// of the stream closing.
const KEEP: Duration = Duration::from_secs(120);
/// Bound on remembered endings (a flood of streams cannot grow the table without limit).
const MAX_ENTRIES: usize = 100_000;

/// Outcomes after which the call simply ends: the caller already heard why.
const ON_PURPOSE: &[&str] = &[
    "agent_hangup",
    "caller_hangup",
    "max_duration",
    "silence_timeout",
];

/// What Twilio should do after a stream the gateway closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStream {
    /// The call ended on purpose: hang up without another word.
    Hangup,
    /// Anything else: the tenant's fallback (apology and hang-up today).
    Fallback,
}

/// Recent call endings by CallSid.
#[derive(Debug, Default)]
pub struct Endings {
    inner: Mutex<HashMap<String, (Instant, AfterStream)>>,
}

impl Endings {
    /// Records how `call_sid` ended (its record outcome).
    pub fn record(&self, call_sid: &str, outcome: &str) {
        let after = if ON_PURPOSE.contains(&outcome) {
            AfterStream::Hangup
        } else {
            AfterStream::Fallback
        };
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
        e.record("CA1", "agent_hangup");
        e.record("CA2", "openai_connect_failed");
        e.record("CA3", "drain_deadline");
        assert_eq!(e.take("CA1"), AfterStream::Hangup);
        assert_eq!(e.take("CA1"), AfterStream::Fallback, "taken once");
        assert_eq!(e.take("CA2"), AfterStream::Fallback);
        assert_eq!(e.take("CA3"), AfterStream::Fallback);
        assert_eq!(e.take("CA_unknown"), AfterStream::Fallback);
    }
}
