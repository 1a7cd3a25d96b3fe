//! The call state machine: events in, actions out, no I/O.
//!
//! [`CallSession::handle`] takes one [`Input`] (a Twilio message, a Realtime event, a
//! timer tick) with the current time and appends [`Action`]s (frames to send, metrics to
//! record, the end of the call). The task in [`super::task`] only moves bytes, so every
//! decision here is unit-tested without sockets.

use std::collections::{HashMap, VecDeque};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::history::{self, Turn};
use super::playback::{MarkEcho, Playback};
use crate::endings::Outcome;
use crate::realtime::wire::{self, ResponseUsage, ServerEvent};
use crate::recording::Recorded;
use crate::tenants::SessionSettings;
use crate::tools::{end_call, transfer_call};
use crate::twilio::media;
use switchboard_store::{Role, ToolCallRecord, TranscriptEntry, Usage};

/// Largest gap in caller audio filled with silence (longer gaps are not real-time audio).
const MAX_GAP_PAD_MS: u64 = 10_000;
/// Caller audio accepted ahead of the wall clock (the call's age), ms: network jitter, and
/// the backlog Twilio builds up while the Realtime session opens. Beyond it a stream is
/// sending faster than real time (a hostile peer), and frames are dropped, not billed.
const MEDIA_AHEAD_MS: u64 = 5_000;
/// While the caller speaks and no audio arrives this long, the model's VAD could wait
/// forever for the end of speech: feed it silence.
const STALL_MS: u64 = 750;
/// Silence appended on a stall.
const STALL_PAD_MS: u64 = 1_000;
/// Connection attempts after a lost Realtime session before the call gives up and the
/// fallback plays (`model_unavailable`).
pub const RECONNECT_ATTEMPTS: u32 = 4;
/// Wait before attempt 2, 3, 4 (attempt 1 is immediate: the caller is waiting).
const RECONNECT_BACKOFF_MS: [u64; 3] = [250, 750, 2_000];
/// Caller audio kept while no session is connected (newest first out): 2 s, replayed
/// into the new session so words spoken during the reconnect are not lost.
const GAP_AUDIO_FRAMES: usize = 100;
/// A session is rotated at a quiet moment within this long of its expiry (or within the
/// last third of its lifetime, when that is shorter).
const ROTATE_LEAD_MAX_MS: u64 = 300_000;
/// What the new session is told after a drop in the middle of the agent's answer.
pub const RESUME_NOTE: &str = "[The connection dropped for a moment while you were speaking. \
The caller heard your last message up to where it stops. Continue from exactly there, \
without repeating what was already said.]";
/// What the new session is told after a drop while nobody was speaking.
pub const RECONNECT_NOTE: &str = "[The connection was interrupted for a moment. Carry on \
the conversation; do not mention it unless the caller does.]";

/// One event for the session.
#[derive(Debug, Clone)]
pub enum Input {
    /// Twilio `media` (validated payload).
    Media {
        /// `media.timestamp`.
        timestamp_ms: u64,
        /// Base64 µ-law.
        payload: String,
        /// Decoded length.
        bytes: usize,
    },
    /// Twilio `mark` echo.
    Mark(String),
    /// Twilio `dtmf`.
    Dtmf(char),
    /// Twilio `stop`.
    Stop,
    /// Twilio's WebSocket closed without `stop`.
    TwilioClosed,
    /// A write to Twilio's WebSocket did not complete in time (`detail` says which bound):
    /// the peer stopped reading, the call cannot go on.
    TwilioStalled(String),
    /// A Realtime server event.
    Realtime(ServerEvent),
    /// The current Realtime WebSocket closed or failed.
    RealtimeClosed {
        /// The close frame's code (`1001`: the session limit, or a server going away);
        /// `None` when the socket dropped without one.
        code: Option<u16>,
    },
    /// A Realtime session asked for with [`Action::ConnectRealtime`] is open (its
    /// `session.update` sent); the task holds it until [`Action::SwitchRealtime`].
    RealtimeConnected,
    /// The connection asked for with [`Action::ConnectRealtime`] failed.
    RealtimeConnectFailed(String),
    /// Periodic timer.
    Tick,
    /// The gateway's drain deadline passed.
    DrainDeadline,
    /// An external tool finished.
    ToolResult {
        /// The model's call id.
        call_id: String,
        /// Output for the model (JSON text).
        output: String,
    },
}

/// Something the session observed, for metrics and logs.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The caller interrupted the agent.
    BargeIn,
    /// Caller stopped speaking → first agent audio, ms.
    ResponseLatency(u64),
    /// An `error` event from the Realtime API, by code.
    OpenAiError(String),
    /// Silence inserted for a gap in caller audio, ms.
    PaddedSilence(u64),
    /// A delta of a cancelled response that was not forwarded.
    LateDeltaDropped,
    /// Something a peer sent that was not acceptable, by kind.
    Protocol(&'static str),
    /// The Realtime session serving the call was lost, and why (see [`cause`]).
    OpenAiLost(ReconnectCause),
    /// The call moved to a new Realtime session, and why (see [`ReconnectCause`]).
    Reconnected {
        /// Why.
        cause: &'static str,
        /// How long no session was connected, ms (0 for a rotation).
        gap_ms: u64,
    },
}

/// What the session wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a text frame to Twilio.
    Twilio(String),
    /// Send a text frame to the Realtime API.
    Realtime(String),
    /// Record an observation.
    Observe(Observation),
    /// Run an external tool; answer with [`Input::ToolResult`] for the same `call_id`.
    RunTool {
        /// The model's call id.
        call_id: String,
        /// Tool name.
        name: String,
        /// Arguments (JSON text, as the model sent them).
        arguments: String,
    },
    /// Open a new Realtime session with the tenant's configuration, without blocking the
    /// call; answer with [`Input::RealtimeConnected`] or [`Input::RealtimeConnectFailed`].
    ConnectRealtime,
    /// Stop reading the current Realtime socket and close it (its session is given up).
    DropRealtime,
    /// Close the current Realtime socket (if still open) and use the one just connected:
    /// every [`Action::Realtime`] after this goes to the new session.
    SwitchRealtime,
    /// Move the call to this transfer target: the agent's hand-off sentence has been
    /// heard (or its wait timed out). It comes right after the [`Action::End`] with
    /// outcome `transferred`, never before: the task keeps that leg's record for the
    /// return leg (`Endings::park_leg`) before it moves the call, because once moved, a
    /// transfer nobody answers can bring the caller back on a new stream (whose task
    /// takes the parked leg) before this task has finished.
    Transfer {
        /// The target's name (`spec.agent.transfer[].name`).
        target: String,
    },
    /// The call is over: close both sockets and keep the record.
    End(CallSummary),
    /// For the call's recording (only when the tenant records calls).
    Record(Recorded),
}

