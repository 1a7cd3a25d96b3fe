//! `conversation.item.*` client events: create, retrieve, delete, truncate.

use super::log::TruncateLog;
use super::protocol::{self, ApiError};
use super::script;
use super::session::{Item, ItemKind, Session, expect_keys};
use super::wire::assistant_json;
use serde_json::{Value, json};

impl Item {
    /// The item as the server reports it (never with audio bytes).
    pub(super) fn to_json(&self) -> Value {
        match &self.kind {
            ItemKind::UserAudio { transcript, .. } => json!({
                "id": self.id,
                "object": "realtime.item",
                "type": "message",
                "status": "completed",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": transcript}],
            }),
            ItemKind::Client { json, .. } => json.clone(),
            ItemKind::Assistant {
                text,
                audio,
                status,
                ..
            } => assistant_json(&self.id, status, *audio, Some(text)),
            ItemKind::FunctionCall {
                call_id,
                name,
                arguments,
                ..
            } => json!({
                "id": self.id,
                "object": "realtime.item",
                "type": "function_call",
                "status": "completed",
                "name": name,
                "call_id": call_id,
                "arguments": arguments,
            }),
            ItemKind::FunctionOutput { call_id, output } => json!({
                "id": self.id,
                "object": "realtime.item",
                "type": "function_call_output",
                "status": "completed",
                "call_id": call_id,
                "output": output,
            }),
        }
    }
}

fn str_field<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a str, ApiError> {
    match v.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ApiError::missing(path)),
        Some(_) => Err(ApiError::invalid_type(path, "a string")),
    }
}

impl Session {
    fn find_item(&self, id: &str) -> Option<usize> {
        self.items.iter().rposition(|i| i.id == id)
    }

    fn item_id_param<'a>(&self, event: &'a Value) -> Result<(&'a str, usize), ApiError> {
        let id = str_field(event, "item_id", "item_id")?;
        let idx = self.find_item(id).ok_or_else(|| {
            ApiError::invalid_value(
                "item_id",
                format!("Conversation item with id '{id}' does not exist."),
            )
        })?;
        Ok((id, idx))
    }

    pub(super) fn item_create(&mut self, event: &Value) -> Result<(), ApiError> {
        expect_keys(event, &["item", "previous_item_id"])?;
        let item = event.get("item").ok_or_else(|| ApiError::missing("item"))?;
        let obj = item
            .as_object()
            .ok_or_else(|| ApiError::invalid_type("item", "an object"))?;
        let id = match obj.get("id") {
            Some(Value::String(id)) if !id.is_empty() => {
                if self.find_item(id).is_some() {
                    return Err(ApiError::invalid_value(
                        "item.id",
                        format!("Item with id '{id}' already exists."),
                    ));
                }
                id.clone()
            }
            None | Some(Value::Null) => protocol::random_id("item_"),
            Some(_) => return Err(ApiError::invalid_type("item.id", "a string")),
        };
        let kind = match str_field(item, "type", "item.type")? {
            "message" => message_kind(item, &id)?,
            "function_call_output" => {
                let call_id = str_field(item, "call_id", "item.call_id")?.to_owned();
                let output = str_field(item, "output", "item.output")?.to_owned();
                let known = self.items.iter().any(|i| {
                    matches!(&i.kind, ItemKind::FunctionCall { call_id: c, .. } if *c == call_id)
                });
                if !known {
                    return Err(ApiError::invalid_value(
                        "item.call_id",
                        format!(
                            "No tool call found for function call output with call_id {call_id}."
                        ),
                    ));
                }
                self.log
                    .lock()
                    .function_outputs
                    .push((call_id.clone(), output.clone()));
                ItemKind::FunctionOutput { call_id, output }
            }
            "function_call" => ItemKind::FunctionCall {
                call_id: str_field(item, "call_id", "item.call_id")?.to_owned(),
                name: str_field(item, "name", "item.name")?.to_owned(),
                arguments: str_field(item, "arguments", "item.arguments")?.to_owned(),
                template: None,
            },
            other => {
                return Err(ApiError::invalid_value(
                    "item.type",
                    format!(
                        "Invalid value: '{other}'. Supported values are: 'message', 'function_call', 'function_call_output'."
                    ),
                ));
            }
        };
        if let ItemKind::Client {
            user_text: Some(t), ..
        } = &kind
        {
            self.log.lock().user_texts.push(t.clone());
            // A conversation replayed as text (a reconnect) has already had this scripted
            // caller turn: the next speech is the turn after it.
            if self
                .cfg
                .script
                .get(self.script_pos)
                .is_some_and(|turn| turn.caller == *t)
            {
                self.script_pos += 1;
            }
        }
        self.ctx.text += protocol::text_tokens(item.to_string().len() / 2);
        self.idle_at = None;
        let previous = self.last_item_id();
        let item = Item { id, kind };
        let v = item.to_json();
        self.items.push(item);
        self.emit(
            json!({"type": "conversation.item.added", "previous_item_id": previous, "item": v}),
        );
        self.emit(
            json!({"type": "conversation.item.done", "previous_item_id": previous, "item": v}),
        );
        Ok(())
    }

    pub(super) fn item_retrieve(&mut self, event: &Value) -> Result<(), ApiError> {
        expect_keys(event, &["item_id"])?;
        let (_, idx) = self.item_id_param(event)?;
        let v = self.items[idx].to_json();
        self.emit(json!({"type": "conversation.item.retrieved", "item": v}));
        Ok(())
    }

    pub(super) fn item_delete(&mut self, event: &Value) -> Result<(), ApiError> {
        expect_keys(event, &["item_id"])?;
        let (id, idx) = self.item_id_param(event)?;
        let id = id.to_owned();
        self.items.remove(idx);
        self.emit(json!({"type": "conversation.item.deleted", "item_id": id}));
        Ok(())
    }

    pub(super) fn item_truncate(&mut self, event: &Value) -> Result<(), ApiError> {
        expect_keys(event, &["item_id", "content_index", "audio_end_ms"])?;
        let id = str_field(event, "item_id", "item_id")?.to_owned();
        let content_index = int_field(event, "content_index")?;
        let audio_end_ms = int_field(event, "audio_end_ms")?;
        let mut entry = TruncateLog {
            item_id: id.clone(),
            audio_end_ms,
            generated_ms: 0,
            accepted: false,
        };
        let result = self.truncate(&id, content_index, audio_end_ms, &mut entry);
        self.log.lock().truncates.push(entry);
        result
    }

    fn truncate(
        &mut self,
        id: &str,
        content_index: u64,
        audio_end_ms: u64,
        entry: &mut TruncateLog,
    ) -> Result<(), ApiError> {
        let idx = self.find_item(id).ok_or_else(|| {
            ApiError::invalid_value(
                "item_id",
                format!("Conversation item with id '{id}' does not exist."),
            )
        })?;
        let Item {
            kind:
                ItemKind::Assistant {
                    text,
                    audio: true,
                    generated_ms,
                    ..
                },
            ..
        } = &mut self.items[idx]
        else {
            return Err(ApiError::invalid_value(
                "item_id",
                "Only model output audio messages can be truncated",
            ));
        };
        entry.generated_ms = *generated_ms;
        if content_index != 0 {
            return Err(ApiError::invalid_value(
                "content_index",
                format!("Item '{id}' has no audio content at index {content_index}."),
            ));
        }
        if audio_end_ms > *generated_ms {
            return Err(ApiError::invalid_value(
                "audio_end_ms",
                format!(
                    "Audio content of {}ms is already shorter than {audio_end_ms}ms",
                    *generated_ms
                ),
            ));
        }
        *text = script::cut_transcript(text, audio_end_ms, *generated_ms);
        *generated_ms = audio_end_ms;
        entry.accepted = true;
        self.emit(json!({
            "type": "conversation.item.truncated",
            "item_id": id,
            "content_index": content_index,
            "audio_end_ms": audio_end_ms,
        }));
        Ok(())
    }
}

