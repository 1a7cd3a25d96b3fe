//! What the caller does, one 20 ms slot at a time (sans-I/O).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::mulaw::{self, FRAME_BYTES, SILENCE};

/// How long a [`Step::BargeIn`] waits for the agent's turn to reach its point.
pub const BARGE_IN_WAIT_MS: u64 = 30_000;
/// Pitch seed of the simulated caller's voice (see [`mulaw::speech`]).
const CALLER_VOICE: u32 = 3;

/// One step of a caller script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Send silence.
    Silence {
        /// Duration.
        ms: u64,
    },
    /// Speak: send speech-like audio ([`mulaw::speech`]).
    Say {
        /// Duration.
        ms: u64,
    },
    /// Wait until an agent turn is open and has played at least `min_heard_ms`.
    WaitForAgent {
        /// Agent audio the caller must have heard in the current turn.
        min_heard_ms: u64,
        /// Give up (and hang up) after this long.
        timeout_ms: u64,
    },
    /// Wait until the agent has said something and its audio has then been quiet for
    /// `quiet_ms` (playout buffer empty).
    WaitAgentDone {
        /// Quiet needed after the agent's audio.
        quiet_ms: u64,
        /// Give up (and hang up) after this long.
        timeout_ms: u64,
    },
    /// Wait until the current agent turn has played `after_heard_ms`, then talk over it
    /// for `say_ms`.
    BargeIn {
        /// Agent audio heard before the caller interrupts.
        after_heard_ms: u64,
        /// Length of the interruption.
        say_ms: u64,
    },
    /// Press a key.
    Dtmf {
        /// `0`-`9`, `*` or `#`.
        digit: char,
    },
    /// Hang up: `stop`, then close the WebSocket.
    Hangup,
    /// Send this text frame verbatim (hostile tests).
    SendRaw {
        /// The frame.
        text: String,
    },
    /// Send a binary frame (hostile tests: Twilio never does).
    SendBinary {
        /// The frame.
        bytes: Vec<u8>,
    },
}

/// One question: hear the greeting out, speak for `say_ms`, hear the answer out, hang up
/// (the shortest call that has a caller turn and an agent answer in its record).
pub fn one_question(say_ms: u64) -> Vec<Step> {
    vec![
        Step::WaitAgentDone {
            quiet_ms: 400,
            timeout_ms: 20_000,
        },
        Step::Say { ms: say_ms },
        Step::WaitAgentDone {
            quiet_ms: 600,
            timeout_ms: 30_000,
        },
        Step::Hangup,
    ]
}

/// A plain conversation, in step with the Realtime simulator's default script (a caller
/// of Demo Dental): hear the greeting out, ask a question (~1.5 s of speech) and hear the
/// answer out; ask a second one, with `barge_in` by interrupting that answer after 800 ms;
/// with `dtmf`, press the key and hear the reaction out; say goodbye, hear the farewell
/// out and hang up.
pub fn default_script(barge_in: bool, dtmf: Option<char>) -> Vec<Step> {
    const TURN_START_MS: u64 = 15_000;
    const TURN_END_MS: u64 = 30_000;
    let hear_out = [
        Step::WaitForAgent {
            min_heard_ms: 100,
            timeout_ms: TURN_START_MS,
        },
        Step::WaitAgentDone {
            quiet_ms: 700,
            timeout_ms: TURN_END_MS,
        },
    ];
    let mut steps = hear_out.to_vec();
    steps.push(Step::Silence { ms: 300 });
    steps.push(Step::Say { ms: 1500 });
    if barge_in {
        steps.push(Step::BargeIn {
            after_heard_ms: 800,
            say_ms: 1200,
        });
    } else {
        steps.extend(hear_out.clone());
        steps.push(Step::Silence { ms: 300 });
        steps.push(Step::Say { ms: 1200 });
    }
    steps.extend(hear_out.clone());
    if let Some(digit) = dtmf {
        steps.push(Step::Dtmf { digit });
        steps.extend(hear_out.clone());
    }
    steps.push(Step::Silence { ms: 300 });
    steps.push(Step::Say { ms: 1000 });
    steps.extend(hear_out);
    steps.push(Step::Silence { ms: 300 });
    steps.push(Step::Hangup);
    steps
}

/// What the caller can observe when deciding what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ear {
    /// Audio heard in the open agent turn; `None` when no turn is open.
    pub turn_heard_ms: Option<u64>,
    /// Nothing is queued for playout.
    pub buffer_empty: bool,
    /// Time since agent audio last played.
    pub idle_ms: u64,
}