/// Why the call moved to a new Realtime session (the record's `reconnects` entries and
/// the `switchboard_openai_reconnects_total` label).
pub mod cause {
    /// The socket dropped without a close frame.
    pub const DROPPED: &str = "dropped";
    /// The server closed the socket (not for the session limit).
    pub const CLOSED: &str = "closed";
    /// An `error` event, then the close.
    pub const ERROR: &str = "error";
    /// The 60-minute limit: close code 1001, or the older `session_expired` error.
    pub const SESSION_LIMIT: &str = "session_limit";
    /// The gateway rotated the session at a quiet moment before the limit.
    pub const ROTATION: &str = "rotation";
}

/// The names of [`cause`]'s values (one type for signatures).
pub type ReconnectCause = &'static str;

/// What a return leg (the caller back with the agent after a transfer nobody answered)
/// carries from the legs before it, so the record stays one call and the new Realtime
/// session knows the conversation.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// The earlier legs' conversation, replayed into every session of this leg (the
    /// first, and any after a reconnect) before this leg's own turns.
    pub earlier: Vec<Turn>,
    /// What the first session is told after the history (the transfer failed); it then
    /// speaks first instead of greeting.
    pub note: String,
    /// The earlier legs' transcript.
    pub transcript: Vec<TranscriptEntry>,
    /// The earlier legs' tool calls.
    pub tool_calls: Vec<ToolCallRecord>,
    /// The earlier legs' usage.
    pub usage: Usage,
    /// The earlier legs' barge-ins.
    pub barge_ins: u32,
    /// The earlier legs' reconnect causes.
    pub reconnects: Vec<String>,
    /// Where this leg starts on the call's clock (ms after the first leg started): this
    /// leg's transcript times are shifted by it.
    pub offset_ms: u64,
}

/// Everything a finished call leaves behind.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSummary {
    /// How the leg ended (stored as [`switchboard_store::CallEnd::outcome`]).
    pub outcome: Outcome,
    /// Detail (e.g. an OpenAI error code).
    pub detail: Option<String>,
    /// Transcript in order.
    pub transcript: Vec<TranscriptEntry>,
    /// Summed usage.
    pub usage: Usage,
    /// Tool calls.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Barge-ins.
    pub barge_ins: u32,
    /// Why each move to a new Realtime session happened, in order (see [`cause`]).
    pub reconnects: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Greeting {
    None,
    NotSent,
    Requested,
    Playing(String),
    Done,
}

#[derive(Debug)]
struct PendingTool {
    call_id: String,
    name: String,
    arguments: String,
    started_ms: u64,
}

/// Where the call's model connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// One session serves the call.
    Up,
    /// A new session is being connected. `lost_at`: when the previous one was lost;
    /// `None` while it still serves the call (a rotation).
    Connecting {
        cause: ReconnectCause,
        attempt: u32,
        lost_at: Option<u64>,
    },
    /// The last attempt failed; the next starts at `retry_at`.
    Waiting {
        cause: ReconnectCause,
        attempt: u32,
        retry_at: u64,
        lost_at: u64,
    },
    /// A rotation's new session is open and waits for a quiet moment to take over.
    Ready { cause: ReconnectCause },
}

/// A transfer the agent asked for, waiting for its hand-off sentence to be heard.
#[derive(Debug)]
struct PendingTransfer {
    target: String,
    asked_ms: u64,
    /// A response started after the tool output (the hand-off sentence).
    handoff_started: bool,
}

#[derive(Debug)]
struct CallerTurn {
    /// Call-relative ms (orders the history across sessions).
    at: u64,
    start_ms: u64,
    end_ms: Option<u64>,
    text: String,
}

#[derive(Debug)]
struct AgentTurn {
    item_id: String,
    start_ms: u64,
    sent_ms: u64,
    text: String,
    final_text: bool,
    heard_ms: Option<u64>,
    interrupted: bool,
}

/// The state of one call from Twilio's `start` to its end.
#[derive(Debug)]
pub struct CallSession {
    settings: SessionSettings,
    stream_sid: String,
    start_ms: u64,
    session_ready: bool,
    greeting: Greeting,
    active_response: Option<String>,
    response_requested: bool,
    response_wanted: bool,
    playback: Playback,
    next_media_ts: Option<u64>,
    last_media_at: u64,
    /// Caller audio accepted so far, ms (the over-rate bound).
    media_in_ms: u64,
    speech_active: bool,
    stall_padded: bool,
    speech_stopped_at: Option<u64>,
    last_activity: u64,
    caller: HashMap<String, CallerTurn>,
    agent: Vec<AgentTurn>,
    usage: Usage,
    tool_calls: Vec<ToolCallRecord>,
    barge_ins: u32,
    hangup_requested: bool,
    /// When `end_call` was answered (the goodbye must be heard within the hand-off
    /// timeout).
    hangup_asked_ms: Option<u64>,
    transfer: Option<PendingTransfer>,
    /// A return leg's carried record (see [`CallSession::resume`]).
    return_leg: Option<Resume>,
    pending_tools: Vec<PendingTool>,
    last_error: Option<String>,
    ended: bool,
    link: Link,
    /// Caller audio goes to a session (false while reconnecting: it is kept in
    /// `gap_audio` instead). A plain bool: checked for every caller frame.
    audio_to_model: bool,
    gap_audio: VecDeque<String>,
    /// The lost session was answering: the new one continues the answer.
    resume: bool,
    /// Unix ms at `now_ms == 0`, to place `session.created.expires_at` on the call clock.
    unix_origin_ms: Option<u64>,
    /// When to rotate the session (at the first quiet moment after this).
    rotate_at: Option<u64>,
    reconnects: Vec<String>,
    /// Call-relative ms at which the current session's input buffer started.
    audio_origin_ms: u64,
    /// Call-relative ms of each entry of `tool_calls`.
    tool_at: Vec<u64>,
    last_caller_activity: u64,
    idle_prompts: u32,
    /// Cancel the next response the server starts by itself (an idle re-prompt past the
    /// declared number: the goodbye replaces it).
    cancel_next_response: bool,
    wrap_up_sent: bool,
    /// The call is ending on purpose (`max_duration`, `silence_timeout`): goodbye, then
    /// hang up; hard end after the grace.
    closing: Option<(Outcome, u64)>,
    goodbye_pending: bool,
    hangup_outcome: Outcome,
}

