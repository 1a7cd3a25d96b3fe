//! Switchboard API types.
//!
//! `VoiceTenant` describes one business: its phone numbers, its agent, where its secrets
//! live and how its gateway runs. The same manifest is read by the operator (in a cluster)
//! and by `gateway --tenant FILE` (on a laptop), so everything here is plain data: defaults
//! and validation live next to the types and nothing performs I/O except [`load`], which
//! only parses text it is handed.

pub mod load;
pub mod secret;
pub mod tenant;
pub mod validate;

pub use load::{LoadError, parse_tenant};
pub use secret::{SecretKeySelector, SecretRef};
pub use tenant::*;
pub use validate::{FieldError, ValidationErrors};

/// The API group of every Switchboard resource.
pub const GROUP: &str = "voice.switchboard.dev";
/// The API version served by this build.
pub const VERSION: &str = "v1alpha1";

/// All CRDs of this build as one multi-document YAML string (what `crdgen` prints and
/// what `crds/generated/crds.yaml` must equal).
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    use kube::CustomResourceExt;
    let mut out = String::new();
    for crd in [VoiceTenant::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}
