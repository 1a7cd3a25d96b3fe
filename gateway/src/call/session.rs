//! The call state machine: events in, actions out, no I/O.
//!
//! [`CallSession::handle`] takes one [`Input`] (a Twilio message, a Realtime event, a
//! timer tick) with the current time and appends [`Action`]s (frames to send, metrics to
//! record, the end of the call). The task in [`super::task`] only moves bytes, so every
//! decision here is unit-tested without sockets.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::playback::{MarkEcho, Playback};
use crate::endings::Outcome;
use crate::realtime::wire::{self, ResponseUsage, ServerEvent};
use crate::tenants::SessionSettings;
use crate::tools::{end_call, transfer_call};
use crate::twilio::media;
use switchboard_store::{Role, ToolCallRecord, TranscriptEntry, Usage};

/// Largest gap in caller audio filled with silence (longer gaps are not real-time audio).
const MAX_GAP_PAD_MS: u64 = 10_000;
/// While the caller speaks and no audio arrives this long, the model's VAD could wait
/// forever for the end of speech: feed it silence.
const STALL_MS: u64 = 750;
/// Silence appended on a stall.
const STALL_PAD_MS: u64 = 1_000;

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
    /// A Realtime server event.
    Realtime(ServerEvent),
    /// The Realtime WebSocket closed.
    RealtimeClosed,
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
    /// Move the call to this transfer target: the agent's hand-off sentence has been
    /// heard (or its wait timed out). An [`Action::End`] with outcome `transferred`
    /// follows; the task moves the call before it closes the stream.
    Transfer {
        /// The target's name (`spec.agent.transfer[].name`).
        target: String,
    },
    /// The call is over: close both sockets and keep the record.
    End(CallSummary),
}

/// What a return leg (the caller back with the agent after a transfer nobody answered)
/// carries from the legs before it, so the record stays one call.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Client events that seed the new Realtime session (the conversation so far and a
    /// note of what happened; see `call/history.rs`), sent once the session is ready,
    /// followed by a `response.create`.
    pub seed: Vec<String>,
    /// The earlier legs' transcript.
    pub transcript: Vec<TranscriptEntry>,
    /// The earlier legs' tool calls.
    pub tool_calls: Vec<ToolCallRecord>,
    /// The earlier legs' usage.
    pub usage: Usage,
    /// The earlier legs' barge-ins.
    pub barge_ins: u32,
    /// Where this leg starts on the call's clock (ms after the first leg started): this
    /// leg's transcript times are shifted by it.
    pub offset_ms: u64,
}