impl CallSession {
    /// A session for the stream `stream_sid` that started at `now_ms`.
    pub fn new(settings: SessionSettings, stream_sid: String, now_ms: u64) -> Self {
        let greeting = if settings.greeting.is_some() {
            Greeting::NotSent
        } else {
            Greeting::None
        };
        Self {
            settings,
            stream_sid,
            start_ms: now_ms,
            session_ready: false,
            greeting,
            active_response: None,
            response_requested: false,
            response_wanted: false,
            playback: Playback::default(),
            next_media_ts: None,
            last_media_at: now_ms,
            media_in_ms: 0,
            speech_active: false,
            stall_padded: false,
            speech_stopped_at: None,
            last_activity: now_ms,
            caller: HashMap::new(),
            agent: Vec::new(),
            usage: Usage::default(),
            tool_calls: Vec::new(),
            barge_ins: 0,
            hangup_requested: false,
            hangup_asked_ms: None,
            transfer: None,
            return_leg: None,
            pending_tools: Vec::new(),
            last_error: None,
            ended: false,
            link: Link::Up,
            audio_to_model: true,
            gap_audio: VecDeque::new(),
            resume: false,
            unix_origin_ms: None,
            rotate_at: None,
            reconnects: Vec::new(),
            audio_origin_ms: 0,
            tool_at: Vec::new(),
            last_caller_activity: now_ms,
            idle_prompts: 0,
            cancel_next_response: false,
            wrap_up_sent: false,
            closing: None,
            goodbye_pending: false,
            hangup_outcome: Outcome::AgentHangup,
        }
    }

    /// Tells the session the Unix time (ms) at which its clock (`now_ms`) was 0, so a
    /// session's `expires_at` can be placed on the call's clock and the session rotated
    /// before it. Without it the gateway only reconnects after the server ends a session.
    pub fn set_unix_origin(&mut self, unix_ms_at_zero: u64) {
        self.unix_origin_ms = Some(unix_ms_at_zero);
    }

    /// A return leg: starts with the earlier conversation and `resume.note` instead of
    /// the greeting (the agent speaks first), and its record includes the earlier legs.
    pub fn resume(
        settings: SessionSettings,
        stream_sid: String,
        now_ms: u64,
        resume: Resume,
    ) -> Self {
        let mut s = Self::new(settings, stream_sid, now_ms);
        s.greeting = Greeting::None;
        s.return_leg = Some(resume);
        s
    }

    /// Whether the call has ended (no further input has any effect).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Handles one input at time `now_ms`, appending actions to `out`.
    pub fn handle(&mut self, now_ms: u64, input: Input, out: &mut Vec<Action>) {
        if self.ended {
            return;
        }
        match input {
            Input::Media {
                timestamp_ms,
                payload,
                bytes,
            } => self.on_media(now_ms, timestamp_ms, &payload, bytes, out),
            Input::Mark(name) => self.on_mark(&name, out),
            Input::Dtmf(digit) => {
                self.last_activity = now_ms;
                self.last_caller_activity = now_ms;
                if !self.audio_to_model {
                    // No session to tell; the key press is lost like audio beyond the
                    // gap buffer (rare: a key during a reconnect).
                    return;
                }
                out.push(Action::Realtime(wire::user_text(&format!(
                    "[The caller pressed the key \"{digit}\" on their phone keypad.]"
                ))));
                self.request_response(out);
            }
            Input::Stop | Input::TwilioClosed => self.end(Outcome::CallerHangup, None, out),
            Input::TwilioStalled(detail) => {
                self.end(Outcome::TwilioWriteTimeout, Some(detail), out)
            }
            Input::RealtimeClosed { code } => self.on_realtime_closed(now_ms, code, out),
            Input::RealtimeConnected => self.on_connected(now_ms, out),
            Input::RealtimeConnectFailed(error) => self.on_connect_failed(now_ms, error, out),
            Input::Realtime(ev) => {
                // Events still queued from a session already given up are stale.
                if matches!(
                    self.link,
                    Link::Connecting {
                        lost_at: Some(_),
                        ..
                    } | Link::Waiting { .. }
                ) {
                    return;
                }
                self.on_realtime(now_ms, ev, out)
            }
            Input::Tick => self.on_tick(now_ms, out),
            Input::DrainDeadline => self.end(Outcome::DrainDeadline, None, out),
            Input::ToolResult { call_id, output } => {
                self.on_tool_result(now_ms, call_id, output, out)
            }
        }
    }

