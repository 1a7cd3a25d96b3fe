//! Tools the model calls that need I/O (knowledge search, later transfers): run on their
//! own task, answered back into the call's state machine.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::tenants::Tenant;

/// Runs a tool call for a tenant and returns the output for the model (JSON text). Errors
/// are outputs too (`{"error": …}`): the model should hear that a lookup failed.
pub trait ToolRunner: Send + Sync + 'static {
    /// Runs `name` with `arguments` (JSON text as the model sent it).
    fn run(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
        arguments: &str,
    ) -> Pin<Box<dyn Future<Output = String> + Send>>;
}

/// The runner of a gateway whose tenants declare no external tools: any call is
/// answered with an error the model can relay.
#[derive(Debug, Default)]
pub struct NoExternalTools;

impl ToolRunner for NoExternalTools {
    fn run(
        &self,
        _tenant: &Arc<Tenant>,
        name: &str,
        _arguments: &str,
    ) -> Pin<Box<dyn Future<Output = String> + Send>> {
        let output =
            serde_json::json!({ "error": format!("tool {name:?} is not available") }).to_string();
        Box::pin(async move { output })
    }
}
