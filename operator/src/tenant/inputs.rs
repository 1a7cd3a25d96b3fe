//! What the builders need beyond the `VoiceTenant` itself.
//!
//! The controller fills a [`BuildInputs`] per reconcile from its own configuration (Helm values)
//! and from what the dereference step observed (Secret versions). Builders never read the
//! cluster, so everything that can change their output is in here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchboard_crds::SecretKeySelector;

/// Where the operator's own image is published; the gateway runs from the same image.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "ghcr.io/switchboard-dev/switchboard";

/// The operator's version: by default gateways run this exact version, so operator and
/// gateways never drift apart.
pub const OPERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The gateway image of this operator's own version in `repository`.
pub fn default_gateway_image(repository: &str) -> String {
    format!("{repository}:{OPERATOR_VERSION}")
}

fn default_image() -> String {
    default_gateway_image(DEFAULT_IMAGE_REPOSITORY)
}

/// Inputs of the builders that do not come from the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInputs {
    /// Gateway image for tenants that set no `spec.gateway.image`.
    #[serde(default = "default_image")]
    pub default_image: String,
    /// `metadata.resourceVersion` of every Secret the tenant references, by Secret name
    /// (see [`crate::referenced_secrets`]). They feed the pod template's checksum, so a
    /// rotated secret rolls the gateway pods.
    #[serde(default)]
    pub secret_versions: BTreeMap<String, String>,
    /// The Secret key holding the call-store URL of the tenant's own database role, once
    /// the operator has provisioned it. Takes precedence over `spec.database.url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url_secret: Option<SecretKeySelector>,
    /// How Twilio reaches the tenant. Absent: only from inside the cluster, through the
    /// tenant's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<PublicAccess>,
    /// Annotations of the gateway's ServiceAccount (IRSA: `eks.amazonaws.com/role-arn`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_account_annotations: BTreeMap<String, String>,
    /// Name under which the custom metrics API serves the gateway's
    /// `switchboard_active_calls` gauge (prometheus-adapter). When set, autoscaled tenants
    /// also scale on active calls per pod, not only on CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_calls_metric: Option<String>,
    /// The knowledge bases of the tenant's namespace that its agent lists
    /// (`spec.agent.knowledgeBases`), read by the dereference step: rendered into the
    /// ConfigMap for the gateway's `--knowledge`, their Secrets mounted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub knowledge_bases: Vec<crate::tenant::build::knowledge::KnowledgeMount>,
    /// Who may reach the gateway pods and where they may connect. Absent: no
    /// NetworkPolicy (the controller prunes one it built before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySettings>,
    /// Resources of the gateway container when the tenant sets no
    /// `spec.gateway.resources`. Empty: none (a BestEffort pod, evicted first).
    #[serde(default, skip_serializing_if = "GatewayResources::is_empty")]
    pub gateway_resources: GatewayResources,
    /// The volume behind the gateway's data directory (write-behind spool, SQLite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_volume: Option<DataVolume>,
    /// The volume of a recording tenant's upload queue: a PersistentVolumeClaim per
    /// tenant that all its gateway pods mount (see [`RecordingsVolume`]). Absent: the
    /// queue stays in the data directory, and what a pod leaves queued lives as long as
    /// that volume does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recordings_volume: Option<RecordingsVolume>,
    /// Knowledge bases the agent lists that do not exist in the namespace (or belong to
    /// another tenant): the gateway runs without them, the status says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_knowledge_bases: Vec<String>,
    /// PEM CA bundle the gateways verify their Postgres server with (the operator's
    /// `--database-ca-file`; for RDS, the AWS global bundle). Copied into the tenant's
    /// ConfigMap of a gateway with a database URL and named by `PGSSLROOTCERT`
    /// ([`crate::tenant::build::database_tls`]). Absent: `verify-full` against the
    /// driver's built-in roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_ca: Option<String>,
}

/// The claim behind a recording tenant's upload queue (`--gateway-recordings-volume`).
///
/// One PersistentVolumeClaim per tenant, created by the operator and mounted by every
/// gateway pod of the tenant at the same directory, so finished recordings a pod could
/// not upload before it went away are uploaded by the others or its replacement; the
/// queue's claim files keep two pods from uploading one recording. It must be
/// `ReadWriteMany` (EFS, Filestore, Azure Files, CephFS, NFS) unless the tenant runs one
/// pod at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordingsVolume {
    /// Storage requested (a quantity, `20Gi`).
    pub size: String,
    /// Storage class; absent: the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Access mode; `ReadWriteMany` by default.
    #[serde(default = "read_write_many")]
    pub access_mode: String,
}