    fn rel(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.start_ms)
    }

    fn on_media(
        &mut self,
        now_ms: u64,
        ts: u64,
        payload: &str,
        bytes: usize,
        out: &mut Vec<Action>,
    ) {
        let frame_ms = bytes as u64 / 8;
        if self.media_in_ms.saturating_add(frame_ms)
            > self.rel(now_ms).saturating_add(MEDIA_AHEAD_MS)
        {
            out.push(Action::Observe(Observation::Protocol("media_over_rate")));
            return;
        }
        self.media_in_ms = self.media_in_ms.saturating_add(frame_ms);
        if !self.audio_to_model {
            self.buffer_gap_audio(ts, payload, bytes);
            return;
        }
        if let Some(expected) = self.next_media_ts
            && ts > expected
        {
            // The peer's timestamps alone must not decide how much silence the model gets:
            // never more than the time that really passed since the previous frame (less a
            // stall pad already sent for it), so a peer jumping `timestamp` cannot make
            // the gateway send more audio than real time allows.
            let elapsed = now_ms.saturating_sub(self.last_media_at);
            let real = if self.stall_padded {
                elapsed.saturating_sub(STALL_PAD_MS)
            } else {
                elapsed
            };
            let gap = (ts - expected).min(MAX_GAP_PAD_MS).min(real);
            if gap > 0 {
                out.push(Action::Realtime(wire::append_audio(&silence_b64(gap))));
                out.push(Action::Observe(Observation::PaddedSilence(gap)));
            }
        }
        // `timestamp` is the peer's number: saturate, a value near u64::MAX must not
        // overflow (a panic in debug, a wrapped clock and bogus padding in release).
        let frame_end = ts.saturating_add(frame_ms);
        self.next_media_ts = Some(self.next_media_ts.map_or(frame_end, |e| e.max(frame_end)));
        self.last_media_at = now_ms;
        self.stall_padded = false;
        out.push(Action::Realtime(wire::append_audio(payload)));
    }

    fn on_mark(&mut self, name: &str, out: &mut Vec<Action>) {
        match self.playback.on_mark(name) {
            MarkEcho::Played { item_id, seq } => {
                if self.settings.record {
                    out.push(Action::Record(Recorded::Played { seq }));
                }
                if let Some(ms) = self.playback.played_ms(&item_id)
                    && let Some(t) = self.agent.iter_mut().rfind(|t| *t.item_id == *item_id)
                {
                    t.heard_ms = Some(ms);
                }
            }
            MarkEcho::ItemFinished { item_id } => {
                if let Some(t) = self.agent.iter_mut().rfind(|t| *t.item_id == *item_id) {
                    t.heard_ms = Some(t.sent_ms);
                }
                self.after_playback_progress(out);
            }
            MarkEcho::Cleared => {}
            MarkEcho::Unknown => out.push(Action::Observe(Observation::Protocol("unknown_mark"))),
        }
    }

    /// Greeting finished? Agent asked to hang up and has finished speaking?
    fn after_playback_progress(&mut self, out: &mut Vec<Action>) {
        if let Greeting::Playing(id) = &self.greeting
            && self.active_response.as_deref() != Some(id.as_str())
            && !self.playback.playing_responses().contains(id)
        {
            self.greeting = Greeting::Done;
            if !self.settings.greeting_interruptible {
                out.push(Action::Realtime(self.settings.interruptible_update.clone()));
            }
        }
        let quiet = self.active_response.is_none()
            && !self.response_requested
            && !self.playback.is_playing();
        if self.hangup_requested && quiet && !self.goodbye_pending {
            self.end(self.hangup_outcome, None, out);
        }
        if quiet && self.transfer.as_ref().is_some_and(|t| t.handoff_started) {
            self.move_to_transfer(out);
        }
    }

    /// The hand-off was heard (or its wait is over): the task moves the call.
    fn move_to_transfer(&mut self, out: &mut Vec<Action>) {
        if let Some(t) = self.transfer.take() {
            // The record first: the task parks it before it moves the call (see
            // `Action::Transfer`).
            self.end(Outcome::Transferred, Some(t.target.clone()), out);
            out.push(Action::Transfer { target: t.target });
        }
    }

    fn request_response(&mut self, out: &mut Vec<Action>) {
        if self.active_response.is_some() || self.response_requested {
            self.response_wanted = true;
        } else {
            self.response_requested = true;
            out.push(Action::Realtime(wire::response_create()));
        }
    }

    fn maybe_greet(&mut self, out: &mut Vec<Action>) {
        if self.session_ready
            && self.greeting == Greeting::NotSent
            && let Some(text) = &self.settings.greeting
        {
            out.push(Action::Realtime(wire::response_say_exactly(text)));
            self.greeting = Greeting::Requested;
            self.response_requested = true;
        }
    }

    fn greeting_protected(&self) -> bool {
        !self.settings.greeting_interruptible
            && matches!(self.greeting, Greeting::Requested | Greeting::Playing(_))
    }

    fn on_realtime(&mut self, now_ms: u64, ev: ServerEvent, out: &mut Vec<Action>) {
        match ev {
            ServerEvent::SessionCreated { expires_at } => {
                self.schedule_rotation(now_ms, expires_at);
            }
            ServerEvent::SessionUpdated => {
                let was_ready = self.session_ready;
                self.session_ready = true;
                if !was_ready
                    && let Some(r) = self.return_leg.as_mut()
                    && !r.note.is_empty()
                {
                    // A return leg's first session: the conversation so far and what
                    // happened, then the model speaks (an apology) instead of a greeting.
                    let note = std::mem::take(&mut r.note);
                    for ev in history::seed_events(&r.earlier, Some(&note)) {
                        out.push(Action::Realtime(ev));
                    }
                    self.request_response(out);
                }
                self.maybe_greet(out);
                if !was_ready && std::mem::take(&mut self.resume) {
                    self.request_response(out);
                }
                self.try_goodbye(out);
            }
            ServerEvent::IdleTimeout => {
                self.idle_prompts += 1;
                if self.idle_prompts > self.settings.idle_reprompts {
                    // The server starts a re-prompt itself; the goodbye replaces it, once
                    // that response is cancelled (one response at a time).
                    self.cancel_next_response = true;
                    self.response_requested = true;
                    self.begin_closing(now_ms, Outcome::SilenceTimeout, out);
                }
            }
            ServerEvent::SpeechStarted {
                audio_start_ms,
                item_id,
            } => {
                self.speech_active = true;
                self.last_activity = now_ms;
                self.last_caller_activity = now_ms;
                self.idle_prompts = 0;
                let at = self.rel(now_ms);
                self.caller.insert(
                    item_id,
                    CallerTurn {
                        at,
                        start_ms: self.audio_origin_ms + audio_start_ms,
                        end_ms: None,
                        text: String::new(),
                    },
                );
                if !self.greeting_protected()
                    && (self.playback.is_playing() || self.active_response.is_some())
                {
                    self.barge_in(out);
                }
            }
            ServerEvent::SpeechStopped {
                audio_end_ms,
                item_id,
            } => {
                self.speech_active = false;
                self.last_activity = now_ms;
                self.last_caller_activity = now_ms;
                self.speech_stopped_at = Some(now_ms);
                let origin = self.audio_origin_ms;
                if let Some(t) = self.caller.get_mut(&item_id) {
                    t.end_ms = Some(origin + audio_end_ms);
                }
            }
            ServerEvent::InputTranscript {
                item_id,
                transcript,
            } => {
                let at = self.rel(now_ms);
                let t = self.caller.entry(item_id).or_insert(CallerTurn {
                    at,
                    start_ms: 0,
                    end_ms: None,
                    text: String::new(),
                });
                t.text = transcript;
            }
            ServerEvent::ResponseCreated { response_id } => {
                if std::mem::take(&mut self.cancel_next_response) {
                    self.playback.discard(&response_id);
                    out.push(Action::Realtime(wire::response_cancel()));
                }
                self.response_requested = false;
                if let Some(t) = self.transfer.as_mut() {
                    t.handoff_started = true;
                }
                if self.greeting == Greeting::Requested {
                    self.greeting = Greeting::Playing(response_id.clone());
                }
                self.active_response = Some(response_id);
            }
            ServerEvent::AudioDelta {
                response_id,
                item_id,
                content_index,
                delta,
            } => {
                self.on_delta(now_ms, &response_id, &item_id, content_index, &delta, out);
            }
            ServerEvent::AudioDone {
                response_id,
                item_id,
            } => {
                if !self.playback.is_discarded(&response_id)
                    && let Some(name) = self.playback.on_audio_done(&item_id)
                {
                    out.push(Action::Twilio(media::mark_message(&self.stream_sid, &name)));
                }
            }
            ServerEvent::AudioTranscriptDelta { item_id, delta } => {
                let t = self.agent_turn(now_ms, &item_id);
                if !t.final_text {
                    t.text.push_str(&delta);
                }
            }
            ServerEvent::AudioTranscriptDone {
                item_id,
                transcript,
            } => {
                let t = self.agent_turn(now_ms, &item_id);
                t.text = transcript;
                t.final_text = true;
            }
            ServerEvent::FunctionCall {
                call_id,
                name,
                arguments,
                ..
            } => {
                self.on_function_call(now_ms, call_id, name, arguments, out);
            }
            ServerEvent::ResponseDone {
                response_id, usage, ..
            } => {
                if let Some(u) = usage {
                    add_usage(&mut self.usage, &u);
                }
                self.usage.responses += 1;
                if self.active_response.as_deref() == Some(response_id.as_str()) {
                    self.active_response = None;
                }
                if self.response_wanted
                    && self.active_response.is_none()
                    && !self.response_requested
                {
                    self.response_wanted = false;
                    self.response_requested = true;
                    out.push(Action::Realtime(wire::response_create()));
                }
                self.try_goodbye(out);
                self.after_playback_progress(out);
            }
            ServerEvent::Error(e) => {
                let code = e
                    .code
                    .clone()
                    .unwrap_or_else(|| e.kind.clone().unwrap_or_else(|| "unknown".into()));
                out.push(Action::Observe(Observation::OpenAiError(code.clone())));
                if code == "conversation_already_has_active_response" {
                    self.response_requested = false;
                }
                self.last_error = Some(code.clone());
                if code == "session_expired" && self.link == Link::Up {
                    // Older deployments say so before their 1001 close: move on now.
                    self.lose_session(now_ms, cause::SESSION_LIMIT, out);
                }
            }
            ServerEvent::Truncated { .. } | ServerEvent::Other(_) => {}
        }
    }

    fn agent_turn(&mut self, now_ms: u64, item_id: &str) -> &mut AgentTurn {
        let rel = self.rel(now_ms);
        let idx = match self.agent.iter().rposition(|t| t.item_id == item_id) {
            Some(i) => i,
            None => {
                self.agent.push(AgentTurn {
                    item_id: item_id.to_string(),
                    start_ms: rel,
                    sent_ms: 0,
                    text: String::new(),
                    final_text: false,
                    heard_ms: None,
                    interrupted: false,
                });
                self.agent.len() - 1
            }
        };
        &mut self.agent[idx]
    }

    fn on_delta(
        &mut self,
        now_ms: u64,
        response_id: &str,
        item_id: &str,
        content_index: u32,
        delta: &str,
        out: &mut Vec<Action>,
    ) {
        if self.playback.is_discarded(response_id) {
            out.push(Action::Observe(Observation::LateDeltaDropped));
            return;
        }
        // Checked and counted without decoding; decoded only when the call is recorded,
        // which needs the audio (the decoded chunk goes to the recorder as it is: no copy).
        let mut recorded = None;
        let decoded = if self.settings.record {
            let mut audio = Vec::new();
            let n = base64_simd::STANDARD
                .decode_append(delta, &mut audio)
                .ok()
                .map(|()| audio.len());
            recorded = Some(audio);
            n
        } else {
            media::base64_len(delta)
        };
        let Some(bytes) = decoded else {
            out.push(Action::Observe(Observation::Protocol("openai_bad_audio")));
            return;
        };
        let bytes = bytes as u64;
        if bytes == 0 {
            return;
        }
        if let Some(stopped) = self.speech_stopped_at.take() {
            out.push(Action::Observe(Observation::ResponseLatency(
                now_ms.saturating_sub(stopped),
            )));
        }
        self.last_activity = now_ms;
        self.agent_turn(now_ms, item_id).sent_ms += bytes / 8;
        let mark = self
            .playback
            .on_chunk_sent(response_id, item_id, content_index, bytes);
        out.push(Action::Twilio(media::media_message(
            &self.stream_sid,
            delta,
        )));
        out.push(Action::Twilio(media::mark_message(&self.stream_sid, mark)));
        if let Some(audio) = recorded {
            out.push(Action::Record(Recorded::AgentAudio {
                seq: self.playback.last_seq(),
                audio,
            }));
        }
    }

    fn barge_in(&mut self, out: &mut Vec<Action>) {
        let was_playing = self.playback.is_playing();
        if was_playing {
            out.push(Action::Twilio(media::clear_message(&self.stream_sid)));
            if self.settings.record {
                out.push(Action::Record(Recorded::Cleared));
            }
        }
        for t in self.playback.interrupt() {
            if let Some(turn) = self.agent.iter_mut().find(|a| a.item_id == t.item_id) {
                turn.heard_ms = Some(t.played_ms);
                turn.interrupted = true;
            }
            if !t.past_session {
                out.push(Action::Realtime(wire::truncate(
                    &t.item_id,
                    t.content_index,
                    t.audio_end_ms,
                )));
            }
        }
        if let Some(active) = &self.active_response {
            // interrupt_response=true: OpenAI cancels it; its in-flight deltas must not play.
            self.playback.discard(active);
        }
        self.barge_ins += 1;
        out.push(Action::Observe(Observation::BargeIn));
    }

    fn on_function_call(
        &mut self,
        now_ms: u64,
        call_id: String,
        name: String,
        arguments: String,
        out: &mut Vec<Action>,
    ) {
        if self.settings.external_tools.contains(&name) {
            out.push(Action::RunTool {
                call_id: call_id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
            });
            self.pending_tools.push(PendingTool {
                call_id,
                name,
                arguments,
                started_ms: now_ms,
            });
            return;
        }
        let output = if name == end_call::NAME {
            if !self.hangup_requested {
                self.hangup_requested = true;
                self.hangup_asked_ms = Some(now_ms);
            }
            end_call::OUTPUT.to_string()
        } else if name == transfer_call::NAME {
            if self.transfer.is_some() || self.hangup_requested {
                transfer_call::already_transferring()
            } else {
                match transfer_call::decide(&arguments, &self.settings.transfer_targets) {
                    transfer_call::Decision::Transfer { target, output } => {
                        self.transfer = Some(PendingTransfer {
                            target,
                            asked_ms: now_ms,
                            handoff_started: false,
                        });
                        output
                    }
                    transfer_call::Decision::Refuse { output } => output,
                }
            }
        } else {
            serde_json::json!({"error": format!("unknown tool {name:?}")}).to_string()
        };
        out.push(Action::Realtime(wire::function_call_output(
            &call_id, &output,
        )));
        if name != end_call::NAME {
            // The model does not speak after a tool output until asked.
            self.request_response(out);
        }
        self.tool_at.push(self.rel(now_ms));
        self.tool_calls.push(ToolCallRecord {
            call_id,
            name,
            arguments,
            output,
            latency_ms: 0,
            at_ms: Some(self.rel(now_ms)),
        });
    }

    /// An external tool answered. The output is always added, even if the caller barged
    /// in meanwhile (otherwise the model asks again); the response that reads it out waits
    /// for any response in progress.
    fn on_tool_result(
        &mut self,
        now_ms: u64,
        call_id: String,
        output: String,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.pending_tools.iter().position(|p| p.call_id == call_id) else {
            out.push(Action::Observe(Observation::Protocol(
                "unexpected_tool_result",
            )));
            return;
        };
        let p = self.pending_tools.swap_remove(i);
        if self.audio_to_model {
            out.push(Action::Realtime(wire::function_call_output(
                &call_id, &output,
            )));
            self.request_response(out);
        } else {
            // No session now: the output goes into the new session's history, which then
            // answers it.
            self.resume = true;
        }
        self.last_activity = now_ms;
        self.tool_at.push(self.rel(p.started_ms));
        self.tool_calls.push(ToolCallRecord {
            call_id,
            name: p.name,
            arguments: p.arguments,
            output,
            latency_ms: now_ms.saturating_sub(p.started_ms),
            at_ms: Some(self.rel(p.started_ms)),
        });
    }

    fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        if self.speech_active
            && !self.stall_padded
            && now_ms.saturating_sub(self.last_media_at) >= STALL_MS
        {
            self.stall_padded = true;
            out.push(Action::Realtime(wire::append_audio(&silence_b64(
                STALL_PAD_MS,
            ))));
            out.push(Action::Observe(Observation::PaddedSilence(STALL_PAD_MS)));
        }
        let rel = self.rel(now_ms);
        if let Some((outcome, since)) = self.closing
            && now_ms.saturating_sub(since) >= self.settings.end_grace_ms
        {
            // The goodbye did not finish within the grace: end regardless.
            self.end(outcome, None, out);
            return;
        }
        // A hand-off or goodbye that is never heard (a model that keeps talking, marks
        // that never come back) must not hold the caller.
        if let Some(t) = &self.transfer
            && now_ms.saturating_sub(t.asked_ms) >= self.settings.handoff_timeout_ms
        {
            self.move_to_transfer(out);
            return;
        }
        if self.closing.is_none()
            && let Some(asked) = self.hangup_asked_ms
            && now_ms.saturating_sub(asked) >= self.settings.handoff_timeout_ms
        {
            self.end(Outcome::AgentHangup, Some("goodbye_timeout".into()), out);
            return;
        }
        if rel >= self.settings.max_call_ms {
            self.begin_closing(now_ms, Outcome::MaxDuration, out);
            if self.ended {
                return;
            }
        } else if !self.wrap_up_sent
            && self.settings.wrap_up_ms > 0
            && rel.saturating_add(self.settings.wrap_up_ms) >= self.settings.max_call_ms
            && self.audio_to_model
        {
            self.wrap_up_sent = true;
            let secs = (self.settings.max_call_ms - rel).div_ceil(1000);
            out.push(Action::Realtime(wire::system_text(&format!(
                "[This call will end in about {secs} seconds. Finish what you are saying, \
                 help the caller wrap up, and do not start anything new.]"
            ))));
        }
        if self.settings.silence_timeout_ms > 0
            && self.quiet()
            && now_ms.saturating_sub(self.last_caller_activity) >= self.settings.silence_timeout_ms
        {
            self.begin_closing(now_ms, Outcome::SilenceTimeout, out);
            if self.ended {
                return;
            }
        }
        self.try_goodbye(out);
        match self.link {
            Link::Waiting {
                cause,
                attempt,
                retry_at,
                lost_at,
            } if now_ms >= retry_at => {
                self.link = Link::Connecting {
                    cause,
                    attempt: attempt + 1,
                    lost_at: Some(lost_at),
                };
                out.push(Action::ConnectRealtime);
            }
            Link::Ready { cause } if self.quiet() => {
                self.forget_session(out);
                self.switch(now_ms, cause, 0, out);
            }
            Link::Up
                if self.closing.is_none()
                    && self.rotate_at.is_some_and(|t| now_ms >= t)
                    && self.quiet() =>
            {
                self.rotate_at = None;
                self.link = Link::Connecting {
                    cause: cause::ROTATION,
                    attempt: 1,
                    lost_at: None,
                };
                out.push(Action::ConnectRealtime);
            }
            _ => {}
        }
    }

    /// Nobody is speaking and nothing is pending: a moment at which the model session
    /// can change without anyone noticing.
    fn quiet(&self) -> bool {
        !self.speech_active
            && !self.playback.is_playing()
            && self.active_response.is_none()
            && !self.response_requested
            && self.pending_tools.is_empty()
    }

    /// Places the session's expiry on the call clock and plans its rotation.
    fn schedule_rotation(&mut self, now_ms: u64, expires_at: Option<u64>) {
        let (Some(exp_s), Some(origin)) = (expires_at, self.unix_origin_ms) else {
            return;
        };
        let Some(expires) = exp_s.checked_mul(1000).and_then(|e| e.checked_sub(origin)) else {
            return;
        };
        if expires <= now_ms {
            return; // a peer's nonsense (or a skewed clock): reconnect when it closes
        }
        let lead = ((expires - now_ms) / 3).min(ROTATE_LEAD_MAX_MS);
        self.rotate_at = Some(expires - lead);
    }

    /// The call ends on purpose: say goodbye (after anything being said now), then hang
    /// up once it has been heard, or at the grace at the latest.
    fn begin_closing(&mut self, now_ms: u64, outcome: Outcome, out: &mut Vec<Action>) {
        if self.closing.is_some() || self.ended {
            return;
        }
        if !self.audio_to_model {
            // No session to say goodbye with.
            self.end(outcome, None, out);
            return;
        }
        self.closing = Some((outcome, now_ms));
        self.goodbye_pending = true;
        self.hangup_requested = true;
        self.hangup_outcome = outcome;
        self.try_goodbye(out);
    }

    fn try_goodbye(&mut self, out: &mut Vec<Action>) {
        if self.goodbye_pending
            && self.session_ready
            && self.audio_to_model
            && self.active_response.is_none()
            && !self.response_requested
        {
            self.goodbye_pending = false;
            self.response_requested = true;
            let purpose = self.closing.map_or("goodbye", |(o, _)| o.as_str());
            out.push(Action::Realtime(wire::response_say_goodbye(
                &self.settings.goodbye,
                purpose,
            )));
        }
    }

    fn on_realtime_closed(&mut self, now_ms: u64, code: Option<u16>, out: &mut Vec<Action>) {
        let cause = if self.last_error.as_deref() == Some("session_expired") || code == Some(1001) {
            cause::SESSION_LIMIT
        } else if self.last_error.is_some() {
            cause::ERROR
        } else if code.is_some() {
            cause::CLOSED
        } else {
            cause::DROPPED
        };
        match self.link {
            Link::Up => self.lose_session(now_ms, cause, out),
            Link::Connecting {
                cause,
                attempt,
                lost_at: None,
            } => {
                self.forget_session(out);
                self.link = Link::Connecting {
                    cause,
                    attempt,
                    lost_at: Some(now_ms),
                };
            }
            Link::Ready { cause } => {
                self.forget_session(out);
                self.switch(now_ms, cause, 0, out);
            }
            Link::Connecting { .. } | Link::Waiting { .. } => {}
        }
    }

    /// The session serving the call is gone: keep what it left, connect a new one.
    fn lose_session(&mut self, now_ms: u64, cause: ReconnectCause, out: &mut Vec<Action>) {
        if let Some((outcome, _)) = self.closing {
            // Ending anyway; a new session only to say goodbye is not worth the wait.
            self.end(outcome, None, out);
            return;
        }
        self.forget_session(out);
        out.push(Action::Observe(Observation::OpenAiLost(cause)));
        self.link = Link::Connecting {
            cause,
            attempt: 1,
            lost_at: Some(now_ms),
        };
        out.push(Action::ConnectRealtime);
    }

    /// Drops everything that only the old session knew: its response, its VAD state,
    /// its unfinished items (their audio already sent still plays, see
    /// [`Playback::end_session`]). Closes its socket.
    fn forget_session(&mut self, out: &mut Vec<Action>) {
        self.resume |= self.active_response.is_some() || self.response_requested;
        for mark in self.playback.end_session() {
            out.push(Action::Twilio(media::mark_message(&self.stream_sid, &mark)));
        }
        match &self.greeting {
            Greeting::Requested => self.greeting = Greeting::NotSent,
            Greeting::Playing(_) => {
                self.greeting = Greeting::Done;
                self.resume = true;
            }
            _ => {}
        }
        self.active_response = None;
        self.response_requested = false;
        self.response_wanted = false;
        self.cancel_next_response = false;
        self.speech_active = false;
        self.speech_stopped_at = None;
        self.stall_padded = false;
        self.session_ready = false;
        self.last_error = None;
        self.rotate_at = None;
        self.audio_to_model = false;
        out.push(Action::DropRealtime);
    }

    fn on_connected(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        match self.link {
            Link::Connecting {
                cause,
                lost_at: None,
                ..
            } => {
                if self.quiet() {
                    self.forget_session(out);
                    self.switch(now_ms, cause, 0, out);
                } else {
                    self.link = Link::Ready { cause };
                }
            }
            Link::Connecting {
                cause,
                lost_at: Some(lost),
                ..
            } => self.switch(now_ms, cause, now_ms.saturating_sub(lost), out),
            _ => out.push(Action::Observe(Observation::Protocol("unexpected_connect"))),
        }
    }

    fn on_connect_failed(&mut self, now_ms: u64, error: String, out: &mut Vec<Action>) {
        let Link::Connecting {
            cause,
            attempt,
            lost_at,
        } = self.link
        else {
            return;
        };
        match lost_at {
            // A rotation could not connect: the old session still serves; try later.
            None => {
                self.link = Link::Up;
                self.rotate_at = Some(now_ms + 10_000);
            }
            Some(_) if attempt >= RECONNECT_ATTEMPTS => {
                self.end(Outcome::ModelUnavailable, Some(error), out);
            }
            Some(lost_at) => {
                let wait = RECONNECT_BACKOFF_MS[usize::try_from(attempt - 1)
                    .unwrap_or(0)
                    .min(RECONNECT_BACKOFF_MS.len() - 1)];
                self.link = Link::Waiting {
                    cause,
                    attempt,
                    retry_at: now_ms + wait,
                    lost_at,
                };
            }
        }
    }

    /// The new session takes over: seed it with the conversation, then the caller audio
    /// kept meanwhile.
    fn switch(&mut self, now_ms: u64, cause: ReconnectCause, gap_ms: u64, out: &mut Vec<Action>) {
        out.push(Action::SwitchRealtime);
        let note = if cause == cause::ROTATION {
            None
        } else if self.resume {
            Some(RESUME_NOTE)
        } else {
            Some(RECONNECT_NOTE)
        };
        let mut turns = self
            .return_leg
            .as_ref()
            .map_or_else(Vec::new, |r| r.earlier.clone());
        turns.extend(self.turns());
        for ev in history::seed_events(&turns, note) {
            out.push(Action::Realtime(ev));
        }
        if self.greeting == Greeting::Done && !self.settings.greeting_interruptible {
            out.push(Action::Realtime(self.settings.interruptible_update.clone()));
        }
        self.link = Link::Up;
        self.audio_to_model = true;
        self.audio_origin_ms = self.rel(now_ms);
        for payload in self.gap_audio.drain(..) {
            out.push(Action::Realtime(wire::append_audio(&payload)));
        }
        self.reconnects.push(cause.to_string());
        out.push(Action::Observe(Observation::Reconnected { cause, gap_ms }));
    }

    fn buffer_gap_audio(&mut self, ts: u64, payload: &str, bytes: usize) {
        if self.gap_audio.len() >= GAP_AUDIO_FRAMES {
            self.gap_audio.pop_front();
        }
        self.gap_audio.push_back(payload.to_string());
        let frame_end = ts.saturating_add(bytes as u64 / 8);
        self.next_media_ts = Some(self.next_media_ts.map_or(frame_end, |e| e.max(frame_end)));
    }

    /// The conversation so far, in order, as the next session should know it.
    fn turns(&self) -> Vec<Turn> {
        let mut timed: Vec<(u64, Turn)> = Vec::new();
        for t in self.caller.values() {
            timed.push((
                t.at,
                Turn::Caller {
                    text: t.text.clone(),
                },
            ));
        }
        for t in &self.agent {
            let cut = t.interrupted || !t.final_text;
            let text = match t.heard_ms {
                Some(heard) if t.interrupted && t.sent_ms > 0 => {
                    cut_words(&t.text, heard, t.sent_ms)
                }
                _ => t.text.clone(),
            };
            timed.push((
                t.start_ms,
                Turn::Agent {
                    text,
                    interrupted: cut,
                },
            ));
        }
        for (t, at) in self.tool_calls.iter().zip(&self.tool_at) {
            timed.push((
                *at,
                Turn::Tool {
                    call_id: t.call_id.clone(),
                    name: t.name.clone(),
                    arguments: t.arguments.clone(),
                    output: Some(t.output.clone()),
                },
            ));
        }
        for p in &self.pending_tools {
            timed.push((
                self.rel(p.started_ms),
                Turn::Tool {
                    call_id: p.call_id.clone(),
                    name: p.name.clone(),
                    arguments: p.arguments.clone(),
                    output: None,
                },
            ));
        }
        timed.sort_by_key(|(at, _)| *at);
        timed.into_iter().map(|(_, t)| t).collect()
    }

    fn end(&mut self, outcome: Outcome, detail: Option<String>, out: &mut Vec<Action>) {
        if self.ended {
            return;
        }
        self.ended = true;
        out.push(Action::End(self.summary(outcome, detail)));
    }

    fn summary(&mut self, outcome: Outcome, detail: Option<String>) -> CallSummary {
        let mut entries: Vec<TranscriptEntry> = Vec::new();
        let offset = self.return_leg.as_ref().map_or(0, |r| r.offset_ms);
        for t in self.caller.values() {
            entries.push(TranscriptEntry {
                seq: 0,
                role: Role::Caller,
                text: t.text.clone(),
                start_ms: t.start_ms + offset,
                end_ms: t.end_ms.unwrap_or(t.start_ms) + offset,
                interrupted: false,
                heard_ms: None,
            });
        }
        for t in &self.agent {
            let heard = t.heard_ms.unwrap_or(0);
            let interrupted = t.interrupted;
            entries.push(TranscriptEntry {
                seq: 0,
                role: Role::Agent,
                text: t.text.clone(),
                start_ms: t.start_ms + offset,
                end_ms: t.start_ms + offset + if interrupted { heard } else { t.sent_ms },
                interrupted,
                heard_ms: interrupted.then_some(heard),
            });
        }
        entries.sort_by_key(|e| (e.start_ms, e.role == Role::Agent));
        let mut usage = self.usage.clone();
        let mut tool_calls = std::mem::take(&mut self.tool_calls);
        let mut barge_ins = self.barge_ins;
        let mut reconnects = std::mem::take(&mut self.reconnects);
        if let Some(r) = self.return_leg.take() {
            // The earlier legs come first: one record for the whole call.
            let mut all = r.transcript;
            all.sort_by_key(|e| e.seq);
            all.extend(entries);
            entries = all;
            let mut calls = r.tool_calls;
            calls.extend(tool_calls);
            tool_calls = calls;
            merge_usage(&mut usage, &r.usage);
            barge_ins += r.barge_ins;
            let mut causes = r.reconnects;
            causes.extend(reconnects);
            reconnects = causes;
        }
        for (i, e) in entries.iter_mut().enumerate() {
            e.seq = u32::try_from(i).unwrap_or(u32::MAX);
        }
        CallSummary {
            outcome,
            detail,
            transcript: entries,
            usage,
            tool_calls,
            barge_ins,
            reconnects,
        }
    }
}

