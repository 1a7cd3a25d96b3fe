//! Responses: creation, paced generation of audio/transcript/function-call events,
//! cancellation (client or barge-in) and the closing `response.done`.

use super::codec::AudioFormat;
use super::log::ResponseLog;
use super::protocol::{self, ApiError, ContentDelta, Usage};
use super::script::{self, OutPlan, Prompt};
use super::session::{Item, ItemKind, Out, Session, expect_keys};
use super::settings;
use super::wire::{assistant_json, empty_part};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Shortest speech item.
const MIN_ITEM_MS: u64 = 400;
/// Function-call arguments stream in pieces of this many bytes (one per tick).
const ARG_CHUNK: usize = 24;

/// What a response was asked to do.
struct ResponseParams {
    instructions: Option<String>,
    in_conversation: bool,
    audio: bool,
    format: AudioFormat,
    voice: Value,
    tools: Vec<Value>,
    tool_choice: Value,
    max_output_tokens: Value,
    metadata: Value,
}

/// The item being generated.
#[derive(Debug)]
enum Current {
    Message {
        item_id: String,
        output_index: usize,
        text: String,
        word_ends: Vec<usize>,
        words_sent: usize,
        chunks_total: u64,
        chunks_sent: u64,
    },
    Call {
        item_id: String,
        output_index: usize,
        call_id: String,
        name: String,
        arguments: String,
        sent: usize,
    },
}

/// An in-progress response.
#[derive(Debug)]
pub(super) struct Generation {
    id: String,
    in_conversation: bool,
    audio: bool,
    format: AudioFormat,
    voice: Value,
    max_output_tokens: Value,
    metadata: Value,
    plans: VecDeque<OutPlan>,
    current: Option<Current>,
    next_output_index: usize,
    outputs: Vec<Value>,
    next_tick: Instant,
    interval: Duration,
    usage: Usage,
    out_text_chars: usize,
    out_audio_ms: u64,
    log_index: usize,
    spoken: String,
    first_item_id: Option<String>,
    first_audio_at: Option<Instant>,
}

impl Generation {
    /// When the next piece of output is due.
    pub(super) fn next_tick(&self) -> Instant {
        self.next_tick
    }
}

impl Session {
    pub(super) fn response_create(&mut self, event: &Value, now: Instant) -> Result<(), ApiError> {
        expect_keys(event, &["response"])?;
        if let Some(active) = &self.active {
            return Err(ApiError::invalid(
                "conversation_already_has_active_response",
                format!(
                    "Conversation already has an active response in progress: {}. Wait until the response is finished before creating a new one.",
                    active.id
                ),
            ));
        }
        let params = self.response_params(event.get("response"))?;
        let plans = self.plan_for(&params);
        self.start_response(params, plans, now);
        Ok(())
    }

    pub(super) fn response_cancel(&mut self, event: &Value, now: Instant) -> Result<(), ApiError> {
        expect_keys(event, &["response_id"])?;
        let wanted = event.get("response_id").and_then(Value::as_str);
        match &self.active {
            Some(a) if wanted.is_none_or(|w| w == a.id) => {
                self.cancel_response("client_cancelled", now);
                Ok(())
            }
            _ => Err(ApiError::invalid(
                "response_cancel_not_active",
                "Cancellation failed: no active response found.",
            )),
        }
    }

    /// A response created by turn detection (end of caller speech or idle timeout).
    pub(super) fn start_auto_response(&mut self, now: Instant) {
        let params = self.default_params();
        let plans = self.plan_for(&params);
        self.start_response(params, plans, now);
    }

    fn default_params(&self) -> ResponseParams {
        ResponseParams {
            instructions: None,
            in_conversation: true,
            audio: self.conf.audio_output(),
            format: self.conf.output_format,
            voice: self.conf.voice.clone(),
            tools: self.conf.tools.clone(),
            tool_choice: self.conf.tool_choice.clone(),
            max_output_tokens: self.conf.max_output_tokens.clone(),
            metadata: Value::Null,
        }
    }

