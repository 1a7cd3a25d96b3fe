//! Agent turns as the caller perceives them (sans-I/O).
//!
//! A turn opens when agent audio starts playing while no turn is open. The caller
//! starting to speak ends it when the agent is silent at that moment; when the agent is
//! audible, the caller is talking over it (a barge-in) and the turn stays open until a
//! `clear` cuts it or the agent's queued audio runs out.

use serde::{Deserialize, Serialize};

use crate::mulaw::BYTES_PER_MS;

/// One agent turn as heard by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeardTurn {
    /// When the turn's first audio played, in ms since the stream started.
    pub start_ms: u64,
    /// Agent audio heard in this turn.
    pub heard_ms: u64,
    /// The turn ended because the gateway sent `clear`.
    pub cut_by_clear: bool,
    /// Audio heard when the `clear` arrived (`Some` exactly when `cut_by_clear`).
    pub heard_ms_at_clear: Option<u64>,
    /// Audio heard when the caller started talking over the agent, if they did.
    /// `heard_ms_at_clear - heard_ms_at_barge_in` is how long the agent kept talking.
    pub heard_ms_at_barge_in: Option<u64>,
}

#[derive(Debug, Clone)]
struct Open {
    start_ms: u64,
    heard_bytes: u64,
    barge_in_bytes: Option<u64>,
}

/// Tracks turns from playout ticks, caller speech and clears.
#[derive(Debug, Clone, Default)]
pub struct Turns {
    done: Vec<HeardTurn>,
    open: Option<Open>,
    caller_speaking: bool,
    /// When the open turn's audio stopped (nothing played, nothing queued), if it did.
    idle_since: Option<u64>,
    silences: Vec<u64>,
}

fn ms(bytes: u64) -> u64 {
    bytes / BYTES_PER_MS as u64
}

impl Turns {
    /// A tick at `now_ms` played `bytes` of agent audio and left `buffered` bytes queued.
    pub fn on_played(&mut self, now_ms: u64, bytes: usize, buffered: usize) {
        if bytes == 0 && buffered == 0 && self.open.is_some() {
            self.idle_since.get_or_insert(now_ms);
        } else if bytes > 0
            && let Some(since) = self.idle_since.take()
        {
            self.silences.push(now_ms.saturating_sub(since));
        }
        if bytes == 0 {
            let talked_over = self
                .open
                .as_ref()
                .is_some_and(|t| t.barge_in_bytes.is_some());
            if talked_over && buffered == 0 {
                self.close(false);
            }
            return;
        }
        let caller_speaking = self.caller_speaking;
        let turn = self.open.get_or_insert_with(|| Open {
            start_ms: now_ms,
            heard_bytes: 0,
            // Agent audio that starts while the caller speaks overlaps from its first byte.
            barge_in_bytes: caller_speaking.then_some(0),
        });
        turn.heard_bytes += bytes as u64;
    }

    /// The caller starts an utterance; `agent_audible` says whether agent audio is
    /// playing at that moment.
    pub fn on_caller_speech_start(&mut self, agent_audible: bool) {
        self.caller_speaking = true;
        match &mut self.open {
            Some(turn) if agent_audible => {
                turn.barge_in_bytes.get_or_insert(turn.heard_bytes);
            }
            Some(_) => self.close(false),
            None => {}
        }
    }

    /// The caller pressed a key: like an utterance, it ends an agent turn that has gone
    /// quiet, so the agent's reaction to the key counts as a turn of its own. A keypress
    /// over audible agent speech changes nothing.
    pub fn on_caller_key(&mut self, agent_audible: bool) {
        if !agent_audible {
            self.close(false);
        }
    }

    /// The caller's utterance ended.
    pub fn on_caller_speech_end(&mut self) {
        self.caller_speaking = false;
    }

    /// The gateway sent `clear`.
    pub fn on_clear(&mut self) {
        self.close(true);
    }

    fn close(&mut self, cut: bool) {
        self.idle_since = None;
        if let Some(t) = self.open.take() {
            let heard_ms = ms(t.heard_bytes);
            self.done.push(HeardTurn {
                start_ms: t.start_ms,
                heard_ms,
                cut_by_clear: cut,
                heard_ms_at_clear: cut.then_some(heard_ms),
                heard_ms_at_barge_in: t.barge_in_bytes.map(ms),
            });
        }
    }

    /// Audio heard in the open turn, `None` when no turn is open.
    pub fn current_heard_ms(&self) -> Option<u64> {
        self.open.as_ref().map(|t| ms(t.heard_bytes))
    }

