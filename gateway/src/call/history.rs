//! The conversation so far → the Realtime client events that seed a new session.
//!
//! A Realtime session cannot be renewed (60-minute limit, a dropped socket, a fatal
//! error) and a call that comes back from a failed transfer starts a new one: either way
//! the new session must know what was said. `conversation.item.create` can add user and
//! assistant **text** items, system messages and function calls with their outputs, but
//! not assistant audio (voice-protocols.md A5), so every turn is replayed as text:
//!
//! - caller turn → `message` / `user` / `input_text`
//! - agent turn → `message` / `assistant` / `output_text` (GA content type; the beta
//!   `text` is refused); a turn the caller cut short ends with an em dash so the model
//!   sees it was not finished
//! - tool call → `function_call` item, then its `function_call_output` when there is
//!   one (a call still running when the old session ended gets its output later, on the
//!   new session, which then knows the `call_id`)
//! - an optional note (what just happened: "the transfer failed") → one `system` message
//!   after the history
//!
//! The seed is bounded: the newest turns that fit in [`MAX_SEED_CHARS`] are kept, each
//! text is cut at [`MAX_ITEM_CHARS`], and a system message says how many earlier turns
//! were left out. Pure: no I/O, no clock.

use serde_json::{Value, json};
use switchboard_store::{Role, ToolCallRecord, TranscriptEntry};

/// Text replayed into a new session at most (≈ 8k tokens): the context a caller would
/// expect the agent to remember without making the reconnect slow or expensive.
pub const MAX_SEED_CHARS: usize = 32_000;
/// Longest single text replayed (a long knowledge-base answer is cut).
pub const MAX_ITEM_CHARS: usize = 4_000;

/// One turn of the conversation, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// What the caller said (the input transcription).
    Caller {
        /// Transcript text.
        text: String,
    },
    /// What the agent said: for an interrupted turn, only what the caller heard.
    Agent {
        /// Transcript text.
        text: String,
        /// The caller cut it short.
        interrupted: bool,
    },
    /// A function the model called.
    Tool {
        /// The model's call id (reused: ids are per session).
        call_id: String,
        /// Tool name.
        name: String,
        /// Arguments, JSON text as the model sent them.
        arguments: String,
        /// What the model was answered; `None` while the tool is still running.
        output: Option<String>,
    },
}