    fn response_params(&self, response: Option<&Value>) -> Result<ResponseParams, ApiError> {
        let mut p = self.default_params();
        let Some(r) = response else {
            return Ok(p);
        };
        let obj = r
            .as_object()
            .ok_or_else(|| ApiError::invalid_type("response", "an object"))?;
        for (key, val) in obj {
            let path = format!("response.{key}");
            match key.as_str() {
                "instructions" => {
                    p.instructions = Some(
                        val.as_str()
                            .ok_or_else(|| ApiError::invalid_type(&path, "a string"))?
                            .to_owned(),
                    );
                }
                "conversation" => match val.as_str() {
                    Some("auto") => p.in_conversation = true,
                    Some("none") => p.in_conversation = false,
                    _ => {
                        return Err(ApiError::invalid_value(
                            &path,
                            "Supported values are: 'auto', 'none'.",
                        ));
                    }
                },
                "output_modalities" => {
                    p.audio = settings::modalities(val, &path)?
                        .iter()
                        .any(|m| m == "audio");
                }
                "audio" => {
                    if let Some(out) = val.get("output") {
                        if let Some(f) = out.get("format") {
                            p.format =
                                super::codec::AudioFormat::from_json(f).ok_or_else(|| {
                                    ApiError::invalid_value(
                                        "response.audio.output.format",
                                        "Supported formats are: audio/pcm, audio/pcmu, audio/pcma.",
                                    )
                                })?;
                        }
                        if let Some(v) = out.get("voice") {
                            p.voice = settings::voice(v)?;
                        }
                    }
                }
                "tools" => p.tools = settings::tools(val, &path)?,
                "tool_choice" => p.tool_choice = settings::tool_choice(val, &path)?,
                "max_output_tokens" => {
                    p.max_output_tokens = settings::max_output_tokens(val, &path)?;
                }
                "metadata" => {
                    if !(val.is_object() || val.is_null()) {
                        return Err(ApiError::invalid_type(&path, "an object"));
                    }
                    p.metadata = val.clone();
                }
                "input" | "prompt" | "reasoning" | "parallel_tool_calls" => {}
                _ => return Err(ApiError::unknown_parameter(&path)),
            }
        }
        Ok(p)
    }

    fn plan_for(&self, p: &ResponseParams) -> Vec<OutPlan> {
        let said = p.instructions.as_deref().and_then(script::said_text);
        if p.in_conversation
            && said.is_none()
            && let Some(rest) = self.resumed_answer()
        {
            return vec![OutPlan::Speak(rest)];
        }
        let plans = self.plan_scripted(p);
        // `{name}` in a scripted answer: what the caller said their name was, as far as
        // this session's conversation knows it (a model can only use its context).
        plans
            .into_iter()
            .map(|plan| match plan {
                OutPlan::Speak(t) if t.contains("{name}") => {
                    OutPlan::Speak(match self.caller_name() {
                        Some(name) => t.replace("{name}", &name),
                        None => script::NO_NAME_REPLY.to_owned(),
                    })
                }
                other => other,
            })
            .collect()
    }

    /// The name the caller gave ("my name is …") in any user item of the conversation.
    fn caller_name(&self) -> Option<String> {
        self.items.iter().rev().find_map(|i| {
            let text = match &i.kind {
                ItemKind::UserAudio {
                    transcript: Some(t),
                    ..
                } => t.as_str(),
                ItemKind::Client {
                    user_text: Some(t), ..
                } => t.as_str(),
                _ => return None,
            };
            script::name_in(text)
        })
    }

