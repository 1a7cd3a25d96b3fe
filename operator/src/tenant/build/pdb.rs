//! The gateway's PodDisruptionBudget.
//!
//! `maxUnavailable: 1` rather than `minAvailable: 1`: with one replica, `minAvailable: 1`
//! forbids every eviction and blocks node drains and cluster upgrades until someone
//! intervenes. An evicted gateway pod is not a cut call anyway: eviction is a graceful
//! termination, so its calls run on through the drain while the Deployment replaces it.
//! At most one pod at a time leaves the Service, which bounds the capacity lost.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use switchboard_crds::VoiceTenant;

use crate::labels::selector_labels;
use crate::owner::Owner;
use crate::tenant::build::BuildError;
use crate::tenant::inputs::BuildInputs;

/// Builds the PodDisruptionBudget `<tenant>-gateway`: at most one gateway pod evicted at a
/// time; pods that are not ready may always be evicted (they carry no calls and must not
/// stall a node drain).
///
/// # Errors
///
/// [`BuildError`] when the tenant lacks metadata.
pub fn build_pdb(vt: &VoiceTenant, _ctx: &BuildInputs) -> Result<PodDisruptionBudget, BuildError> {
    let owner = Owner::of(vt)?;
    Ok(PodDisruptionBudget {
        metadata: owner.meta(),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&owner.tenant)),
                match_expressions: None,
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_string()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}