/// Side effects of a slot besides its audio frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// The caller starts an utterance (before this slot's frame).
    SpeechStart,
    /// The caller's utterance ended with this slot's frame.
    SpeechEnd,
    /// Send a `dtmf` message.
    Dtmf(char),
    /// Send a text frame as is.
    Raw(String),
    /// Send a binary frame.
    Binary(Vec<u8>),
    /// A wait step gave up; the call hangs up.
    Timeout(String),
}

/// The caller's output for one 20 ms slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The inbound audio frame for this slot (`None` once the caller hangs up).
    pub frame: Option<Vec<u8>>,
    /// In order, before the frame.
    pub actions: Vec<Action>,
    /// The caller hangs up after this slot.
    pub hangup: bool,
}

#[derive(Debug, Clone)]
enum Active {
    Silent { frames: u64 },
    Speaking { audio: Vec<u8>, pos: usize },
    Waiting { until: Until, deadline_ms: u64 },
}

#[derive(Debug, Clone, Copy)]
enum Until {
    Heard(u64),
    Done(u64),
    BargeIn { after_heard_ms: u64, say_ms: u64 },
}

/// Runs a [`Step`] list against the caller's [`Ear`].
#[derive(Debug, Clone)]
pub(crate) struct ScriptRunner {
    steps: VecDeque<Step>,
    active: Option<Active>,
    total: usize,
}

impl ScriptRunner {
    /// A runner for `steps`; running out of steps hangs up.
    pub fn new(steps: Vec<Step>) -> Self {
        Self {
            total: steps.len(),
            steps: steps.into(),
            active: None,
        }
    }

    /// Steps begun so far (the one running included).
    pub fn begun(&self) -> usize {
        self.total - self.steps.len()
    }

    /// Decides slot `now_ms` (ms since the stream started).
    pub fn next_slot(&mut self, now_ms: u64, ear: &Ear) -> Slot {
        let mut actions = Vec::new();
        loop {
            let active = match self.active.take() {
                Some(active) => active,
                None => match self.steps.pop_front() {
                    None | Some(Step::Hangup) => {
                        return Slot {
                            frame: None,
                            actions,
                            hangup: true,
                        };
                    }
                    Some(step) => match activate(step, now_ms, &mut actions) {
                        Some(active) => active,
                        None => continue,
                    },
                },
            };
            match active {
                Active::Silent { frames } => {
                    if frames > 1 {
                        self.active = Some(Active::Silent { frames: frames - 1 });
                    }
                    return frame(silence_frame(), actions);
                }
                Active::Speaking { audio, pos } => {
                    if pos == 0 {
                        actions.push(Action::SpeechStart);
                    }
                    let end = (pos + FRAME_BYTES).min(audio.len());
                    let mut out = audio[pos..end].to_vec();
                    out.resize(FRAME_BYTES, SILENCE);
                    if end < audio.len() {
                        self.active = Some(Active::Speaking { audio, pos: end });
                    } else {
                        actions.push(Action::SpeechEnd);
                    }
                    return frame(out, actions);
                }
                Active::Waiting { until, deadline_ms } => {
                    if let Some(next) = until.satisfied(ear) {
                        self.active = next;
                        continue;
                    }
                    if now_ms >= deadline_ms {
                        actions.push(Action::Timeout(until.describe(now_ms, ear)));
                        return Slot {
                            frame: None,
                            actions,
                            hangup: true,
                        };
                    }
                    self.active = Some(Active::Waiting { until, deadline_ms });
                    return frame(silence_frame(), actions);
                }
            }
        }
    }
}

fn frame(audio: Vec<u8>, actions: Vec<Action>) -> Slot {
    Slot {
        frame: Some(audio),
        actions,
        hangup: false,
    }
}

fn silence_frame() -> Vec<u8> {
    vec![SILENCE; FRAME_BYTES]
}

/// Slots needed for `ms` of audio (a partial frame still takes a slot).
fn frames_for(ms: u64) -> u64 {
    ms.div_ceil(20)
}

fn speaking(ms: u64) -> Option<Active> {
    let ms = usize::try_from(ms).unwrap_or(usize::MAX / mulaw::BYTES_PER_MS);
    (ms > 0).then(|| Active::Speaking {
        audio: mulaw::speech(ms, CALLER_VOICE),
        pos: 0,
    })
}

