//! One connection's state machine, free of I/O: client text frames and timer ticks in,
//! server frames out. The server task only moves bytes and sleeps until `next_deadline`.

use super::audio::AudioBank;
use super::config::RealtimeConfig;
use super::log::SharedLog;
use super::protocol::{self, ApiError, EventIds};
use super::respond::Generation;
use super::settings::SessionConfig;
use super::vad::{Vad, VadEvent};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The real API's session lifetime.
const DEFAULT_SESSION_MAX_MS: u64 = 60 * 60 * 1000;
/// The real API refuses to commit less audio than this.
const MIN_COMMIT_MS: u64 = 100;
/// Close reasons are limited to 123 bytes by RFC 6455.
const EXPIRED_MESSAGE: &str = "Your session hit the maximum duration of 60 minutes.";

const CLIENT_EVENTS: &[&str] = &[
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
];

/// A frame for the server task to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// A JSON text frame.
    Text(String),
    /// A close frame; nothing follows it.
    Close(u16, String),
}

/// A conversation item as the simulator tracks it.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub id: String,
    pub kind: ItemKind,
}

#[derive(Debug, Clone)]
pub(super) enum ItemKind {
    /// Caller audio committed from the input buffer.
    UserAudio {
        transcript: Option<String>,
        turn: Option<usize>,
        idle: bool,
    },
    /// A message the client created; `user_text` holds user `input_text`.
    Client {
        json: Value,
        user_text: Option<String>,
    },
    /// An assistant message the simulator generated.
    Assistant {
        text: String,
        audio: bool,
        generated_ms: u64,
        status: &'static str,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
        template: Option<String>,
    },
    FunctionOutput {
        call_id: String,
        output: String,
    },
}

/// Running token estimate of the conversation context.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ContextTokens {
    pub text: u64,
    pub audio: u64,
    pub last_input: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendFast<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    audio: Cow<'a, str>,
}

/// Per-connection state.
pub struct Session {
    pub(super) cfg: Arc<RealtimeConfig>,
    pub(super) bank: Arc<AudioBank>,
    pub(super) log: SharedLog,
    pub(super) ev: EventIds,
    pub(super) conf: SessionConfig,
    updated: bool,
    pub(super) conversation_id: String,
    pub(super) items: Vec<Item>,
    vad: Vad,
    /// Whether `vad` has been fed since the last format or turn-detection change.
    vad_running: bool,
    /// Input-buffer time at which `vad`'s own clock started.
    vad_base_ms: u64,
    vad_events: Vec<VadEvent>,
    decoded: Vec<u8>,
    /// Input-buffer clock: ms before the last format change plus bytes since.
    input_base_ms: u64,
    input_bytes_since_base: u64,
    uncommitted_start_ms: u64,
    speech_item: Option<String>,
    pub(super) script_pos: usize,
    pub(super) active: Option<Generation>,
    pub(super) voice_locked: bool,
    pub(super) ctx: ContextTokens,
    pub(super) idle_at: Option<Instant>,
    expires_at: Instant,
    fail_at: Option<Instant>,
    /// The response (1-based) whose audio is cut by dropping the connection.
    pub(super) drop_response: Option<u32>,
    pub(super) dropped: bool,
    pub(super) out: Vec<Out>,
    closed: bool,
}

impl Session {
    /// A new session; `session.created` is queued at once.
    pub fn new(
        cfg: Arc<RealtimeConfig>,
        bank: Arc<AudioBank>,
        log: SharedLog,
        model: String,
        now: Instant,
    ) -> Self {
        let max_ms = cfg.session_max_ms.unwrap_or(DEFAULT_SESSION_MAX_MS);
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let conf = SessionConfig::new(
            protocol::random_id("sess_"),
            model,
            unix_now + max_ms.div_ceil(1000),
        );
        let fail_at = cfg.fail_after_ms.map(|ms| now + Duration::from_millis(ms));
        let drop_response = cfg.drop_mid_response;
        let mut s = Self {
            cfg,
            bank,
            log,
            ev: EventIds::default(),
            conf,
            updated: false,
            conversation_id: protocol::random_id("conv_"),
            items: Vec::new(),
            vad: Vad::default(),
            vad_running: false,
            vad_base_ms: 0,
            vad_events: Vec::new(),
            decoded: Vec::new(),
            input_base_ms: 0,
            input_bytes_since_base: 0,
            uncommitted_start_ms: 0,
            speech_item: None,
            script_pos: 0,
            active: None,
            voice_locked: false,
            ctx: ContextTokens::default(),
            idle_at: None,
            expires_at: now + Duration::from_millis(max_ms),
            fail_at,
            drop_response,
            dropped: false,
            out: Vec::new(),
            closed: false,
        };
        let session = s.conf.to_json();
        s.log.lock().session = session.clone();
        s.emit(json!({"type": "session.created", "session": session}));
        s
    }

