//! Pure builders of a tenant's children, one module per owned kind.
//!
//! Each `build_x(&VoiceTenant, &BuildInputs)` returns the complete object to server-side apply:
//! name and namespace, [`crate::labels::labels`], a controller owner reference and
//! everything this operator owns in it. Optional kinds return `Ok(None)` when the tenant
//! does not want them; the controller then deletes (prunes) the object of that kind
//! named [`crate::labels::child_name`] if one exists.
//!
//! # Contract with the gateway
//!
//! The gateway container runs `gateway` with every flag given as a `SWITCHBOARD_*`
//! variable: the tenant file from the ConfigMap at [`TENANT_PATH`], listening on
//! [`HTTP_PORT`] (webhooks, media streams, `/healthz`, `/readyz`, `/metrics`), its data
//! directory at [`DATA_DIR`], each Secret named by a `secretKeyRef` of the tenant mounted
//! as `<SECRETS_DIR>/<secret>/<key>`. The knowledge bases the agent may search are in the
//! ConfigMap too (`knowledge-<name>.yaml`, listed in `SWITCHBOARD_KNOWLEDGE`). A recording
//! tenant's upload queue is on its own claim at [`recordings::RECORDINGS_DIR`]
//! (`SWITCHBOARD_RECORDINGS_DIR`) when the operator has a recordings volume.

pub mod config_map;
pub mod database_tls;
pub mod deployment;
mod error;
pub mod hpa;
pub mod ingress;
pub mod knowledge;
pub mod networkpolicy;
pub mod pdb;
pub mod recordings;
mod secrets;
pub mod service;
pub mod service_account;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use switchboard_crds::VoiceTenant;

pub use config_map::{build_config_map, render_tenant_file};
pub use deployment::build_deployment;
pub use error::BuildError;
pub use hpa::build_hpa;
pub use ingress::build_ingress;
pub use knowledge::{KnowledgeMount, knowledge_file, render_knowledge_file};
pub use networkpolicy::build_network_policy;
pub use pdb::build_pdb;
pub use recordings::build_recordings_claim;
pub use secrets::referenced_secrets;
pub use service::build_service;
pub use service_account::build_service_account;

use crate::owner::Owner;
use crate::tenant::inputs::BuildInputs;

/// The one port the gateway listens on, and the Service's `http` port.
pub const HTTP_PORT: i32 = 8080;
/// Name of the HTTP port (container and Service).
pub const HTTP_PORT_NAME: &str = "http";
/// The Service's `metrics` port: the same listener as [`HTTP_PORT`] under its own name and
/// number, so a ServiceMonitor can select `port: metrics` while the Ingress only ever
/// routes to `http`. (A Service cannot list one port number twice.)
pub const METRICS_PORT: i32 = 9090;
/// Name of the metrics port on the Service.
pub const METRICS_PORT_NAME: &str = "metrics";
/// Where the ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/switchboard";
/// Key of the tenant manifest in the ConfigMap (and its file name in [`CONFIG_DIR`]).
pub const TENANT_FILE: &str = "tenant.yaml";
/// The gateway's `--tenant`.
pub const TENANT_PATH: &str = "/etc/switchboard/tenant.yaml";
/// The gateway's `--data-dir` (SQLite when no database is configured, the write-behind
/// spool).
pub const DATA_DIR: &str = "/var/lib/switchboard";
/// Where the referenced Secrets are mounted (the gateway's `SWITCHBOARD_SECRETS_DIR`).
pub const SECRETS_DIR: &str = "/var/run/secrets/switchboard";
/// Pod template annotation carrying the checksum of the tenant file and of the
/// referenced Secrets' versions: when either changes, the pods roll.
pub const CHECKSUM_ANNOTATION: &str = "voice.switchboard.dev/config-checksum";
/// Path of the Twilio voice webhook on the gateway.
pub const VOICE_WEBHOOK_PATH: &str = "/twilio/voice";

/// Every child of one tenant, as built.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// The identity the gateway pods run as.
    pub service_account: ServiceAccount,
    /// The tenant file the gateway reads.
    pub config_map: ConfigMap,
    /// The gateway.
    pub deployment: Deployment,
    /// The gateway's stable address.
    pub service: Service,
    /// Limits voluntary evictions.
    pub pdb: PodDisruptionBudget,
    /// Present when `spec.gateway.autoscaling` is set.
    pub hpa: Option<HorizontalPodAutoscaler>,
    /// Present when the context asks for an Ingress.
    pub ingress: Option<Ingress>,
    /// Present when the context asks for a NetworkPolicy.
    pub network_policy: Option<NetworkPolicy>,
    /// The upload queue's claim: present when the tenant has `spec.recordings` and the
    /// context a recordings volume.
    pub recordings_claim: Option<PersistentVolumeClaim>,
}

/// Builds every child of the tenant.
///
/// # Errors
///
/// The first [`BuildError`] of any builder: missing metadata, a secret reference that
/// cannot work in a cluster, a referenced Secret absent from `ctx.secret_versions`, an
/// operator configuration without an image or with an invalid public host.
pub fn build_children(vt: &VoiceTenant, ctx: &BuildInputs) -> Result<Children, BuildError> {
    Ok(Children {
        service_account: build_service_account(vt, ctx)?,
        config_map: build_config_map(vt, ctx)?,
        deployment: build_deployment(vt, ctx)?,
        service: build_service(vt, ctx)?,
        pdb: build_pdb(vt, ctx)?,
        hpa: build_hpa(vt, ctx)?,
        ingress: build_ingress(vt, ctx)?,
        network_policy: build_network_policy(vt, ctx)?,
        recordings_claim: build_recordings_claim(vt, ctx)?,
    })
}

/// The base URL Twilio uses for the tenant, and the gateway's `--public-url`:
/// `https://<host>` with public access, otherwise the Service's in-cluster address.
///
/// # Errors
///
/// [`BuildError`] when the tenant lacks metadata or the public host is not a DNS name.
pub fn public_url(vt: &VoiceTenant, ctx: &BuildInputs) -> Result<String, BuildError> {
    let owner = Owner::of(vt)?;
    match &ctx.public {
        Some(public) => {
            if !switchboard_crds::format::is_dns_subdomain(&public.host) {
                return Err(BuildError::InvalidPublicHost {
                    host: public.host.clone(),
                });
            }
            Ok(format!("https://{}", public.host))
        }
        None => Ok(format!(
            "http://{}.{}.svc:{HTTP_PORT}",
            owner.name, owner.namespace
        )),
    }
}

/// The voice webhook URL to configure on the tenant's Twilio numbers (reported in the
/// tenant's status).
///
/// # Errors
///
/// As [`public_url`].
pub fn webhook_url(vt: &VoiceTenant, ctx: &BuildInputs) -> Result<String, BuildError> {
    Ok(public_url(vt, ctx)? + VOICE_WEBHOOK_PATH)
}