    /// After a reconnect the client seeds an assistant text item cut short (ending in
    /// `—`) and a system note: a model continues the sentence. The simulator says the
    /// rest of the scripted answer that begins with the cut text.
    fn resumed_answer(&self) -> Option<String> {
        let last = self.items.last()?;
        let ItemKind::Client { json, .. } = &last.kind else {
            return None;
        };
        if json.get("role").and_then(Value::as_str) != Some("system") {
            return None;
        }
        let prev = self.items.iter().rev().nth(1)?;
        let ItemKind::Client { json, .. } = &prev.kind else {
            return None;
        };
        if json.get("role").and_then(Value::as_str) != Some("assistant") {
            return None;
        }
        let text = json
            .pointer("/content/0/text")
            .and_then(Value::as_str)?
            .strip_suffix('—')?
            .trim_end();
        let name = self.caller_name();
        self.cfg.script.iter().find_map(|turn| {
            let agent = turn.agent.as_deref()?;
            let full = match &name {
                Some(n) => agent.replace("{name}", n),
                None => agent.to_owned(),
            };
            full.strip_prefix(text)
                .map(|rest| rest.trim().to_owned())
                .filter(|rest| !rest.is_empty())
        })
    }

    fn plan_scripted(&self, p: &ResponseParams) -> Vec<OutPlan> {
        let prompt = if p.in_conversation {
            self.prompt()
        } else {
            Prompt::Nothing
        };
        let tools = &p.tools;
        let calls_allowed = p.tool_choice.as_str() != Some("none");
        script::plan(p.instructions.as_deref(), prompt, |name| {
            calls_allowed
                && tools.iter().any(|t| {
                    t.get("type").and_then(Value::as_str) == Some("function")
                        && t.get("name").and_then(Value::as_str) == Some(name)
                })
        })
    }

