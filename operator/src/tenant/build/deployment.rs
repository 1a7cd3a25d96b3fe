//! The gateway Deployment.
//!
//! # Shutdown timing
//!
//! On SIGTERM the gateway turns `/readyz` to 503 at once and keeps serving every route
//! until its live calls have ended or `--drain-seconds` have passed; then it gives calls
//! up to 10 s to wind down and its write-behind queue up to 30 s to flush. So:
//!
//! - `--drain-seconds` = max call duration + [`ENDPOINT_PROPAGATION_SECONDS`]: a call
//!   that reaches the pod while its removal from the endpoints propagates still gets its
//!   full duration;
//! - `terminationGracePeriodSeconds` = drain + [`SHUTDOWN_TAIL_SECONDS`], so the kubelet
//!   never kills a pod that is still ending calls or flushing records.
//!
//! There is no `preStop` hook. One exists for servers that stop accepting connections at
//! SIGTERM, to keep them up until endpoints stop sending traffic; the gateway keeps
//! accepting throughout the drain, and terminating pods leave the Service's ready
//! endpoints as soon as their deletion starts, so a hook would only take time from calls.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, EphemeralVolumeSource, HTTPGetAction, KeyToPath, ObjectFieldSelector,
    PersistentVolumeClaimSpec, PersistentVolumeClaimTemplate, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use switchboard_crds::{GatewaySpec, VoiceTenant};

use super::secrets::{checksum, database_url, knowledge_keys, mounted_keys, secrets_volume};
use super::{
    CHECKSUM_ANNOTATION, CONFIG_DIR, DATA_DIR, HTTP_PORT, HTTP_PORT_NAME, SECRETS_DIR, TENANT_PATH,
    public_url, referenced_secrets,
};
use crate::labels::{labels, selector_labels};
use crate::owner::Owner;
use crate::tenant::build::BuildError;
use crate::tenant::inputs::{BuildInputs, DataVolume, GatewayResources};

/// Name of the gateway container.
pub const CONTAINER_NAME: &str = "gateway";
/// The gateway binary, found on the image's `PATH` (the image holds the operator too).
pub const GATEWAY_COMMAND: &str = "gateway";
/// Replicas of a tenant that sets neither `replicas` nor `autoscaling`.
pub const DEFAULT_REPLICAS: i32 = 1;
/// Time for a terminating pod to leave every load balancer's endpoints.
pub const ENDPOINT_PROPAGATION_SECONDS: i64 = 10;
/// The gateway's shutdown after the drain (10 s for calls to end, 30 s for the record
/// queue to flush) plus 5 s for the process to exit.
pub const SHUTDOWN_TAIL_SECONDS: i64 = 45;
/// UID and GID the gateway runs as (distroless `nonroot`).
pub const RUN_AS_USER: i64 = 65532;

/// `sizeLimit` of the data directory's `emptyDir` when the operator is given no other
/// data volume: the spool grows while the database is down, and an unbounded `emptyDir`
/// fills the node's disk.
pub const DEFAULT_DATA_SIZE_LIMIT: &str = "1Gi";

/// `sizeLimit` of `/tmp` (SQLite's temporary files).
pub const TMP_SIZE_LIMIT: &str = "256Mi";

const CONFIG_VOLUME: &str = "config";
const SECRETS_VOLUME: &str = "secrets";
const DATA_VOLUME: &str = "data";
const TMP_VOLUME: &str = "tmp";
const RECORDINGS_VOLUME: &str = "recordings";

