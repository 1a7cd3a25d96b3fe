//! Switchboard API types.
//!
//! `VoiceTenant` describes one business: its phone numbers, its agent, where its secrets
//! live and how its gateway runs. `KnowledgeBase` describes documents a tenant's agent may
//! answer from and how they are indexed and searched. The same manifests are read by the
//! operator (in a cluster) and by the gateway (on a laptop), so everything here is plain
//! data: defaults and validation live next to the types and nothing performs I/O; [`load`]
//! only parses text it is handed.

pub mod format;
pub mod knowledge;
pub mod load;
mod schema;
pub mod secret;
pub mod tenant;
pub mod validate;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

pub use knowledge::*;
pub use load::{LoadError, parse_knowledge_base, parse_tenant};
pub use secret::{SecretKeySelector, SecretRef};
pub use tenant::*;
pub use validate::{FieldError, ValidationErrors};

/// The API group of every Switchboard resource.
pub const GROUP: &str = "voice.switchboard.dev";
/// The API version served by this build.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Switchboard manifest.
pub const API_VERSION: &str = "voice.switchboard.dev/v1alpha1";

/// Where the generated CRDs are committed, relative to the workspace root.
pub const CRDS_PATH: &str = "crds/generated/crds.yaml";

/// All CustomResourceDefinitions of this build.
pub fn crds() -> Vec<CustomResourceDefinition> {
    use kube::CustomResourceExt;
    vec![VoiceTenant::crd(), KnowledgeBase::crd()]
}

/// All CRDs of this build as one multi-document YAML string (what `crdgen` prints and
/// what [`CRDS_PATH`] must equal).
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}
