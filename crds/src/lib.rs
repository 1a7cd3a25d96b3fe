//! Switchboard API types.
//!
//! `VoiceTenant` describes one business: its phone numbers, its agent, where its secrets
//! live and how its gateway runs. `KnowledgeBase` describes documents a tenant's agent may
//! answer from and how they are indexed and searched. The same manifests are read by the
//! operator (in a cluster) and by the gateway (on a laptop), so everything here is plain
//! data: defaults and validation live next to the types and nothing performs I/O; [`load`]
//! only parses text it is handed.

pub mod endpoint;
pub mod format;
pub mod knowledge;
pub mod limits;
pub mod load;
mod schema;
pub mod secret;
pub mod session_options;
pub mod tenant;
pub mod validate;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

pub use knowledge::*;
pub use load::{LoadError, parse_knowledge_base, parse_tenant};
pub use secret::{AwsSecretsManagerRef, SecretKeySelector, SecretRef};
pub use session_options::*;
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

/// Where the Helm chart's CRD template is committed, relative to the workspace root.
pub const CHART_CRDS_PATH: &str = "charts/switchboard/templates/crds/crds.yaml";

/// Annotation on the chart's CRDs: `helm uninstall` leaves them (and so every tenant) in
/// place; deleting them is a deliberate `kubectl delete crd`.
pub const HELM_RESOURCE_POLICY: (&str, &str) = ("helm.sh/resource-policy", "keep");

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

/// All CRDs of this build as the Helm chart's template (what `crdgen --chart` prints and
/// what [`CHART_CRDS_PATH`] must equal): the documents of [`crd_yaml`] annotated with
/// [`HELM_RESOURCE_POLICY`], rendered only when the value `crds.create` is true. Any `{{`
/// in the text (a description, a pattern) is escaped so Helm prints it as is.
pub fn chart_crd_template() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::from(
        "{{- /*\n\
         Generated from the Rust types in crds/ by crdgen: do not edit. Regenerate from the\n\
         workspace root with\n\
         \n    cargo run -p switchboard-crds --bin crdgen -- --chart > charts/switchboard/templates/crds/crds.yaml\n\
         \n\
         (a test fails while this file is stale).\n\
         */}}\n\
         {{- if .Values.crds.create }}\n",
    );
    for mut crd in crds() {
        let (key, value) = HELM_RESOURCE_POLICY;
        crd.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.to_string());
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?.replace("{{", "{{ \"{{\" }}"));
    }
    out.push_str("{{- end }}\n");
    Ok(out)
}