/// Builds the Deployment `<tenant>-gateway`.
///
/// The image is `spec.gateway.image`, else `ctx.default_image`. Replicas are left to the
/// HorizontalPodAutoscaler when `spec.gateway.autoscaling` is set (owning them here would
/// fight it), else `spec.gateway.replicas` or [`DEFAULT_REPLICAS`]. Resources are
/// `spec.gateway.resources`, else `ctx.gateway_resources`. The data directory is
/// `ctx.data_volume`, by default an `emptyDir` of [`DEFAULT_DATA_SIZE_LIMIT`]: it
/// survives container restarts, not the pod's replacement (see [`DataVolume`]). A
/// recording tenant's upload queue is on the tenant's recordings claim when the context
/// has a recordings volume ([`super::recordings`]), else in the data directory.
///
/// # Errors
///
/// [`BuildError`] when the tenant lacks metadata, a secret reference cannot work in a
/// pod, a referenced Secret is missing from `ctx.secret_versions`, there is no image, or
/// the public host is invalid.
pub fn build_deployment(vt: &VoiceTenant, ctx: &BuildInputs) -> Result<Deployment, BuildError> {
    let owner = Owner::of(vt)?;
    let spec = &vt.spec;
    let gateway = spec.gateway.clone().unwrap_or_default();
    let image = gateway
        .image
        .clone()
        .unwrap_or_else(|| ctx.default_image.clone());
    if image.trim().is_empty() {
        return Err(BuildError::NoImage);
    }
    let tenant_file = super::config_map::config_text(vt, ctx)?;
    let checksum = checksum(&tenant_file, &referenced_secrets(vt, ctx)?, ctx)?;
    let drain_seconds =
        i64::from(spec.agent.max_call_duration_seconds) + ENDPOINT_PROPAGATION_SECONDS;

    let data_volume = ctx.data_volume.clone().unwrap_or(DataVolume::EmptyDir {
        size_limit: DEFAULT_DATA_SIZE_LIMIT.to_string(),
    });
    let mut env = vec![
        env_value("SWITCHBOARD_TENANT", TENANT_PATH),
        env_value("SWITCHBOARD_LISTEN", &format!("0.0.0.0:{HTTP_PORT}")),
        env_value("SWITCHBOARD_PUBLIC_URL", &public_url(vt, ctx)?),
    ];
    if let DataVolume::Claim { .. } = data_volume {
        // A claim shared by every pod: each keeps its spool and SQLite in a directory of
        // its own, named after the pod (expanded by the kubelet from the variable above).
        env.push(EnvVar {
            name: "POD_NAME".to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_string(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
        env.push(env_value(
            "SWITCHBOARD_DATA_DIR",
            &format!("{DATA_DIR}/$(POD_NAME)"),
        ));
    } else {
        env.push(env_value("SWITCHBOARD_DATA_DIR", DATA_DIR));
    }
    let recordings = super::recordings::recordings_volume(vt, ctx).is_some();
    if recordings {
        env.push(env_value(
            "SWITCHBOARD_RECORDINGS_DIR",
            super::recordings::RECORDINGS_DIR,
        ));
    }
    env.extend([
        env_value("SWITCHBOARD_SECRETS_DIR", SECRETS_DIR),
        env_value("SWITCHBOARD_DRAIN_SECONDS", &drain_seconds.to_string()),
    ]);
    if let Some(paths) = super::knowledge::knowledge_paths(vt, ctx) {
        env.push(env_value("SWITCHBOARD_KNOWLEDGE", &paths));
    }
    if let Some(max_calls) = gateway.max_calls_per_pod {
        env.push(env_value("SWITCHBOARD_MAX_CALLS", &max_calls.to_string()));
    }
    if let Some(db) = database_url(spec, ctx)? {
        // TLS defaults for the URL (verify-full, the operator's CA); the URL's own
        // sslmode wins (database_tls).
        env.extend(
            super::database_tls::tls_env(ctx)
                .into_iter()
                .map(|(name, value)| env_value(name, &value)),
        );
        env.push(EnvVar {
            name: "SWITCHBOARD_DATABASE_URL".to_string(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: db.name.clone(),
                    key: db.key.clone(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }

    let container = Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(image),
        command: Some(vec![GATEWAY_COMMAND.to_string()]),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            container_port: HTTP_PORT,
            name: Some(HTTP_PORT_NAME.to_string()),
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        // Startup allows a slow first connection to the database; after it, liveness
        // restarts a hung process and readiness follows the drain.
        startup_probe: Some(http_probe("/healthz", 2, 30)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        resources: gateway
            .resources
            .clone()
            .or_else(|| default_resources(&ctx.gateway_resources)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some({
            let mut mounts = vec![
                mount(CONFIG_VOLUME, CONFIG_DIR, true),
                mount(SECRETS_VOLUME, SECRETS_DIR, true),
                mount(DATA_VOLUME, DATA_DIR, false),
                // The root filesystem is read-only; SQLite spills temporary files to /tmp.
                mount(TMP_VOLUME, "/tmp", false),
            ];
            if recordings {
                mounts.push(mount(
                    RECORDINGS_VOLUME,
                    super::recordings::RECORDINGS_DIR,
                    false,
                ));
            }
            mounts
        }),
        ..Container::default()
    };

    let mut volumes = vec![
        Volume {
            name: CONFIG_VOLUME.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: owner.name.clone(),
                items: Some(config_items(vt, ctx)?),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: SECRETS_VOLUME.to_string(),
            projected: Some(secrets_volume(
                &mounted_keys(spec)?
                    .into_iter()
                    .chain(knowledge_keys(vt, ctx))
                    .collect::<Vec<_>>(),
            )),
            ..Volume::default()
        },
        data(&data_volume),
        empty_dir(TMP_VOLUME),
    ];
    if recordings {
        // The tenant's one queue claim, shared by all its pods: what a pod leaves queued
        // is uploaded by another or by its replacement (super::recordings).
        volumes.push(Volume {
            name: RECORDINGS_VOLUME.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: super::recordings::claim_name(&owner.name),
                read_only: None,
            }),
            ..Volume::default()
        });
    }

    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        service_account_name: Some(owner.name.clone()),
        automount_service_account_token: Some(false),
        // Service links inject `<SERVICE>_PORT=…` variables; a Service named
        // `switchboard-…` would put them among the gateway's own SWITCHBOARD_* settings.
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(drain_seconds + SHUTDOWN_TAIL_SECONDS),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            fs_group: Some(RUN_AS_USER),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        topology_spread_constraints: Some(vec![
            spread(&owner.tenant, "kubernetes.io/hostname"),
            spread(&owner.tenant, "topology.kubernetes.io/zone"),
        ]),
        ..PodSpec::default()
    };

    Ok(Deployment {
        metadata: owner.meta(),
        spec: DeploymentSpec {
            replicas: replicas(&gateway),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&owner.tenant)),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                // A new pod is ready before an old one starts draining: capacity never
                // drops during a rollout, and old pods drain in parallel.
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&owner.tenant)),
                    annotations: Some(BTreeMap::from([(
                        CHECKSUM_ANNOTATION.to_string(),
                        checksum,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

/// The ConfigMap's keys as files of [`CONFIG_DIR`]: every key the builder puts in it (the
/// tenant file, the knowledge bases' manifests, the database CA), each under its name.
fn config_items(vt: &VoiceTenant, ctx: &BuildInputs) -> Result<Vec<KeyToPath>, BuildError> {
    let config_map = super::config_map::build_config_map(vt, ctx)?;
    Ok(config_map
        .data
        .unwrap_or_default()
        .into_keys()
        .map(|key| KeyToPath {
            path: key.clone(),
            key,
            ..KeyToPath::default()
        })
        .collect())
}

fn replicas(gateway: &GatewaySpec) -> Option<i32> {
    if gateway.autoscaling.is_some() {
        None
    } else {
        Some(gateway.replicas.unwrap_or(DEFAULT_REPLICAS))
    }
}

fn env_value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(HTTP_PORT_NAME.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(2),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// The operator's default resources, or `None` when it has none.
fn default_resources(defaults: &GatewayResources) -> Option<ResourceRequirements> {
    let quantities = |m: &BTreeMap<String, String>| {
        (!m.is_empty()).then(|| {
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect()
        })
    };
    (!defaults.is_empty()).then(|| ResourceRequirements {
        requests: quantities(&defaults.requests),
        limits: quantities(&defaults.limits),
        ..ResourceRequirements::default()
    })
}

/// The data directory's volume.
fn data(volume: &DataVolume) -> Volume {
    let mut v = Volume {
        name: DATA_VOLUME.to_string(),
        ..Volume::default()
    };
    match volume {
        DataVolume::EmptyDir { size_limit } => {
            v.empty_dir = Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity(size_limit.clone())),
                ..EmptyDirVolumeSource::default()
            });
        }
        DataVolume::Ephemeral {
            size,
            storage_class_name,
        } => {
            v.ephemeral = Some(EphemeralVolumeSource {
                volume_claim_template: Some(PersistentVolumeClaimTemplate {
                    metadata: None,
                    spec: PersistentVolumeClaimSpec {
                        access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                        storage_class_name: storage_class_name.clone(),
                        resources: Some(VolumeResourceRequirements {
                            requests: Some(BTreeMap::from([(
                                "storage".to_string(),
                                Quantity(size.clone()),
                            )])),
                            limits: None,
                        }),
                        ..PersistentVolumeClaimSpec::default()
                    },
                }),
            });
        }
        DataVolume::Claim { claim_name } => {
            v.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name.clone(),
                read_only: None,
            });
        }
    }
    v
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity(TMP_SIZE_LIMIT.to_string())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// Spreads the tenant's pods over `topology_key` when the scheduler can, counting only
/// the pods of the current revision so a rollout does not skew against its own old pods.
fn spread(tenant: &str, topology_key: &str) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: topology_key.to_string(),
        when_unsatisfiable: "ScheduleAnyway".to_string(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector_labels(tenant)),
            match_expressions: None,
        }),
        match_label_keys: Some(vec!["pod-template-hash".to_string()]),
        ..TopologySpreadConstraint::default()
    }
}