/// Everything a finished call leaves behind.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSummary {
    /// How the leg ended (see [`switchboard_store::CallEnd::outcome`]).
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
    hangup_asked_ms: u64,
    transfer: Option<PendingTransfer>,
    resume: Option<Resume>,
    pending_tools: Vec<PendingTool>,
    scratch: Vec<u8>,
    last_error: Option<String>,
    ended: bool,
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
            hangup_asked_ms: 0,
            transfer: None,
            resume: None,
            pending_tools: Vec::new(),
            scratch: Vec::new(),
            last_error: None,
            ended: false,
        }
    }

    /// A return leg: starts with `resume.seed` instead of the greeting, and its record
    /// includes the earlier legs.
    pub fn resume(
        settings: SessionSettings,
        stream_sid: String,
        now_ms: u64,
        resume: Resume,
    ) -> Self {
        let mut s = Self::new(settings, stream_sid, now_ms);
        s.greeting = Greeting::None;
        s.resume = Some(resume);
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
                out.push(Action::Realtime(wire::user_text(&format!(
                    "[The caller pressed the key \"{digit}\" on their phone keypad.]"
                ))));
                self.request_response(out);
            }
            Input::Stop | Input::TwilioClosed => self.end(Outcome::CallerHangup, None, out),
            Input::RealtimeClosed => {
                let outcome = if self.last_error.is_some() {
                    Outcome::OpenAiError
                } else {
                    Outcome::OpenAiClosed
                };
                let detail = self.last_error.clone();
                self.end(outcome, detail, out);
            }
            Input::Realtime(ev) => self.on_realtime(now_ms, ev, out),
            Input::Tick => self.on_tick(now_ms, out),
            Input::DrainDeadline => self.end(Outcome::Drained, None, out),
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
        if let Some(expected) = self.next_media_ts
            && ts > expected
        {
            let gap = (ts - expected).min(MAX_GAP_PAD_MS);
            out.push(Action::Realtime(wire::append_audio(&silence_b64(gap))));
            out.push(Action::Observe(Observation::PaddedSilence(gap)));
        }
        let frame_ms = bytes as u64 / 8;
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
            MarkEcho::Played { item_id } => {
                if let Some(ms) = self.playback.played_ms(&item_id)
                    && let Some(t) = self.agent.iter_mut().find(|t| t.item_id == item_id)
                {
                    t.heard_ms = Some(ms);
                }
            }
            MarkEcho::ItemFinished { item_id } => {
                if let Some(t) = self.agent.iter_mut().find(|t| t.item_id == item_id) {
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
        if self.hangup_requested && self.active_response.is_none() && !self.playback.is_playing() {
            self.end(Outcome::AgentEnded, None, out);
        }
        if quiet && self.transfer.as_ref().is_some_and(|t| t.handoff_started) {
            self.move_to_transfer(out);
        }
    }

    /// The hand-off was heard (or its wait is over): the task moves the call.
    fn move_to_transfer(&mut self, out: &mut Vec<Action>) {
        if let Some(t) = self.transfer.take() {
            out.push(Action::Transfer {
                target: t.target.clone(),
            });
            self.end(Outcome::Transferred, Some(t.target), out);
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
            ServerEvent::SessionUpdated => {
                let first = !self.session_ready;
                self.session_ready = true;
                if first
                    && let Some(r) = self.resume.as_mut()
                    && !r.seed.is_empty()
                {
                    // A return leg: the conversation so far and what happened, then the
                    // model speaks (an apology) instead of a greeting.
                    for ev in std::mem::take(&mut r.seed) {
                        out.push(Action::Realtime(ev));
                    }
                    self.request_response(out);
                }
                self.maybe_greet(out);
            }
            ServerEvent::SpeechStarted {
                audio_start_ms,
                item_id,
            } => {
                self.speech_active = true;
                self.last_activity = now_ms;
                self.caller.insert(
                    item_id,
                    CallerTurn {
                        start_ms: audio_start_ms,
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
                self.speech_stopped_at = Some(now_ms);
                if let Some(t) = self.caller.get_mut(&item_id) {
                    t.end_ms = Some(audio_end_ms);
                }
            }
            ServerEvent::InputTranscript {
                item_id,
                transcript,
            } => {
                let t = self.caller.entry(item_id).or_insert(CallerTurn {
                    start_ms: 0,
                    end_ms: None,
                    text: String::new(),
                });
                t.text = transcript;
            }
            ServerEvent::ResponseCreated { response_id } => {
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
                let fatal = code == "session_expired";
                self.last_error = Some(code.clone());
                if fatal {
                    self.end(Outcome::OpenAiError, Some(code), out);
                }
            }
            ServerEvent::SessionCreated | ServerEvent::Truncated { .. } | ServerEvent::Other(_) => {
            }
        }
    }

    fn agent_turn(&mut self, now_ms: u64, item_id: &str) -> &mut AgentTurn {
        let rel = self.rel(now_ms);
        let idx = match self.agent.iter().position(|t| t.item_id == item_id) {
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
        // Decoded only to validate and count; the buffer is reused so a delta costs no
        // allocation once the call's largest delta has been seen.
        self.scratch.clear();
        let Ok(()) = STANDARD.decode_vec(delta, &mut self.scratch) else {
            out.push(Action::Observe(Observation::Protocol("openai_bad_audio")));
            return;
        };
        let bytes = self.scratch.len() as u64;
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
        out.push(Action::Twilio(media::mark_message(&self.stream_sid, &mark)));
    }

    fn barge_in(&mut self, out: &mut Vec<Action>) {
        let was_playing = self.playback.is_playing();
        if was_playing {
            out.push(Action::Twilio(media::clear_message(&self.stream_sid)));
        }
        for t in self.playback.interrupt() {
            if let Some(turn) = self.agent.iter_mut().find(|a| a.item_id == t.item_id) {
                turn.heard_ms = Some(t.played_ms);
                turn.interrupted = true;
            }
            out.push(Action::Realtime(wire::truncate(
                &t.item_id,
                t.content_index,
                t.audio_end_ms,
            )));
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
                self.hangup_asked_ms = now_ms;
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
        self.tool_calls.push(ToolCallRecord {
            call_id,
            name,
            arguments,
            output,
            latency_ms: 0,
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
        out.push(Action::Realtime(wire::function_call_output(
            &call_id, &output,
        )));
        self.request_response(out);
        self.last_activity = now_ms;
        self.tool_calls.push(ToolCallRecord {
            call_id,
            name: p.name,
            arguments: p.arguments,
            output,
            latency_ms: now_ms.saturating_sub(p.started_ms),
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
        if self.rel(now_ms) >= self.settings.max_call_ms {
            self.end(Outcome::MaxDuration, None, out);
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
        if self.hangup_requested
            && now_ms.saturating_sub(self.hangup_asked_ms) >= self.settings.handoff_timeout_ms
        {
            self.end(Outcome::AgentEnded, Some("goodbye_timeout".into()), out);
            return;
        }
        let quiet = !self.speech_active
            && !self.playback.is_playing()
            && self.active_response.is_none()
            && !self.response_requested;
        if self.settings.silence_timeout_ms > 0
            && quiet
            && now_ms.saturating_sub(self.last_activity) >= self.settings.silence_timeout_ms
        {
            self.end(Outcome::Silence, None, out);
        }
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
        let offset = self.resume.as_ref().map_or(0, |r| r.offset_ms);
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
        if let Some(r) = self.resume.take() {
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
    total.output_audio_tokens += u.output_token_details.audio_tokens;
    total.output_text_tokens += u.output_token_details.text_tokens;
}

fn merge_usage(total: &mut Usage, u: &Usage) {
    total.responses += u.responses;
    total.total_tokens += u.total_tokens;
    total.input_tokens += u.input_tokens;
    total.output_tokens += u.output_tokens;
    total.input_audio_tokens += u.input_audio_tokens;
    total.input_text_tokens += u.input_text_tokens;
    total.cached_tokens += u.cached_tokens;
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
