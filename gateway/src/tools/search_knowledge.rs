//! `search_knowledge_base`: the agent looks up the business's own documents. A lookup:
//! [`KnowledgeRunner`] embeds the query and searches the tenant's knowledge bases
//! ([`Knowledge`]) on its own task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use switchboard_crds::VoiceTenantSpec;

use super::{Tool, ToolRunner, not_available};
use crate::knowledge::Knowledge;

/// The tool's name.
pub const NAME: &str = "search_knowledge_base";

/// Its declaration.
pub const TOOL: Tool = Tool {
    name: NAME,
    description: "Search this business's own documents (opening hours, prices, services, policies, directions, contact details). Call it before answering any factual question about the business, and answer only from the passages it returns; if nothing relevant comes back, say you do not know.",
    parameters,
    external: true,
};

fn parameters(_agent: &switchboard_crds::AgentSpec) -> Value {
    json!({
        "type": "object",
        "properties": {"query": {"type": "string", "description": "The caller's question, rephrased as a short search query."}},
        "required": ["query"]
    })
}

/// Runs [`NAME`] calls against [`Knowledge`]; any other tool gets an error output.
pub struct KnowledgeRunner(pub Arc<Knowledge>);

impl ToolRunner for KnowledgeRunner {
    fn run(
        &self,
        tenant: &str,
        spec: &VoiceTenantSpec,
        name: &str,
        arguments: &str,
    ) -> Pin<Box<dyn Future<Output = String> + Send>> {
        let knowledge = self.0.clone();
        let tenant = tenant.to_string();
        let allowed = spec.agent.knowledge_bases.clone();
        let name = name.to_string();
        let arguments = arguments.to_string();
        Box::pin(async move {
            if name != NAME {
                return not_available(&name);
            }
            let t0 = Instant::now();
            let query = serde_json::from_str::<serde_json::Value>(&arguments)
                .ok()
                .and_then(|v| v.get("query").and_then(|q| q.as_str()).map(str::to_string))
                .filter(|q| !q.trim().is_empty());
            let Some(query) = query else {
                knowledge
                    .metrics()
                    .lookups
                    .with_label_values(&["error"])
                    .inc();
                return json!({ "error": "arguments must be an object with a non-empty \"query\" string" }).to_string();
            };
            let out = match knowledge.search(&tenant, &allowed, &query).await {
                Ok(v) => {
                    let empty = v["passages"].as_array().is_none_or(Vec::is_empty);
                    knowledge
                        .metrics()
                        .lookups
                        .with_label_values(&[if empty { "empty" } else { "hits" }])
                        .inc();
                    v.to_string()
                }
                Err(e) => {
                    knowledge
                        .metrics()
                        .lookups
                        .with_label_values(&["error"])
                        .inc();
                    tracing::warn!(tenant, error = e, "knowledge lookup failed");
                    json!({ "error": format!("knowledge lookup failed: {e}") }).to_string()
                }
            };
            knowledge
                .metrics()
                .latency
                .observe(t0.elapsed().as_secs_f64());
            out
        })
    }
}
