//! `end_call`: the agent hangs up. Call control: the state machine (`call/session.rs`)
//! answers it with [`OUTPUT`] and ends the call once the goodbye has been heard.

use serde_json::{Value, json};

use super::Tool;

/// The tool's name.
pub const NAME: &str = "end_call";

/// What the model gets back.
pub const OUTPUT: &str = r#"{"ok":true}"#;

/// Its declaration.
pub const TOOL: Tool = Tool {
    name: NAME,
    description: "End the phone call. Use only after saying goodbye, when the caller has nothing more to ask.",
    parameters,
    external: false,
};

fn parameters(_agent: &switchboard_crds::AgentSpec) -> Value {
    json!({
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "Why the call ends."}},
        "required": []
    })
}