    /// What the last conversation item asks the model to answer.
    fn prompt(&self) -> Prompt<'_> {
        let Some(last) = self.items.last() else {
            return Prompt::Nothing;
        };
        match &last.kind {
            ItemKind::UserAudio { idle: true, .. } => Prompt::Idle,
            ItemKind::UserAudio { turn, .. } => {
                Prompt::CallerAudio(turn.and_then(|t| self.cfg.script.get(t)))
            }
            ItemKind::Client {
                user_text: Some(t), ..
            } => Prompt::UserText(t),
            ItemKind::FunctionOutput { call_id, output } => {
                let template = self.items.iter().find_map(|i| match &i.kind {
                    ItemKind::FunctionCall {
                        call_id: c,
                        template,
                        ..
                    } if c == call_id => Some(template.as_deref()),
                    _ => None,
                });
                Prompt::FunctionOutput {
                    template: template.flatten(),
                    output,
                }
            }
            _ => Prompt::Nothing,
        }
    }

    fn start_response(&mut self, p: ResponseParams, plans: Vec<OutPlan>, now: Instant) {
        self.idle_at = None;
        let id = protocol::random_id("resp_");
        let input_text = self.ctx.text
            + protocol::text_tokens(self.conf.instructions.len())
            + p.instructions
                .as_deref()
                .map_or(0, |i| protocol::text_tokens(i.len()));
        let input_audio = self.ctx.audio;
        // Prompt caching applies to prefixes of 1024+ tokens, in 64-token steps.
        let cached = if self.ctx.last_input >= 1024 {
            self.ctx.last_input.min(input_text + input_audio) / 64 * 64
        } else {
            0
        };
        let cached_text = cached.min(input_text);
        let usage = Usage {
            input_text,
            input_audio,
            cached_text,
            cached_audio: (cached - cached_text).min(input_audio),
            ..Usage::default()
        };
        self.ctx.last_input = input_text + input_audio;
        // A non-finite speed from a config file means "as fast as possible", not a panic.
        let interval = Duration::try_from_secs_f64(
            f64::from(self.cfg.delta_ms.max(1)) / 1000.0 / self.cfg.speed.max(0.01),
        )
        .unwrap_or(Duration::ZERO);
        let log_index = {
            let mut log = self.log.lock();
            log.responses.push(ResponseLog {
                response_id: id.clone(),
                item_id: String::new(),
                text: String::new(),
                generated_ms: 0,
                status: "in_progress".to_owned(),
                function_calls: Vec::new(),
            });
            log.responses.len() - 1
        };
        let g = Generation {
            id,
            in_conversation: p.in_conversation,
            audio: p.audio,
            format: p.format,
            voice: p.voice,
            max_output_tokens: p.max_output_tokens,
            metadata: p.metadata,
            plans: plans.into(),
            current: None,
            next_output_index: 0,
            outputs: Vec::new(),
            next_tick: now,
            interval,
            usage,
            out_text_chars: 0,
            out_audio_ms: 0,
            log_index,
            spoken: String::new(),
            first_item_id: None,
            first_audio_at: None,
        };
        let v = self.response_json(&g, "in_progress", Value::Null, false);
        self.active = Some(g);
        self.emit(json!({"type": "response.created", "response": v}));
        // The real API reports limits at the start of every response; clients must cope.
        let used = self.ctx.last_input;
        self.emit(json!({"type": "rate_limits.updated", "rate_limits": [
            {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
            {"name": "tokens", "limit": 40000, "remaining": 40000u64.saturating_sub(used),
             "reset_seconds": 0.6},
        ]}));
    }

    fn response_json(&self, g: &Generation, status: &str, details: Value, done: bool) -> Value {
        let mut usage = g.usage;
        usage.output_text = protocol::text_tokens(g.out_text_chars);
        usage.output_audio = protocol::output_audio_tokens(g.out_audio_ms);
        json!({
            "object": "realtime.response",
            "id": g.id,
            "status": status,
            "status_details": details,
            "output": if done { Value::Array(g.outputs.clone()) } else { json!([]) },
            "conversation_id": if g.in_conversation { json!(self.conversation_id) } else { Value::Null },
            "output_modalities": [if g.audio { "audio" } else { "text" }],
            "max_output_tokens": g.max_output_tokens,
            "audio": {"output": {"format": g.format.to_json(), "voice": g.voice}},
            "usage": if done { usage.to_json() } else { Value::Null },
            "metadata": g.metadata,
        })
    }

    /// Generates everything due by `now`.
    pub(super) fn tick_response(&mut self, now: Instant) {
        while let Some(g) = &mut self.active {
            if g.next_tick > now || self.dropped {
                break;
            }
            g.next_tick += g.interval;
            self.step(now);
        }
    }

    /// One tick of output: starts the next item or advances the current one.
    fn step(&mut self, now: Instant) {
        let Some(g) = self.active.as_mut() else {
            return;
        };
        if g.current.is_none() {
            match g.plans.pop_front() {
                None => {
                    self.finish_response("completed", Value::Null, now);
                    return;
                }
                Some(plan) => self.start_item(plan),
            }
        }
        self.advance_item(now);
    }

    fn start_item(&mut self, plan: OutPlan) {
        let Some(g) = self.active.as_mut() else {
            return;
        };
        let output_index = g.next_output_index;
        g.next_output_index += 1;
        let response_id = g.id.clone();
        let in_conversation = g.in_conversation;
        let audio = g.audio;
        let item_id = protocol::random_id("item_");
        if g.first_item_id.is_none() {
            g.first_item_id = Some(item_id.clone());
        }
        let (item_json, kind, current) = match plan {
            OutPlan::Speak(text) => {
                let chars = text.chars().count() as u64;
                let ms = (chars * u64::from(self.cfg.ms_per_char)).max(MIN_ITEM_MS);
                let chunks_total = ms.div_ceil(u64::from(self.bank.delta_ms()));
                (
                    assistant_json(&item_id, "in_progress", audio, None),
                    ItemKind::Assistant {
                        text: String::new(),
                        audio,
                        generated_ms: 0,
                        status: "in_progress",
                    },
                    Current::Message {
                        item_id: item_id.clone(),
                        output_index,
                        word_ends: script::word_ends(&text),
                        text,
                        words_sent: 0,
                        chunks_total,
                        chunks_sent: 0,
                    },
                )
            }
            OutPlan::Call {
                name,
                arguments,
                template,
            } => {
                let call_id = protocol::random_id("call_");
                (
                    json!({
                        "id": item_id,
                        "object": "realtime.item",
                        "type": "function_call",
                        "status": "in_progress",
                        "name": name,
                        "call_id": call_id,
                        "arguments": "",
                    }),
                    ItemKind::FunctionCall {
                        call_id: call_id.clone(),
                        name: name.clone(),
                        arguments: arguments.clone(),
                        template,
                    },
                    Current::Call {
                        item_id: item_id.clone(),
                        output_index,
                        call_id,
                        name,
                        arguments,
                        sent: 0,
                    },
                )
            }
        };
        let is_message = matches!(current, Current::Message { .. });
        let previous = self.last_item_id();
        if in_conversation {
            self.items.push(Item {
                id: item_id.clone(),
                kind,
            });
        }
        if let Some(g) = self.active.as_mut() {
            g.current = Some(current);
        }
        self.emit(json!({
            "type": "response.output_item.added",
            "response_id": response_id,
            "output_index": output_index,
            "item": item_json,
        }));
        if in_conversation {
            self.emit(json!({"type": "conversation.item.added", "previous_item_id": previous, "item": item_json}));
        }
        if is_message {
            let part = empty_part(audio);
            self.emit(json!({
                "type": "response.content_part.added",
                "response_id": response_id,
                "item_id": item_id,
                "output_index": output_index,
                "content_index": 0,
                "part": part,
            }));
        }
    }

    fn advance_item(&mut self, now: Instant) {
        let Some(g) = self.active.as_mut() else {
            return;
        };
        match &g.current {
            Some(Current::Message { .. }) if g.audio => {
                self.send_audio_chunk(now, true);
                if let Some(Generation {
                    current:
                        Some(Current::Message {
                            chunks_sent,
                            chunks_total,
                            ..
                        }),
                    ..
                }) = &self.active
                    && chunks_sent >= chunks_total
                {
                    self.finish_message("completed");
                }
            }
            Some(Current::Message { .. }) => {
                self.send_words(usize::MAX, "response.output_text.delta");
                self.finish_message("completed");
            }
            Some(Current::Call { .. }) => self.advance_call(),
            None => {}
        }
    }

    /// Sends the next audio delta (and, with `words`, the transcript words it covers).
    fn send_audio_chunk(&mut self, now: Instant, words: bool) {
        let Some(g) = self.active.as_mut() else {
            return;
        };
        let Some(Current::Message {
            item_id,
            output_index,
            word_ends,
            chunks_total,
            chunks_sent,
            ..
        }) = &mut g.current
        else {
            return;
        };
        if *chunks_sent >= *chunks_total {
            return;
        }
        let event_id = self.ev.next_id();
        let delta = ContentDelta {
            kind: "response.output_audio.delta",
            event_id: &event_id,
            response_id: &g.id,
            item_id,
            output_index: *output_index,
            content_index: 0,
            delta: self.bank.chunk(g.format, *chunks_sent),
        };
        if let Ok(s) = serde_json::to_string(&delta) {
            self.out.push(Out::Text(s));
        }
        *chunks_sent += 1;
        let drop_here = *chunks_sent * 2 >= *chunks_total
            && self
                .drop_response
                .is_some_and(|n| n as usize == g.log_index + 1);
        if drop_here {
            self.dropped = true;
        }
        let delta_ms = u64::from(self.bank.delta_ms());
        g.out_audio_ms += delta_ms;
        g.first_audio_at.get_or_insert(now);
        let generated = *chunks_sent * delta_ms;
        let due = (word_ends.len() as u64 * *chunks_sent).div_ceil(*chunks_total) as usize;
        if let Some(ItemKind::Assistant { generated_ms, .. }) =
            conversation_item(&mut self.items, item_id)
        {
            *generated_ms = generated;
        }
        if words {
            self.send_words(due, "response.output_audio_transcript.delta");
        }
    }

    /// Sends transcript/text deltas word by word up to `due` words.
    fn send_words(&mut self, due: usize, kind: &'static str) {
        let Some(g) = self.active.as_mut() else {
            return;
        };
        let Some(Current::Message {
            item_id,
            output_index,
            text,
            word_ends,
            words_sent,
            ..
        }) = &mut g.current
        else {
            return;
        };
        let due = due.min(word_ends.len());
        while *words_sent < due {
            let start = words_sent.checked_sub(1).map_or(0, |w| word_ends[w]);
            let end = word_ends[*words_sent];
            let event_id = self.ev.next_id();
            let delta = ContentDelta {
                kind,
                event_id: &event_id,
                response_id: &g.id,
                item_id,
                output_index: *output_index,
                content_index: 0,
                delta: &text[start..end],
            };
            if let Ok(s) = serde_json::to_string(&delta) {
                self.out.push(Out::Text(s));
            }
            *words_sent += 1;
        }
    }

    /// Closes the current message item with its done events.
    fn finish_message(&mut self, status: &'static str) {
        let Some(g) = self.active.as_mut() else {
            return;
        };
        let Some(Current::Message {
            item_id,
            output_index,
            text,
            word_ends,
            words_sent,
            ..
        }) = g.current.take()
        else {
            return;
        };
        let said = match words_sent.checked_sub(1) {
            Some(w) => text[..word_ends[w]].trim_end().to_owned(),
            None => String::new(),
        };
        let audio = g.audio;
        let in_conversation = g.in_conversation;
        let response_id = g.id.clone();
        g.out_text_chars += said.len();
        if !g.spoken.is_empty() {
            g.spoken.push(' ');
        }
        g.spoken.push_str(&said);
        let item = assistant_json(&item_id, status, audio, Some(&said));
        g.outputs.push(item.clone());
        if let Some(ItemKind::Assistant {
            text: t, status: s, ..
        }) = conversation_item(&mut self.items, &item_id)
        {
            *t = said.clone();
            *s = status;
        }
        let common = |kind: &str| {
            json!({
                "type": kind,
                "response_id": response_id,
                "item_id": item_id,
                "output_index": output_index,
                "content_index": 0,
            })
        };
        if audio {
            self.emit(common("response.output_audio.done"));
            let mut t = common("response.output_audio_transcript.done");
            t["transcript"] = json!(said);
            self.emit(t);
            let mut p = common("response.content_part.done");
            p["part"] = json!({"type": "audio", "transcript": said});
            self.emit(p);
        } else {
            let mut t = common("response.output_text.done");
            t["text"] = json!(said);
            self.emit(t);
            let mut p = common("response.content_part.done");
            p["part"] = json!({"type": "text", "text": said});
            self.emit(p);
        }
        self.emit_item_done(&response_id, output_index, item, in_conversation);
    }

    fn emit_item_done(&mut self, response_id: &str, output_index: usize, item: Value, conv: bool) {
        self.emit(json!({
            "type": "response.output_item.done",
            "response_id": response_id,
            "output_index": output_index,
            "item": item,
        }));
        if conv {
            let previous = self
                .items
                .iter()
                .position(|i| Some(i.id.as_str()) == item.get("id").and_then(Value::as_str))
                .and_then(|p| p.checked_sub(1))
                .and_then(|p| self.items.get(p))
                .map_or(Value::Null, |i| json!(i.id));
            self.emit(json!({"type": "conversation.item.done", "previous_item_id": previous, "item": item}));
        }
    }

    fn advance_call(&mut self) {
        let Some(g) = self.active.as_mut() else {
            return;
        };
        let Some(Current::Call {
            item_id,
            output_index,
            call_id,
            arguments,
            sent,
            ..
        }) = &mut g.current
        else {
            return;
        };
        if *sent < arguments.len() {
            let mut end = (*sent + ARG_CHUNK).min(arguments.len());
            while !arguments.is_char_boundary(end) {
                end += 1;
            }
            let v = json!({
                "type": "response.function_call_arguments.delta",
                "response_id": g.id,
                "item_id": item_id,
                "output_index": output_index,
                "call_id": call_id,
                "delta": &arguments[*sent..end],
            });
            *sent = end;
            self.emit(v);
            return;
        }
        self.finish_call("completed");
    }

    fn finish_call(&mut self, status: &str) {
        let Some(g) = self.active.as_mut() else {
            return;
        };
        let Some(Current::Call {
            item_id,
            output_index,
            call_id,
            name,
            arguments,
            ..
        }) = g.current.take()
        else {
            return;
        };
        let response_id = g.id.clone();
        g.out_text_chars += arguments.len();
        let in_conversation = g.in_conversation;
        let complete = status == "completed";
        let item = json!({
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": status,
            "name": name,
            "call_id": call_id,
            "arguments": if complete { arguments.as_str() } else { "" },
        });
        g.outputs.push(item.clone());
        if complete {
            if let Some(r) = self.log.lock().responses.get_mut(g.log_index) {
                r.function_calls.push((name.clone(), arguments.clone()));
            }
            self.emit(json!({
                "type": "response.function_call_arguments.done",
                "response_id": response_id,
                "item_id": item_id,
                "output_index": output_index,
                "call_id": call_id,
                "name": name,
                "arguments": arguments,
            }));
        } else if let Some(ItemKind::FunctionCall { call_id, .. }) =
            conversation_item(&mut self.items, &item_id)
        {
            // A call cut off mid-arguments was never made; the client must not answer it.
            call_id.clear();
        }
        self.emit_item_done(&response_id, output_index, item, in_conversation);
    }

    /// Cancels the active response: audio already in flight still arrives, then the item
    /// and the response are closed as incomplete/cancelled.
    pub(super) fn cancel_response(&mut self, reason: &str, now: Instant) {
        let Some(g) = self.active.as_ref() else {
            return;
        };
        let in_flight = matches!(g.current, Some(Current::Message { .. })) && g.audio;
        if in_flight {
            for _ in 0..self.cfg.late_deltas_after_cancel {
                self.send_audio_chunk(now, false);
            }
        }
        match self.active.as_ref().and_then(|g| g.current.as_ref()) {
            Some(Current::Message { .. }) => self.finish_message("incomplete"),
            Some(Current::Call { .. }) => self.finish_call("incomplete"),
            None => {}
        }
        self.finish_response(
            "cancelled",
            json!({"type": "cancelled", "reason": reason}),
            now,
        );
    }

    fn finish_response(&mut self, status: &str, details: Value, now: Instant) {
        let Some(g) = self.active.take() else {
            return;
        };
        let v = self.response_json(&g, status, details, true);
        self.emit(json!({"type": "response.done", "response": v}));
        if g.out_audio_ms > 0 {
            self.voice_locked = true;
        }
        self.ctx.text += protocol::text_tokens(g.out_text_chars);
        self.ctx.audio += protocol::output_audio_tokens(g.out_audio_ms);
        {
            let mut log = self.log.lock();
            if let Some(r) = log.responses.get_mut(g.log_index) {
                r.item_id = g.first_item_id.clone().unwrap_or_default();
                r.text = g.spoken.clone();
                r.generated_ms = g.out_audio_ms;
                r.status = status.to_owned();
            }
        }
        // The idle timer starts once the caller has heard the whole answer.
        let idle = self
            .conf
            .turn_detection
            .as_ref()
            .and_then(|t| t.idle_timeout_ms());
        if let (Some(idle_ms), "completed") = (idle, status) {
            let played = g.first_audio_at.map_or(Duration::ZERO, |t| now - t);
            let remaining = Duration::from_millis(g.out_audio_ms).saturating_sub(played);
            self.idle_at = Some(now + remaining + Duration::from_millis(idle_ms));
        }
    }
}

/// The tracked conversation item `id` (searched from the end: generated items are recent).
fn conversation_item<'a>(items: &'a mut [Item], id: &str) -> Option<&'a mut ItemKind> {
    items
        .iter_mut()
        .rev()
        .find(|i| i.id == id)
        .map(|i| &mut i.kind)
}