/// Starts `step`; instantaneous steps (raw injections) only push their action and return
/// `None`.
fn activate(step: Step, now_ms: u64, actions: &mut Vec<Action>) -> Option<Active> {
    let wait = |until, timeout_ms: u64| {
        Some(Active::Waiting {
            until,
            deadline_ms: now_ms.saturating_add(timeout_ms),
        })
    };
    match step {
        Step::Silence { ms } => {
            let frames = frames_for(ms);
            (frames > 0).then_some(Active::Silent { frames })
        }
        Step::Say { ms } => speaking(ms),
        Step::WaitForAgent {
            min_heard_ms,
            timeout_ms,
        } => wait(Until::Heard(min_heard_ms), timeout_ms),
        Step::WaitAgentDone {
            quiet_ms,
            timeout_ms,
        } => wait(Until::Done(quiet_ms), timeout_ms),
        Step::BargeIn {
            after_heard_ms,
            say_ms,
        } => wait(
            Until::BargeIn {
                after_heard_ms,
                say_ms,
            },
            BARGE_IN_WAIT_MS,
        ),
        Step::Dtmf { digit } => {
            // A keypress takes its slot: the caller's ear must catch up (the key ends a
            // quiet agent turn) before a following wait looks at it.
            actions.push(Action::Dtmf(digit));
            Some(Active::Silent { frames: 1 })
        }
        Step::SendRaw { text } => {
            actions.push(Action::Raw(text));
            None
        }
        Step::SendBinary { bytes } => {
            actions.push(Action::Binary(bytes));
            None
        }
        // Handled by the caller of `activate`, which has to stop the script.
        Step::Hangup => None,
    }
}

impl Until {
    /// `Some(next)` when the wait is over; `next` is what follows it within the step.
    fn satisfied(self, ear: &Ear) -> Option<Option<Active>> {
        match self {
            Until::Heard(min) => ear.turn_heard_ms.is_some_and(|h| h >= min).then_some(None),
            Until::Done(quiet) => {
                (ear.turn_heard_ms.is_some() && ear.buffer_empty && ear.idle_ms >= quiet)
                    .then_some(None)
            }
            Until::BargeIn {
                after_heard_ms,
                say_ms,
            } => ear
                .turn_heard_ms
                .is_some_and(|h| h >= after_heard_ms)
                .then(|| speaking(say_ms)),
        }
    }

