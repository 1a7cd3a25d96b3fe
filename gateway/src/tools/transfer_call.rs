//! `transfer_call`: the agent hands the caller to a person (`spec.agent.transfer`).
//! Call control: the state machine (`call/session.rs`) answers it, lets the model say its
//! hand-off sentence, waits until the caller has heard it, then asks the call task to
//! move the call to `<Dial>` (see `docs/architecture.md`, "Transfer").

use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_crds::AgentSpec;

use super::Tool;

/// The tool's name.
pub const NAME: &str = "transfer_call";

/// Its declaration (declared only when the agent has transfer targets).
pub const TOOL: Tool = Tool {
    name: NAME,
    description: "Transfer the caller to a person. Use it when the caller asks for a person, or when you cannot help and one of the targets can. After calling it, tell the caller in one short sentence that you are connecting them now.",
    parameters,
    external: false,
};

fn parameters(agent: &AgentSpec) -> Value {
    let names: Vec<&str> = agent.transfer.iter().map(|t| t.name.as_str()).collect();
    let guide: Vec<String> = agent
        .transfer
        .iter()
        .map(|t| format!("{}: {}", t.name, t.description))
        .collect();
    json!({
        "type": "object",
        "properties": {
            "target": {
                "type": "string",
                "enum": names,
                "description": format!("Who to transfer to. {}", guide.join("; ")),
            },
            "reason": {"type": "string", "description": "Why, in a few words (kept with the call record)."}
        },
        "required": ["target"]
    })
}

/// The model's arguments.
#[derive(Debug, Deserialize)]
struct Arguments {
    target: String,
}

/// What the state machine does with a `transfer_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Transfer to this target once the hand-off sentence has been heard; the output
    /// tells the model to say it.
    Transfer {
        /// The target's name.
        target: String,
        /// For the model.
        output: String,
    },
    /// Refused (unknown target, bad arguments, a transfer already under way); the output
    /// tells the model why.
    Refuse {
        /// For the model.
        output: String,
    },
}

/// Decides a `transfer_call` with `arguments` (the model's JSON text) for an agent whose
/// targets are named `targets`.
pub fn decide(arguments: &str, targets: &[String]) -> Decision {
    let refuse = |why: String| Decision::Refuse {
        output: json!({"ok": false, "error": why}).to_string(),
    };
    let args: Arguments = match serde_json::from_str(arguments) {
        Ok(a) => a,
        Err(_) => {
            return refuse(format!(
                "arguments must be {{\"target\": one of {targets:?}}}"
            ));
        }
    };
    if !targets.contains(&args.target) {
        return refuse(format!(
            "unknown target {:?}; the targets are {targets:?}",
            args.target
        ));
    }
    Decision::Transfer {
        output: json!({
            "ok": true,
            "status": "transferring",
            "instructions": "Tell the caller in one short sentence that you are connecting them now. Do not ask anything else: the call moves as soon as you finish."
        })
        .to_string(),
        target: args.target,
    }
}

/// The output for a second `transfer_call` while one is under way.
pub fn already_transferring() -> String {
    json!({"ok": false, "error": "a transfer is already under way"}).to_string()
}

/// The system note a return leg starts with after a transfer nobody answered.
pub fn failed_note(target: &str, dial_status: &str) -> String {
    format!(
        "The caller was transferred to {target}, but the transfer failed ({dial_status}): nobody took the call. The caller is back with you now. Apologise briefly that {target} could not be reached, and offer to take a message or help another way."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_targets_transfer_anything_else_is_refused() {
        let targets = vec!["sales".to_string(), "front-desk".to_string()];
        assert!(matches!(
            decide(r#"{"target":"sales","reason":"pricing"}"#, &targets),
            Decision::Transfer { target, .. } if target == "sales"
        ));
        for bad in [r#"{"target":"ceo"}"#, "{}", "not json", r#"{"target":7}"#] {
            assert!(
                matches!(decide(bad, &targets), Decision::Refuse { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn declaration_lists_targets_as_an_enum() {
        let agent: AgentSpec = serde_json::from_value(json!({
            "transfer": [{"name": "sales", "number": "+15551230001", "description": "pricing"}]
        }))
        .unwrap_or_default();
        let p = parameters(&agent);
        assert_eq!(p["properties"]["target"]["enum"], json!(["sales"]));
        assert!(
            p["properties"]["target"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("sales: pricing"))
        );
    }
}