    /// Silences inside agent turns so far, in ms: the agent's audio ran out (nothing
    /// played, nothing queued) and came back without the turn ending, e.g. while the
    /// gateway replaced a lost Realtime session. Tick resolution (20 ms).
    pub fn silences_ms(&self) -> &[u64] {
        &self.silences
    }

    /// All turns, the open one (if any) closed as it stands.
    pub fn finish(mut self) -> Vec<HeardTurn> {
        self.close(false);
        self.done
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn caller_speech_in_silence_ends_the_turn() {
        let mut t = Turns::default();
        t.on_played(0, 0, 0);
        assert_eq!(t.current_heard_ms(), None);
        for i in 0..10 {
            t.on_played(100 + i * 20, 160, 0);
        }
        // A gap in the agent's audio does not end its turn.
        t.on_played(300, 0, 0);
        assert_eq!(t.current_heard_ms(), Some(200));
        t.on_caller_speech_start(false);
        assert_eq!(t.current_heard_ms(), None);
        t.on_caller_speech_end();
        t.on_played(2000, 80, 0);
        let turns = t.finish();
        assert_eq!(turns.len(), 2);
        assert_eq!(
            turns[0],
            HeardTurn {
                start_ms: 100,
                heard_ms: 200,
                cut_by_clear: false,
                heard_ms_at_clear: None,
                heard_ms_at_barge_in: None
            }
        );
        assert_eq!(turns[1].start_ms, 2000);
        assert_eq!(turns[1].heard_ms, 10);
    }

    #[test]
    fn silences_inside_a_turn_are_measured() {
        let mut t = Turns::default();
        t.on_played(0, 0, 0); // no turn yet: not a silence
        t.on_played(20, 160, 0);
        t.on_played(40, 0, 0);
        t.on_played(60, 0, 0);
        t.on_played(100, 160, 0);
        assert_eq!(t.silences_ms(), [60]);
        // Audio still queued is not a silence; a silence the caller's speech ends is not
        // one inside a turn.
        t.on_played(120, 0, 160);
        t.on_played(140, 0, 0);
        t.on_caller_speech_start(false);
        t.on_caller_speech_end();
        t.on_played(400, 160, 0);
        assert_eq!(t.silences_ms(), [60]);
    }

    #[test]
    fn barge_in_then_clear_records_both_points() {
        let mut t = Turns::default();
        for i in 0..50 {
            t.on_played(i * 20, 160, 1000);
        }
        t.on_caller_speech_start(true);
        for i in 50..60 {
            t.on_played(i * 20, 160, 1000);
        }
        t.on_clear();
        // A clear with no turn open changes nothing.
        t.on_clear();
        let turns = t.finish();
        assert_eq!(
            turns,
            [HeardTurn {
                start_ms: 0,
                heard_ms: 1200,
                cut_by_clear: true,
                heard_ms_at_clear: Some(1200),
                heard_ms_at_barge_in: Some(1000)
            }]
        );
    }

    #[test]
    fn talked_over_turn_that_is_never_cleared_ends_when_audio_runs_out() {
        let mut t = Turns::default();
        t.on_played(0, 160, 160);
        t.on_caller_speech_start(true);
        t.on_played(20, 160, 0);
        t.on_played(40, 0, 0);
        assert_eq!(t.current_heard_ms(), None);
        let turns = t.finish();
        assert!(!turns[0].cut_by_clear);
        assert_eq!(turns[0].heard_ms, 40);
        assert_eq!(turns[0].heard_ms_at_barge_in, Some(20));
    }

    #[test]
    fn keypress_ends_a_quiet_turn_only() {
        let mut t = Turns::default();
        t.on_played(0, 160, 160);
        t.on_caller_key(true);
        assert_eq!(t.current_heard_ms(), Some(20));
        t.on_played(20, 160, 0);
        t.on_played(40, 0, 0);
        t.on_caller_key(false);
        assert_eq!(t.current_heard_ms(), None);
        t.on_played(60, 160, 0);
        let turns = t.finish();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].heard_ms, 40);
        assert_eq!(turns[0].heard_ms_at_barge_in, None);
    }

    #[test]
    fn agent_starting_over_the_caller_overlaps_from_zero() {
        let mut t = Turns::default();
        t.on_caller_speech_start(false);
        t.on_played(0, 160, 0);
        let turns = t.finish();
        assert_eq!(turns[0].heard_ms_at_barge_in, Some(0));
    }
}
