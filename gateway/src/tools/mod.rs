//! The tools the model may call, each defined in one file of this room: its name, its
//! declaration for `session.update`, and how it runs.
//!
//! Two kinds:
//! - call control ([`end_call`], [`transfer_call`]): decided inside the call's state machine
//!   (`call/session.rs`), because its effect has to wait for the audio the caller is
//!   still hearing;
//! - lookups ([`search_knowledge`]): need I/O, so they run on their own task through a
//!   [`ToolRunner`] and their output is fed back into the state machine.
//!
//! Adding a tool: a file here with its [`Tool`], listed in [`for_agent`]; a lookup also
//! gets a runner, a call-control tool its effect in the state machine.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Value, json};
use switchboard_crds::{AgentSpec, VoiceTenantSpec};

pub mod end_call;
pub mod search_knowledge;
pub mod transfer_call;

pub use search_knowledge::KnowledgeRunner;

/// A tool as `session.update` declares it to the model.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The name the model calls it by.
    pub name: &'static str,
    /// When the model should use it.
    pub description: &'static str,
    /// JSON schema of its arguments for an agent (built on demand: `json!` is not const,
    /// and some depend on the agent, e.g. the transfer targets).
    pub parameters: fn(&AgentSpec) -> Value,
    /// Answered by a [`ToolRunner`] on its own task, not by the state machine.
    pub external: bool,
}

impl Tool {
    /// The `tools[]` entry of `session.update`.
    pub fn declaration(&self, agent: &AgentSpec) -> Value {
        json!({
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": (self.parameters)(agent),
        })
    }
}

/// The tools `agent` has, in declaration order; `knowledge`: a knowledge base it may
/// search is loaded.
pub fn for_agent(agent: &AgentSpec, knowledge: bool) -> Vec<&'static Tool> {
    let mut tools = vec![&end_call::TOOL];
    if knowledge {
        tools.push(&search_knowledge::TOOL);
    }
    if !agent.transfer.is_empty() {
        tools.push(&transfer_call::TOOL);
    }
    tools
}

/// The `tools` array of `session.update` for `tools` of `agent`.
pub fn declarations(tools: &[&Tool], agent: &AgentSpec) -> Value {
    Value::Array(tools.iter().map(|t| t.declaration(agent)).collect())
}

/// The names of the `tools` a [`ToolRunner`] answers.
pub fn external_names(tools: &[&Tool]) -> Vec<String> {
    tools
        .iter()
        .filter(|t| t.external)
        .map(|t| t.name.to_string())
        .collect()
}

/// Runs a tool call for a tenant and returns the output for the model (JSON text). Errors
/// are outputs too (`{"error": …}`): the model should hear that a lookup failed.
pub trait ToolRunner: Send + Sync + 'static {
    /// Runs `name` with `arguments` (JSON text as the model sent it) for the tenant
    /// named `tenant`, whose manifest is `spec`.
    fn run(
        &self,
        tenant: &str,
        spec: &VoiceTenantSpec,
        name: &str,
        arguments: &str,
    ) -> Pin<Box<dyn Future<Output = String> + Send>>;
}

/// The output for a tool this gateway cannot run.
pub(crate) fn not_available(name: &str) -> String {
    json!({ "error": format!("tool {name:?} is not available") }).to_string()
}

/// The runner of a gateway whose tenants declare no external tools: any call is
/// answered with an error the model can relay.
#[derive(Debug, Default)]
pub struct NoExternalTools;

impl ToolRunner for NoExternalTools {
    fn run(
        &self,
        _tenant: &str,
        _spec: &VoiceTenantSpec,
        name: &str,
        _arguments: &str,
    ) -> Pin<Box<dyn Future<Output = String> + Send>> {
        let output = not_available(name);
        Box::pin(async move { output })
    }
}