fn add_usage(total: &mut Usage, u: &ResponseUsage) {
    total.total_tokens += u.total_tokens;
    total.input_tokens += u.input_tokens;
    total.output_tokens += u.output_tokens;
    total.input_audio_tokens += u.input_token_details.audio_tokens;
    total.input_text_tokens += u.input_token_details.text_tokens;
    total.cached_tokens += u.input_token_details.cached_tokens;
    let cached = &u.input_token_details.cached_tokens_details;
    total.cached_text_tokens += cached.text_tokens;
    total.cached_audio_tokens += cached.audio_tokens;
    total.output_audio_tokens += u.output_token_details.audio_tokens;
    total.output_text_tokens += u.output_token_details.text_tokens;
}

/// The words of `text` the caller heard: the share `heard_ms / total_ms`, cut back to a
/// word boundary (speech is roughly even in time).
fn cut_words(text: &str, heard_ms: u64, total_ms: u64) -> String {
    if heard_ms >= total_ms {
        return text.to_string();
    }
    let keep = usize::try_from(text.len() as u64 * heard_ms / total_ms.max(1)).unwrap_or(0);
    let mut end = keep.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    match head.rfind(char::is_whitespace) {
        Some(i) => head[..i].trim_end().to_string(),
        None => String::new(),
    }
}

fn merge_usage(total: &mut Usage, u: &Usage) {
    total.responses += u.responses;
    total.total_tokens += u.total_tokens;
    total.input_tokens += u.input_tokens;
    total.output_tokens += u.output_tokens;
    total.input_audio_tokens += u.input_audio_tokens;
    total.input_text_tokens += u.input_text_tokens;
    total.cached_tokens += u.cached_tokens;
    total.cached_text_tokens += u.cached_text_tokens;
    total.cached_audio_tokens += u.cached_audio_tokens;
    total.output_audio_tokens += u.output_audio_tokens;
    total.output_text_tokens += u.output_text_tokens;
}

/// Base64 of `ms` of µ-law silence (0xFF).
fn silence_b64(ms: u64) -> String {
    let n = usize::try_from(ms * 8).unwrap_or(0);
    STANDARD.encode(vec![0xFFu8; n])
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