fn read_write_many() -> String {
    "ReadWriteMany".to_string()
}

/// Namespaces and ports of the tenant's NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySettings {
    /// Namespace of the ingress controller: may reach the gateway's http port.
    pub ingress_namespace: String,
    /// Namespace of the metrics scraper (Prometheus): may reach the gateway's listener for
    /// `/metrics`.
    pub metrics_namespace: String,
    /// TCP port of the Postgres server the gateways connect to (the admin URL's).
    #[serde(default = "default_database_port")]
    pub database_port: u16,
}

/// Postgres' port.
pub const DEFAULT_DATABASE_PORT: u16 = 5432;

fn default_database_port() -> u16 {
    DEFAULT_DATABASE_PORT
}

/// Default resource requests and limits of the gateway container (`cpu`, `memory`, …
/// to a Kubernetes quantity), as the operator's `--gateway-resources` JSON reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayResources {
    /// Requests: what the scheduler reserves.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// Limits: memory above it is killed by the kernel.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

impl GatewayResources {
    /// Neither requests nor limits.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.limits.is_empty()
    }
}

/// The volume behind the gateway's data directory.
///
/// A Deployment cannot give each pod its own PersistentVolumeClaim (only a StatefulSet's
/// `volumeClaimTemplates` can, and pods of a Deployment are interchangeable). So:
///
/// - [`DataVolume::EmptyDir`] (the default): node-local, bounded by `sizeLimit` (the
///   kubelet evicts a pod that exceeds it); lost with the pod.
/// - [`DataVolume::Ephemeral`]: a generic ephemeral volume, a PVC per pod created from a
///   template and deleted with the pod: a real disk of a fixed size (a full disk fails
///   the write rather than evicting the pod), still lost with the pod.
/// - [`DataVolume::Claim`]: an existing PVC shared by every pod (ReadWriteMany with more
///   than one replica); each pod keeps its data in its own sub-directory (its pod name),
///   which survives the pod. A successor pod has another name and does not replay a
///   predecessor's spool by itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum DataVolume {
    /// An `emptyDir` of at most `size_limit`.
    #[serde(rename_all = "camelCase")]
    EmptyDir {
        /// `sizeLimit`, a quantity (`1Gi`).
        size_limit: String,
    },
    /// A per-pod claim from a template.
    #[serde(rename_all = "camelCase")]
    Ephemeral {
        /// Size requested.
        size: String,
        /// Storage class; absent: the cluster's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        storage_class_name: Option<String>,
    },
    /// An existing claim in the tenant's namespace.
    #[serde(rename_all = "camelCase")]
    Claim {
        /// The PersistentVolumeClaim's name.
        claim_name: String,
    },
}

impl BuildInputs {
    /// A context with `default_image` and nothing else: no Secret versions, no public
    /// access, no provisioned database.
    pub fn new(default_image: impl Into<String>) -> Self {
        Self {
            default_image: default_image.into(),
            secret_versions: BTreeMap::new(),
            database_url_secret: None,
            public: None,
            service_account_annotations: BTreeMap::new(),
            active_calls_metric: None,
            knowledge_bases: Vec::new(),
            network_policy: None,
            gateway_resources: GatewayResources::default(),
            data_volume: None,
            recordings_volume: None,
            missing_knowledge_bases: Vec::new(),
            database_ca: None,
        }
    }
}

/// The public endpoint Twilio calls: `https://<host>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicAccess {
    /// DNS name of the tenant's gateway as Twilio sees it. The gateway checks webhook
    /// signatures against `https://<host>`, so it must be exactly what Twilio requests.
    pub host: String,
    /// Build an Ingress for the host. Absent: something else (a load balancer, a Gateway
    /// API route) routes the host to the tenant's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSettings>,
}

/// How the tenant's Ingress is built.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressSettings {
    /// `spec.ingressClassName`; absent uses the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Secret holding the TLS certificate for the host (e.g. issued by cert-manager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Extra annotations (cert-manager issuer, controller-specific timeouts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}
