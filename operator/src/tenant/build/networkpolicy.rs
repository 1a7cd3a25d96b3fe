//! The gateway's NetworkPolicy: who may reach the gateway pods, and where they may
//! connect.
//!
//! Ingress: the ingress controller's namespace to the http port (Twilio's webhooks and
//! media streams come through it) and the metrics scraper's namespace to the same port
//! (the gateway serves `/metrics` on its one listener; the Service's `metrics` port
//! targets it). Egress: DNS in `kube-system` (UDP and TCP 53), the database's port, and
//! HTTPS (443) anywhere (OpenAI's Realtime API, S3, Pinecone, Twilio's REST API). Nothing
//! else: not the API server (the gateway mounts no token), not other tenants' pods.
//!
//! Egress to the database and to 443 names a port, not an address: the database is
//! usually outside the cluster (RDS) under an address a policy cannot pin. A policy
//! only takes effect with a CNI that enforces NetworkPolicy (Calico, Cilium, the VPC CNI
//! with its network policy agent, kindnet ≥ 0.24).

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use switchboard_crds::VoiceTenant;

use super::HTTP_PORT_NAME;
use crate::labels::selector_labels;
use crate::owner::Owner;
use crate::tenant::build::BuildError;
use crate::tenant::inputs::BuildInputs;

/// The label every namespace carries with its own name (Kubernetes ≥ 1.22).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// Namespace of the cluster DNS.
pub const DNS_NAMESPACE: &str = "kube-system";
/// DNS port.
pub const DNS_PORT: i32 = 53;
/// HTTPS port.
pub const HTTPS_PORT: i32 = 443;

/// Builds the NetworkPolicy `<tenant>-gateway`, or `None` when `ctx.network_policy` is
/// absent (the controller then prunes an existing one).
///
/// # Errors
///
/// [`BuildError`] when the tenant lacks metadata.
pub fn build_network_policy(
    vt: &VoiceTenant,
    ctx: &BuildInputs,
) -> Result<Option<NetworkPolicy>, BuildError> {
    let owner = Owner::of(vt)?;
    let Some(settings) = &ctx.network_policy else {
        return Ok(None);
    };
    let http = port("TCP", IntOrString::String(HTTP_PORT_NAME.to_string()));
    Ok(Some(NetworkPolicy {
        metadata: owner.meta(),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&owner.tenant)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_string(), "Egress".to_string()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some(vec![namespace(&settings.ingress_namespace)]),
                    ports: Some(vec![http.clone()]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![namespace(&settings.metrics_namespace)]),
                    ports: Some(vec![http]),
                },
            ]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![namespace(DNS_NAMESPACE)]),
                    ports: Some(vec![
                        port("UDP", IntOrString::Int(DNS_PORT)),
                        port("TCP", IntOrString::Int(DNS_PORT)),
                    ]),
                },
                // No `to`: any address, this port only.
                NetworkPolicyEgressRule {
                    to: None,
                    ports: Some(vec![port(
                        "TCP",
                        IntOrString::Int(i32::from(settings.database_port)),
                    )]),
                },
                NetworkPolicyEgressRule {
                    to: None,
                    ports: Some(vec![port("TCP", IntOrString::Int(HTTPS_PORT))]),
                },
            ]),
        }),
    }))
}

fn namespace(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some([(NAMESPACE_NAME_LABEL.to_string(), name.to_string())].into()),
            match_expressions: None,
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn port(protocol: &str, port: IntOrString) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_string()),
        port: Some(port),
        end_port: None,
    }
}