    /// Moves queued frames into `buf` (keeping both allocations alive).
    pub fn drain_out(&mut self, buf: &mut Vec<Out>) {
        buf.append(&mut self.out);
    }

    /// Whether a close frame has been queued.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether fault injection wants the connection dropped now, without a close frame.
    pub fn is_dropped(&self) -> bool {
        self.dropped
    }

    /// This session is past `fault_sessions`: no injected faults.
    pub fn clear_faults(&mut self) {
        self.fail_at = None;
        self.drop_response = None;
    }

    /// The next instant `on_timer` has work to do.
    pub fn next_deadline(&self) -> Instant {
        let mut at = self.expires_at;
        for t in [
            self.fail_at,
            self.idle_at,
            self.active.as_ref().map(Generation::next_tick),
        ]
        .into_iter()
        .flatten()
        {
            at = at.min(t);
        }
        at
    }

    /// Runs everything due at `now`: response pacing, idle timeout, faults, expiry.
    pub fn on_timer(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.fail_at.is_some_and(|t| t <= now) {
            self.fail_at = None;
            self.send_error(ApiError::server_error(), None);
            self.close(1011, "server_error", "server_error");
            return;
        }
        if self.expires_at <= now {
            self.send_error(ApiError::invalid("session_expired", EXPIRED_MESSAGE), None);
            self.close(1001, EXPIRED_MESSAGE, "session_expired");
            return;
        }
        self.tick_response(now);
        if self.idle_at.is_some_and(|t| t <= now) {
            self.idle_at = None;
            self.idle_timeout(now);
        }
    }

    /// Ends the session because the server is shutting down.
    pub fn shutdown(&mut self) {
        if !self.closed {
            self.close(1001, "server shutting down", "shutdown");
        }
    }