fn int_field(v: &Value, key: &str) -> Result<u64, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Err(ApiError::missing(key)),
        Some(x) => x
            .as_u64()
            .ok_or_else(|| ApiError::invalid_type(key, "a non-negative integer")),
    }
}

/// Validates a client-created message and classifies it.
fn message_kind(item: &Value, id: &str) -> Result<ItemKind, ApiError> {
    let role = str_field(item, "role", "item.role")?;
    let content = item
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::missing("item.content"))?;
    let allowed: &[&str] = match role {
        "user" => &["input_text", "input_audio", "input_image"],
        "system" => &["input_text"],
        "assistant" => &["output_text"],
        other => {
            return Err(ApiError::invalid_value(
                "item.role",
                format!(
                    "Invalid value: '{other}'. Supported values are: 'user', 'assistant', 'system'."
                ),
            ));
        }
    };
    let mut texts = Vec::new();
    for (i, part) in content.iter().enumerate() {
        let path = format!("item.content[{i}].type");
        let kind = str_field(part, "type", &path)?;
        if !allowed.contains(&kind) {
            return Err(ApiError::invalid_value(
                &path,
                format!("Invalid content type '{kind}' for a {role} message."),
            ));
        }
        if kind == "input_text" {
            texts.push(str_field(part, "text", &format!("item.content[{i}].text"))?.to_owned());
        }
    }
    let mut json = item.clone();
    if let Some(obj) = json.as_object_mut() {
        obj.insert("id".into(), json!(id));
        obj.insert("object".into(), json!("realtime.item"));
        obj.insert("status".into(), json!("completed"));
    }
    let user_text = (role == "user" && !texts.is_empty()).then(|| texts.join(" "));
    Ok(ItemKind::Client { json, user_text })
}