    fn describe(self, now_ms: u64, ear: &Ear) -> String {
        let heard = ear.turn_heard_ms.map_or_else(
            || "no agent turn open".to_owned(),
            |h| format!("heard {h} ms"),
        );
        let what = match self {
            Until::Heard(min) => format!("wait_for_agent {min} ms"),
            Until::Done(quiet) => format!("wait_agent_done quiet {quiet} ms"),
            Until::BargeIn { after_heard_ms, .. } => format!("barge_in after {after_heard_ms} ms"),
        };
        format!("{what} timed out at {now_ms} ms ({heard})")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_default_conversation_asks_two_questions_and_says_goodbye() {
        let utterances = |steps: &[Step]| {
            steps
                .iter()
                .filter(|s| matches!(s, Step::Say { .. } | Step::BargeIn { .. }))
                .count()
        };
        let plain = default_script(false, None);
        let demo = default_script(true, Some('5'));
        assert_eq!(utterances(&plain), 3);
        assert_eq!(utterances(&demo), 3);
        assert!(demo.iter().any(|s| matches!(s, Step::BargeIn { .. })));
        assert!(demo.contains(&Step::Dtmf { digit: '5' }));
        assert_eq!(plain.last(), Some(&Step::Hangup));
        assert_eq!(demo.last(), Some(&Step::Hangup));
    }

    fn ear(turn: Option<u64>, buffer_empty: bool, idle_ms: u64) -> Ear {
        Ear {
            turn_heard_ms: turn,
            buffer_empty,
            idle_ms,
        }
    }

    #[test]
    fn silence_and_speech_take_whole_slots() {
        let mut r = ScriptRunner::new(vec![Step::Silence { ms: 30 }, Step::Say { ms: 50 }]);
        let quiet = Ear::default();
        for t in [0, 20] {
            let s = r.next_slot(t, &quiet);
            assert_eq!(s.frame, Some(vec![SILENCE; FRAME_BYTES]));
            assert!(s.actions.is_empty());
        }
        let s = r.next_slot(40, &quiet);
        assert_eq!(s.actions, [Action::SpeechStart]);
        assert!(mulaw::rms(s.frame.as_deref().unwrap()) > 1000.0);
        assert!(r.next_slot(60, &quiet).actions.is_empty());
        let last = r.next_slot(80, &quiet);
        assert_eq!(last.actions, [Action::SpeechEnd]);
        // 50 ms = 400 bytes: the third frame has 80 bytes of speech, then silence.
        assert_eq!(&last.frame.unwrap()[80..], &[SILENCE; 80]);
        assert!(r.next_slot(100, &quiet).hangup);
    }

    #[test]
    fn instant_steps_share_a_slot_keys_take_one_and_hangup_stops() {
        let mut r = ScriptRunner::new(vec![
            Step::Dtmf { digit: '5' },
            Step::SendRaw { text: "x".into() },
            Step::SendBinary { bytes: vec![1] },
            Step::Silence { ms: 20 },
            Step::Hangup,
            Step::Silence { ms: 20 },
        ]);
        let s = r.next_slot(0, &Ear::default());
        assert_eq!(s.actions, [Action::Dtmf('5')]);
        assert_eq!(s.frame, Some(silence_frame()));
        let s = r.next_slot(20, &Ear::default());
        assert_eq!(
            s.actions,
            [Action::Raw("x".into()), Action::Binary(vec![1])]
        );
        assert!(s.frame.is_some());
        let s = r.next_slot(40, &Ear::default());
        assert!(s.hangup);
        assert!(s.frame.is_none());
    }

    #[test]
    fn wait_for_agent_needs_an_open_turn_with_enough_audio() {
        let mut r = ScriptRunner::new(vec![
            Step::WaitForAgent {
                min_heard_ms: 500,
                timeout_ms: 1000,
            },
            Step::Dtmf { digit: '1' },
        ]);
        assert!(r.next_slot(0, &ear(None, true, 0)).actions.is_empty());
        assert!(
            r.next_slot(20, &ear(Some(480), false, 0))
                .actions
                .is_empty()
        );
        assert_eq!(
            r.next_slot(40, &ear(Some(500), false, 0)).actions,
            [Action::Dtmf('1')]
        );
    }

    #[test]
    fn wait_agent_done_needs_audio_then_quiet() {
        let mut r = ScriptRunner::new(vec![Step::WaitAgentDone {
            quiet_ms: 200,
            timeout_ms: 5000,
        }]);
        // Long quiet but no agent turn: keep waiting.
        assert!(!r.next_slot(0, &ear(None, true, 4000)).hangup);
        // Turn open, audio still queued.
        assert!(!r.next_slot(20, &ear(Some(100), false, 0)).hangup);
        assert!(!r.next_slot(40, &ear(Some(900), true, 180)).hangup);
        // Done; the script is over, so the caller hangs up.
        let s = r.next_slot(60, &ear(Some(900), true, 200));
        assert!(s.hangup);
        assert!(s.actions.is_empty());
    }

    #[test]
    fn timeouts_hang_up_and_say_why() {
        let mut r = ScriptRunner::new(vec![
            Step::WaitForAgent {
                min_heard_ms: 100,
                timeout_ms: 40,
            },
            Step::Say { ms: 1000 },
        ]);
        assert!(!r.next_slot(0, &Ear::default()).hangup);
        assert!(!r.next_slot(20, &Ear::default()).hangup);
        let s = r.next_slot(40, &Ear::default());
        assert!(s.hangup);
        assert!(matches!(&s.actions[..], [Action::Timeout(why)] if why.contains("wait_for_agent")));
    }

    #[test]
    fn barge_in_speaks_once_the_turn_reaches_its_point() {
        let mut r = ScriptRunner::new(vec![Step::BargeIn {
            after_heard_ms: 1000,
            say_ms: 40,
        }]);
        let s = r.next_slot(0, &ear(Some(980), false, 0));
        assert!(s.actions.is_empty());
        assert_eq!(s.frame, Some(silence_frame()));
        let s = r.next_slot(20, &ear(Some(1000), false, 0));
        assert_eq!(s.actions, [Action::SpeechStart]);
        assert_eq!(
            r.next_slot(40, &Ear::default()).actions,
            [Action::SpeechEnd]
        );
        assert!(r.next_slot(60, &Ear::default()).hangup);
    }

    #[test]
    fn steps_round_trip_through_json() {
        let steps = vec![
            Step::Say { ms: 1500 },
            Step::WaitAgentDone {
                quiet_ms: 600,
                timeout_ms: 10_000,
            },
            Step::Dtmf { digit: '#' },
            Step::Hangup,
        ];
        let json = serde_json::to_string(&steps).unwrap();
        assert!(json.contains(r#"{"step":"say","ms":1500}"#));
        let back: Vec<Step> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, steps);
    }
}