    /// Handles one client text frame.
    pub fn handle_text(&mut self, text: &str, now: Instant) {
        if self.closed {
            return;
        }
        // Appends are nearly all the traffic: parse them without building a JSON tree.
        if let Ok(fast) = serde_json::from_str::<AppendFast<'_>>(text)
            && fast.kind == "input_audio_buffer.append"
        {
            let event_id = fast.event_id.as_deref();
            self.append(&fast.audio, event_id, now);
            return;
        }
        let event: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let snippet: String = text.chars().take(200).collect();
                self.log
                    .lock()
                    .events
                    .push(json!({"invalid_json": snippet}));
                self.send_error(
                    ApiError::invalid(
                        "invalid_json",
                        format!("The server could not parse the JSON in the message: {e}"),
                    ),
                    None,
                );
                return;
            }
        };
        let kind = event.get("type").and_then(Value::as_str).map(str::to_owned);
        let event_id = event
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let event_id = event_id.as_deref();
        if kind.as_deref() == Some("input_audio_buffer.append") {
            self.append_slow(&event, event_id, now);
            return;
        }
        self.log.lock().events.push(event.clone());
        let Some(kind) = kind else {
            let e = if event.is_object() {
                ApiError::missing("type")
            } else {
                ApiError::invalid_type("event", "an object")
            };
            self.send_error(e, event_id);
            return;
        };
        let result = match kind.as_str() {
            "session.update" => self.session_update(&event),
            "input_audio_buffer.commit" => {
                expect_keys(&event, &[]).and_then(|()| self.commit_manual(now))
            }
            "input_audio_buffer.clear" => expect_keys(&event, &[]).map(|()| self.clear_input()),
            "conversation.item.create" => self.item_create(&event),
            "conversation.item.retrieve" => self.item_retrieve(&event),
            "conversation.item.truncate" => self.item_truncate(&event),
            "conversation.item.delete" => self.item_delete(&event),
            "response.create" => self.response_create(&event, now),
            "response.cancel" => self.response_cancel(&event, now),
            "output_audio_buffer.clear" => Err(ApiError::invalid_value(
                "type",
                "output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
            )),
            other => Err(ApiError::invalid_value(
                "type",
                format!(
                    "Invalid value: '{other}'. Supported values are: {}.",
                    CLIENT_EVENTS
                        .iter()
                        .map(|e| format!("'{e}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        };
        if let Err(e) = result {
            self.send_error(e, event_id);
        }
    }

    /// Handles a binary frame, which the API does not accept.
    pub fn handle_binary(&mut self) {
        self.send_error(
            ApiError::invalid(
                "invalid_json",
                "Binary frames are not supported; send JSON text frames.",
            ),
            None,
        );
    }

    /// Queues an event, stamping a fresh `event_id`.
    pub(super) fn emit(&mut self, mut v: Value) {
        if let Some(obj) = v.as_object_mut() {
            obj.insert("event_id".to_owned(), Value::String(self.ev.next_id()));
        }
        self.out.push(Out::Text(v.to_string()));
    }

    /// Queues an `error` event and records it.
    pub(super) fn send_error(&mut self, e: ApiError, client_event_id: Option<&str>) {
        let v = e.to_event(self.ev.next_id(), client_event_id);
        self.out.push(Out::Text(v.to_string()));
        self.log.lock().errors_sent.push(v);
    }

    fn close(&mut self, code: u16, reason: &str, log_reason: &str) {
        self.closed = true;
        self.out.push(Out::Close(code, reason.to_owned()));
        self.log.lock().close_reason = Some(log_reason.to_owned());
    }

    pub(super) fn last_item_id(&self) -> Value {
        self.items
            .last()
            .map_or(Value::Null, |i| Value::String(i.id.clone()))
    }

    fn input_ms(&self) -> u64 {
        self.input_base_ms + self.input_bytes_since_base / self.conf.input_format.bytes_per_ms()
    }

    fn session_update(&mut self, event: &Value) -> Result<(), ApiError> {
        expect_keys(event, &["session"])?;
        let session = event
            .get("session")
            .ok_or_else(|| ApiError::missing("session"))?;
        let next = self.conf.updated(session, self.voice_locked)?;
        if next.input_format != self.conf.input_format {
            self.input_base_ms = self.input_ms();
            self.input_bytes_since_base = 0;
            self.vad_running = false;
        }
        if next.turn_detection.is_none() {
            self.vad_running = false;
        }
        self.conf = next;
        self.updated = true;
        let session = self.conf.to_json();
        self.log.lock().session = session.clone();
        self.emit(json!({"type": "session.updated", "session": session}));
        Ok(())
    }

    fn append_slow(&mut self, event: &Value, event_id: Option<&str>, now: Instant) {
        let r = expect_keys(event, &["audio"]).and_then(|()| match event.get("audio") {
            Some(Value::String(a)) => Ok(a.clone()),
            Some(_) => Err(ApiError::invalid_type("audio", "a string")),
            None => Err(ApiError::missing("audio")),
        });
        match r {
            Ok(audio) => self.append(&audio, event_id, now),
            Err(e) => {
                self.log
                    .lock()
                    .events
                    .push(json!({"type": "input_audio_buffer.append", "rejected": true}));
                self.send_error(e, event_id);
            }
        }
    }

    fn append(&mut self, audio: &str, event_id: Option<&str>, now: Instant) {
        self.decoded.clear();
        if STANDARD.decode_vec(audio, &mut self.decoded).is_err() {
            self.log
                .lock()
                .events
                .push(json!({"type": "input_audio_buffer.append", "rejected": true}));
            self.send_error(
                ApiError::invalid_value(
                    "audio",
                    "Invalid 'audio'. Expected base64-encoded audio bytes.",
                ),
                event_id,
            );
            return;
        }
        let n = self.decoded.len() as u64;
        {
            let mut log = self.log.lock();
            log.record_append(n);
            if !self.updated {
                log.audio_before_session_update = true;
            }
        }
        let Some(td) = &self.conf.turn_detection else {
            self.input_bytes_since_base += n;
            return;
        };
        let (params, interrupt, create) = (
            td.vad_params(),
            td.interrupt_response(),
            td.create_response(),
        );
        if !self.vad_running {
            self.vad = Vad::default();
            self.vad_base_ms = self.input_ms();
            self.vad_running = true;
        }
        let base = self.vad_base_ms;
        let mut events = std::mem::take(&mut self.vad_events);
        events.clear();
        let format = self.conf.input_format;
        self.vad.feed(&params, format, &self.decoded, &mut events);
        self.input_bytes_since_base += n;
        for e in events.drain(..) {
            match e {
                VadEvent::Started { audio_start_ms } => {
                    // Padding cannot reach back before the detector started listening.
                    let start = base + audio_start_ms;
                    self.speech_started(start, interrupt, now);
                }
                VadEvent::Stopped { audio_end_ms } => {
                    self.speech_stopped(base + audio_end_ms, create, now);
                }
            }
        }
        self.vad_events = events;
    }

    fn speech_started(&mut self, audio_start_ms: u64, interrupt: bool, now: Instant) {
        let item_id = protocol::random_id("item_");
        self.idle_at = None;
        self.emit(json!({
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": audio_start_ms,
            "item_id": item_id,
        }));
        self.speech_item = Some(item_id);
        if interrupt && self.active.is_some() {
            self.cancel_response("turn_detected", now);
        }
    }

    fn speech_stopped(&mut self, audio_end_ms: u64, create: bool, now: Instant) {
        let item_id = self
            .speech_item
            .take()
            .unwrap_or_else(|| protocol::random_id("item_"));
        self.emit(json!({
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": audio_end_ms,
            "item_id": item_id,
        }));
        self.commit_user_audio(item_id, false);
        if create && self.active.is_none() {
            self.start_auto_response(now);
        }
    }

    fn commit_manual(&mut self, _now: Instant) -> Result<(), ApiError> {
        let buffered = self.input_ms().saturating_sub(self.uncommitted_start_ms);
        if buffered < MIN_COMMIT_MS {
            return Err(ApiError::invalid(
                "input_audio_buffer_commit_empty",
                format!(
                    "Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms of audio, but buffer only has {buffered}.00ms of audio."
                ),
            ));
        }
        let item_id = self
            .speech_item
            .take()
            .unwrap_or_else(|| protocol::random_id("item_"));
        self.vad.reset();
        self.commit_user_audio(item_id, false);
        Ok(())
    }

    fn clear_input(&mut self) {
        self.uncommitted_start_ms = self.input_ms();
        self.speech_item = None;
        self.vad.reset();
        self.emit(json!({"type": "input_audio_buffer.cleared"}));
    }

    /// Commits the input buffer as a user audio item (consuming the next scripted turn
    /// unless it is the idle-timeout item).
    fn commit_user_audio(&mut self, item_id: String, idle: bool) {
        let now_ms = self.input_ms();
        let buffered = now_ms.saturating_sub(self.uncommitted_start_ms);
        self.uncommitted_start_ms = now_ms;
        self.idle_at = None;
        let turn = if idle || self.script_pos >= self.cfg.script.len() {
            None
        } else {
            self.script_pos += 1;
            Some(self.script_pos - 1)
        };
        let previous = self.last_item_id();
        self.emit(json!({
            "type": "input_audio_buffer.committed",
            "previous_item_id": previous,
            "item_id": item_id,
        }));
        let transcript = if idle {
            String::new()
        } else {
            turn.and_then(|t| self.cfg.script.get(t))
                .map(|t| t.caller.clone())
                .unwrap_or_default()
        };
        let item = json!({
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": null}],
        });
        self.emit(
            json!({"type": "conversation.item.added", "previous_item_id": previous, "item": item}),
        );
        self.emit(
            json!({"type": "conversation.item.done", "previous_item_id": previous, "item": item}),
        );
        self.ctx.audio += protocol::input_audio_tokens(buffered);
        let transcribe = !self.conf.transcription.is_null();
        self.items.push(Item {
            id: item_id.clone(),
            kind: ItemKind::UserAudio {
                transcript: transcribe.then(|| transcript.clone()),
                turn,
                idle,
            },
        });
        if transcribe && !idle {
            let audio_tokens = protocol::input_audio_tokens(buffered);
            let text_tokens = protocol::text_tokens(transcript.len());
            self.ctx.text += text_tokens;
            self.emit(json!({
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {
                    "type": "tokens",
                    "total_tokens": audio_tokens + text_tokens,
                    "input_tokens": audio_tokens,
                    "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
                    "output_tokens": text_tokens,
                },
            }));
        }
    }

    fn idle_timeout(&mut self, now: Instant) {
        if self.active.is_some() || self.vad.is_speaking() {
            return;
        }
        let item_id = protocol::random_id("item_");
        self.emit(json!({
            "type": "input_audio_buffer.timeout_triggered",
            "audio_start_ms": self.uncommitted_start_ms,
            "audio_end_ms": self.input_ms(),
            "item_id": item_id,
        }));
        self.commit_user_audio(item_id, true);
        self.start_auto_response(now);
    }
}

/// Refuses top-level fields an event type does not define (the API is strict about them).
pub(super) fn expect_keys(event: &Value, allowed: &[&str]) -> Result<(), ApiError> {
    let Some(obj) = event.as_object() else {
        return Ok(());
    };
    match obj
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "event_id") && !allowed.contains(&k.as_str()))
    {
        Some(k) => Err(ApiError::unknown_parameter(k)),
        None => Ok(()),
    }
}