impl Turn {
    fn chars(&self) -> usize {
        match self {
            Turn::Caller { text } | Turn::Agent { text, .. } => text.len().min(MAX_ITEM_CHARS),
            Turn::Tool {
                name,
                arguments,
                output,
                ..
            } => {
                name.len()
                    + arguments.len().min(MAX_ITEM_CHARS)
                    + output.as_ref().map_or(0, |o| o.len().min(MAX_ITEM_CHARS))
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Turn::Caller { text } | Turn::Agent { text, .. } => text.trim().is_empty(),
            Turn::Tool { .. } => false,
        }
    }
}

/// The turns of a finished leg's record: its transcript in order, preceded by its tool
/// calls (the record keeps no time for them; placed first they are context the agent
/// already looked up, and the conversation still ends where it ended).
pub fn turns_from_record(
    transcript: &[TranscriptEntry],
    tool_calls: &[ToolCallRecord],
) -> Vec<Turn> {
    let mut entries: Vec<&TranscriptEntry> = transcript.iter().collect();
    entries.sort_by_key(|e| e.seq);
    tool_calls
        .iter()
        .map(|t| Turn::Tool {
            call_id: t.call_id.clone(),
            name: t.name.clone(),
            arguments: t.arguments.clone(),
            output: Some(t.output.clone()),
        })
        .chain(entries.into_iter().map(|e| match e.role {
            Role::Caller => Turn::Caller {
                text: e.text.clone(),
            },
            Role::Agent => Turn::Agent {
                text: e.text.clone(),
                interrupted: e.interrupted,
            },
        }))
        .collect()
}

/// The client events (JSON text, in order) that give a new session `turns` and, when
/// given, `note` as a closing system message. Send them after `session.update` and
/// before any `response.create`.
pub fn seed_events(turns: &[Turn], note: Option<&str>) -> Vec<String> {
    let turns: Vec<&Turn> = turns.iter().filter(|t| !t.is_empty()).collect();
    // Newest first until the budget is spent: the end of the call matters most.
    let mut budget = MAX_SEED_CHARS;
    let mut first = turns.len();
    while first > 0 {
        let c = turns[first - 1].chars();
        if c > budget {
            break;
        }
        budget -= c;
        first -= 1;
    }
    let mut out = Vec::with_capacity(turns.len() - first + 2);
    if first > 0 {
        out.push(create(system(&format!(
            "[{first} earlier turns of this phone call are not shown.]"
        ))));
    }
    for turn in &turns[first..] {
        match turn {
            Turn::Caller { text } => out.push(create(message("user", "input_text", &cut(text)))),
            Turn::Agent { text, interrupted } => {
                let mut t = cut(text);
                if *interrupted {
                    t.push('—');
                }
                out.push(create(message("assistant", "output_text", &t)));
            }
            Turn::Tool {
                call_id,
                name,
                arguments,
                output,
            } => {
                out.push(create(json!({
                    "type": "function_call",
                    "call_id": call_id,
                    "name": name,
                    "arguments": cut(arguments),
                })));
                if let Some(o) = output {
                    out.push(create(json!({
                        "type": "function_call_output",
                        "call_id": call_id,
                        "output": cut(o),
                    })));
                }
            }
        }
    }
    if let Some(note) = note.filter(|n| !n.trim().is_empty()) {
        out.push(create(system(&cut(note))));
    }
    out
}

fn create(item: Value) -> String {
    json!({"type": "conversation.item.create", "item": item}).to_string()
}

fn message(role: &str, content_type: &str, text: &str) -> Value {
    json!({
        "type": "message",
        "role": role,
        "content": [{"type": content_type, "text": text}],
    })
}

fn system(text: &str) -> Value {
    message("system", "input_text", text)
}

/// `text` cut to [`MAX_ITEM_CHARS`] bytes at a character boundary.
fn cut(text: &str) -> String {
    if text.len() <= MAX_ITEM_CHARS {
        return text.to_string();
    }
    let mut end = MAX_ITEM_CHARS;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut s = text[..end].to_string();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(events: &[String]) -> Vec<Value> {
        events
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect()
    }

    fn caller(t: &str) -> Turn {
        Turn::Caller { text: t.into() }
    }

    fn agent(t: &str) -> Turn {
        Turn::Agent {
            text: t.into(),
            interrupted: false,
        }
    }

    #[test]
    fn turns_become_ga_text_items_in_order_with_the_note_last() {
        let turns = vec![
            agent("Thanks for calling Acme."),
            caller("Hi, my name is Ana."),
            Turn::Tool {
                call_id: "call_1".into(),
                name: "search_knowledge_base".into(),
                arguments: r#"{"query":"hours"}"#.into(),
                output: Some(r#"{"passages":[]}"#.into()),
            },
            Turn::Agent {
                text: "We open at nine and".into(),
                interrupted: true,
            },
        ];
        let v = parse(&seed_events(&turns, Some("The transfer failed.")));
        assert_eq!(v.len(), 6);
        for e in &v {
            assert_eq!(e["type"], "conversation.item.create");
        }
        assert_eq!(v[0]["item"]["role"], "assistant");
        assert_eq!(v[0]["item"]["content"][0]["type"], "output_text");
        assert_eq!(
            v[0]["item"]["content"][0]["text"],
            "Thanks for calling Acme."
        );
        assert_eq!(v[1]["item"]["role"], "user");
        assert_eq!(v[1]["item"]["content"][0]["type"], "input_text");
        assert_eq!(v[1]["item"]["content"][0]["text"], "Hi, my name is Ana.");
        assert_eq!(v[2]["item"]["type"], "function_call");
        assert_eq!(v[2]["item"]["call_id"], "call_1");
        assert_eq!(v[2]["item"]["name"], "search_knowledge_base");
        assert_eq!(v[3]["item"]["type"], "function_call_output");
        assert_eq!(v[3]["item"]["call_id"], "call_1");
        assert_eq!(v[4]["item"]["content"][0]["text"], "We open at nine and—");
        assert_eq!(v[5]["item"]["role"], "system");
        assert_eq!(v[5]["item"]["content"][0]["text"], "The transfer failed.");
        for e in &v {
            assert!(e["item"].get("id").is_none(), "the server assigns item ids");
            assert!(e["item"].get("status").is_none());
        }
    }

    #[test]
    fn a_running_tool_call_is_declared_without_an_output() {
        let turns = vec![Turn::Tool {
            call_id: "call_9".into(),
            name: "search_knowledge_base".into(),
            arguments: "{}".into(),
            output: None,
        }];
        let v = parse(&seed_events(&turns, None));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["item"]["type"], "function_call");
    }

    #[test]
    fn empty_turns_and_blank_notes_are_skipped() {
        let v = seed_events(&[caller("  "), agent(""), caller("yes")], Some(" "));
        assert_eq!(v.len(), 1);
        assert!(seed_events(&[], None).is_empty());
    }

    #[test]
    fn long_calls_keep_the_newest_turns_within_the_budget() {
        let turns: Vec<Turn> = (0..200)
            .map(|i| caller(&format!("{i:03} {}", "x".repeat(996))))
            .collect();
        let v = parse(&seed_events(&turns, Some("note")));
        let total: usize = v
            .iter()
            .map(|e| e["item"]["content"][0]["text"].as_str().unwrap().len())
            .sum();
        assert!(total <= MAX_SEED_CHARS + 200, "{total}");
        assert_eq!(v[0]["item"]["role"], "system");
        let kept = v.len() - 2;
        assert_eq!(
            v[0]["item"]["content"][0]["text"],
            format!(
                "[{} earlier turns of this phone call are not shown.]",
                200 - kept
            )
        );
        assert!(
            v[v.len() - 2]["item"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("199 ")
        );
        assert_eq!(v[v.len() - 1]["item"]["content"][0]["text"], "note");
    }

    #[test]
    fn one_long_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_ITEM_CHARS);
        let v = parse(&seed_events(&[caller(&long)], None));
        let text = v[0]["item"]["content"][0]["text"].as_str().unwrap();
        assert!(text.len() <= MAX_ITEM_CHARS + '…'.len_utf8());
        assert!(text.ends_with('…'));
    }

    #[test]
    fn a_record_replays_tool_calls_then_the_transcript_by_seq() {
        let entry = |seq, role, text: &str| TranscriptEntry {
            seq,
            role,
            text: text.into(),
            start_ms: 0,
            end_ms: 0,
            interrupted: false,
            heard_ms: None,
        };
        let transcript = vec![
            entry(1, Role::Caller, "my name is Ana"),
            entry(0, Role::Agent, "hello"),
        ];
        let tools = vec![ToolCallRecord {
            call_id: "c".into(),
            name: "search_knowledge_base".into(),
            arguments: "{}".into(),
            output: "{}".into(),
            latency_ms: 3,
        }];
        let turns = turns_from_record(&transcript, &tools);
        assert!(matches!(
            &turns[0],
            Turn::Tool {
                output: Some(_),
                ..
            }
        ));
        assert_eq!(turns[1], agent("hello"));
        assert_eq!(turns[2], caller("my name is Ana"));
    }
}
