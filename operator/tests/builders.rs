//! Targeted checks of the built children, beyond the golden files.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use switchboard_crds::{AutoscalingSpec, SecretRef, VoiceTenant, parse_tenant};
use switchboard_operator::labels::{MAX_NAME_LEN, children_selector, labels, selector_labels};
use switchboard_operator::tenant::build::DATA_DIR;
use switchboard_operator::tenant::build::deployment::DEFAULT_DATA_SIZE_LIMIT;
use switchboard_operator::tenant::build::{
    CHECKSUM_ANNOTATION, HTTP_PORT, SECRETS_DIR, TENANT_FILE, TENANT_PATH, build_config_map,
    build_deployment, build_hpa, build_ingress, public_url,
};
use switchboard_operator::tenant::inputs::DataVolume;
use switchboard_operator::{BuildError, Children, build_children, referenced_secrets, webhook_url};

fn children(name: &str) -> (common::Fixture, Children) {
    let fixture = common::load(name);
    let built = build_children(&fixture.tenant, &fixture.ctx).unwrap();
    (fixture, built)
}

/// Every child's metadata and its serialized JSON.
fn all(c: &Children) -> Vec<(&ObjectMeta, Value)> {
    let mut out = vec![
        (
            &c.service_account.metadata,
            serde_json::to_value(&c.service_account).unwrap(),
        ),
        (
            &c.config_map.metadata,
            serde_json::to_value(&c.config_map).unwrap(),
        ),
        (
            &c.deployment.metadata,
            serde_json::to_value(&c.deployment).unwrap(),
        ),
        (
            &c.service.metadata,
            serde_json::to_value(&c.service).unwrap(),
        ),
        (&c.pdb.metadata, serde_json::to_value(&c.pdb).unwrap()),
    ];
    if let Some(hpa) = &c.hpa {
        out.push((&hpa.metadata, serde_json::to_value(hpa).unwrap()));
    }
    if let Some(ingress) = &c.ingress {
        out.push((&ingress.metadata, serde_json::to_value(ingress).unwrap()));
    }
    if let Some(policy) = &c.network_policy {
        out.push((&policy.metadata, serde_json::to_value(policy).unwrap()));
    }
    if let Some(claim) = &c.recordings_claim {
        out.push((&claim.metadata, serde_json::to_value(claim).unwrap()));
    }
    out
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.template.spec.as_ref().unwrap()
}

fn container(d: &Deployment) -> &Container {
    &pod(d).containers[0]
}

fn env(d: &Deployment, name: &str) -> Option<String> {
    container(d)
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

fn checksum(d: &Deployment) -> String {
    d.spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CHECKSUM_ANNOTATION]
        .clone()
}

fn no_nulls(path: &str, v: &Value) {
    match v {
        Value::Null => panic!("null at {path}"),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, x)| no_nulls(&format!("{path}[{i}]"), x)),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, x)| no_nulls(&format!("{path}.{k}"), x)),
        _ => {}
    }
}

#[test]
fn every_child_is_owned_labelled_and_a_complete_apply_body() {
    for name in common::names() {
        let (fixture, built) = children(&name);
        let tenant = fixture.tenant.metadata.name.clone().unwrap();
        let kinds = all(&built);
        assert!(kinds.len() >= 5);
        for (meta, json) in kinds {
            let kind = json["kind"].as_str().unwrap().to_string();
            assert!(
                json["apiVersion"].is_string(),
                "{name} {kind}: no apiVersion"
            );
            no_nulls(&format!("{name} {kind}"), &json);

            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1, "{name} {kind}");
            let owner = &owners[0];
            assert_eq!(owner.kind, "VoiceTenant");
            assert_eq!(owner.api_version, "voice.switchboard.dev/v1alpha1");
            assert_eq!(owner.name, tenant);
            assert_eq!(Some(&owner.uid), fixture.tenant.metadata.uid.as_ref());
            assert_eq!(owner.controller, Some(true));
            assert_eq!(owner.block_owner_deletion, Some(true));

            assert_eq!(meta.namespace, fixture.tenant.metadata.namespace, "{kind}");
            assert_eq!(meta.labels.as_ref(), Some(&labels(&tenant)), "{kind}");
            let selected = children_selector(&tenant).split(',').all(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                meta.labels.as_ref().unwrap().get(k).map(String::as_str) == Some(v)
            });
            assert!(selected, "{name} {kind} escapes the pruning selector");
            let child = meta.name.as_ref().unwrap();
            assert!(child.len() <= MAX_NAME_LEN, "{child}");
        }
    }
}

#[test]
fn one_selector_for_deployment_pods_service_and_pdb() {
    for name in common::names() {
        let (fixture, built) = children(&name);
        let tenant = fixture.tenant.metadata.name.clone().unwrap();
        let selector = selector_labels(&tenant);
        let d = &built.deployment;
        assert_eq!(d.spec.selector.match_labels.as_ref(), Some(&selector));
        let pod_labels = d
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        assert_eq!(
            built.service.spec.as_ref().unwrap().selector.as_ref(),
            Some(&selector)
        );
        let pdb = built.pdb.spec.as_ref().unwrap();
        assert_eq!(
            pdb.selector.as_ref().unwrap().match_labels.as_ref(),
            Some(&selector)
        );
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(pdb.min_available, None);
    }
}

#[test]
fn probes_hit_the_gateway_routes_on_its_named_port() {
    let (_, built) = children("acme");
    let c = container(&built.deployment);
    let port = &c.ports.as_ref().unwrap()[0];
    assert_eq!(port.container_port, HTTP_PORT);
    let port_name = IntOrString::String(port.name.clone().unwrap());
    for (probe, path) in [
        (&c.liveness_probe, "/healthz"),
        (&c.startup_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, port_name);
    }
    assert_eq!(
        env(&built.deployment, "SWITCHBOARD_LISTEN").as_deref(),
        Some("0.0.0.0:8080")
    );
    let service_ports = built.service.spec.as_ref().unwrap().ports.as_ref().unwrap();
    let names: Vec<_> = service_ports
        .iter()
        .map(|p| p.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["http", "metrics"]);
    assert!(
        service_ports
            .iter()
            .all(|p| p.target_port == Some(port_name.clone()))
    );
}

#[test]
fn grace_period_covers_the_longest_call_and_the_shutdown_after_it() {
    let (mut fixture, _) = children("acme");
    for max_call in [10u32, 900, 3600] {
        fixture.tenant.spec.agent.max_call_duration_seconds = max_call;
        let d = build_deployment(&fixture.tenant, &fixture.ctx).unwrap();
        let drain: i64 = env(&d, "SWITCHBOARD_DRAIN_SECONDS")
            .unwrap()
            .parse()
            .unwrap();
        let grace = pod(&d).termination_grace_period_seconds.unwrap();
        assert!(
            drain >= i64::from(max_call),
            "drain {drain} < max call {max_call}"
        );
        // The gateway needs up to 10 s after the drain for calls to end and 30 s for its
        // record queue to flush.
        assert!(grace >= drain + 40, "grace {grace} for drain {drain}");
    }
}

#[test]
fn rollout_never_drops_capacity() {
    let (_, built) = children("minimal");
    let ru = built
        .deployment
        .spec
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(ru.max_surge, Some(IntOrString::Int(1)));
    assert!(
        container(&built.deployment).lifecycle.is_none(),
        "no preStop hook"
    );
}

#[test]
fn pods_run_locked_down() {
    let (_, built) = children("acme");
    let p = pod(&built.deployment);
    let psc = p.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u != 0));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    let sc = container(&built.deployment)
        .security_context
        .as_ref()
        .unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(p.automount_service_account_token, Some(false));
    assert_eq!(
        p.service_account_name.as_ref(),
        built.service_account.metadata.name.as_ref()
    );
    // Every writable path is a volume, the root filesystem being read-only.
    let mounts = container(&built.deployment).volume_mounts.as_ref().unwrap();
    for path in ["/var/lib/switchboard", "/tmp"] {
        let m = mounts.iter().find(|m| m.mount_path == path).unwrap();
        assert_ne!(m.read_only, Some(true), "{path}");
    }
}

#[test]
fn resources_come_from_the_spec() {
    let (fixture, built) = children("acme");
    let wanted = fixture
        .tenant
        .spec
        .gateway
        .as_ref()
        .unwrap()
        .resources
        .clone();
    assert!(wanted.is_some());
    // The tenant's own resources win over the operator's defaults (acme's context has
    // them too).
    assert!(!fixture.ctx.gateway_resources.is_empty());
    assert_eq!(container(&built.deployment).resources, wanted);
}

#[test]
fn gateways_without_resources_get_the_operators_defaults_never_best_effort() {
    let (mut fixture, built) = children("minimal");
    assert!(
        fixture
            .tenant
            .spec
            .gateway
            .as_ref()
            .is_none_or(|g| g.resources.is_none())
    );
    let resources = container(&built.deployment).resources.clone().unwrap();
    let q = |m: &Option<BTreeMap<String, Quantity>>, k: &str| m.as_ref().unwrap()[k].0.clone();
    assert_eq!(q(&resources.requests, "cpu"), "100m");
    assert_eq!(q(&resources.requests, "memory"), "128Mi");
    assert_eq!(q(&resources.limits, "memory"), "512Mi");
    // No defaults and none of its own: nothing (what the operator's flag can turn off).
    fixture.ctx.gateway_resources = Default::default();
    let d = build_deployment(&fixture.tenant, &fixture.ctx).unwrap();
    assert_eq!(container(&d).resources, None);
}

#[test]
fn the_data_directory_is_bounded_or_on_a_claim() {
    let volume = |d: &Deployment, name: &str| {
        pod(d)
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .unwrap()
            .clone()
    };
    // Default: an emptyDir with a sizeLimit (the spool grows while the database is down).
    let (mut fixture, built) = children("minimal");
    assert_eq!(fixture.ctx.data_volume, None);
    let data = volume(&built.deployment, "data");
    assert_eq!(
        data.empty_dir.unwrap().size_limit,
        Some(Quantity(DEFAULT_DATA_SIZE_LIMIT.into()))
    );
    assert_eq!(
        env(&built.deployment, "SWITCHBOARD_DATA_DIR").unwrap(),
        DATA_DIR
    );
    let tmp = volume(&built.deployment, "tmp");
    assert!(tmp.empty_dir.unwrap().size_limit.is_some());
    // Configured size.
    fixture.ctx.data_volume = Some(DataVolume::EmptyDir {
        size_limit: "3Gi".into(),
    });
    let d = build_deployment(&fixture.tenant, &fixture.ctx).unwrap();
    assert_eq!(
        volume(&d, "data").empty_dir.unwrap().size_limit,
        Some(Quantity("3Gi".into()))
    );
    // A claim per pod from a template.
    let (_, acme) = children("acme");
    let template = volume(&acme.deployment, "data")
        .ephemeral
        .unwrap()
        .volume_claim_template
        .unwrap();
    assert_eq!(template.spec.storage_class_name.as_deref(), Some("gp3"));
    // A shared claim: one directory per pod.
    let (_, long) = children("long-name");
    let data = volume(&long.deployment, "data");
    assert_eq!(
        data.persistent_volume_claim.unwrap().claim_name,
        "switchboard-spool"
    );
    assert_eq!(
        env(&long.deployment, "SWITCHBOARD_DATA_DIR").unwrap(),
        format!("{DATA_DIR}/$(POD_NAME)")
    );
    let names: Vec<String> = container(&long.deployment)
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect();
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(
        pos("POD_NAME") < pos("SWITCHBOARD_DATA_DIR"),
        "expanded in order"
    );
}

/// An egress rule as (namespaces, (protocol, port)s).
type EgressRule = (Vec<String>, Vec<(String, IntOrString)>);

#[test]
fn network_policy_admits_the_ingress_and_the_scraper_and_lets_out_dns_db_https() {
    let (fixture, built) = children("acme");
    let policy = built.network_policy.unwrap();
    let spec = policy.spec.unwrap();
    assert_eq!(
        spec.pod_selector.unwrap().match_labels,
        Some(selector_labels("acme"))
    );
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string(), "Egress".to_string()][..])
    );
    let ns_of = |peers: &Option<Vec<NetworkPolicyPeer>>| -> Vec<String> {
        peers
            .iter()
            .flatten()
            .map(|p| {
                assert!(p.pod_selector.is_none() && p.ip_block.is_none());
                p.namespace_selector
                    .as_ref()
                    .unwrap()
                    .match_labels
                    .as_ref()
                    .unwrap()["kubernetes.io/metadata.name"]
                    .clone()
            })
            .collect()
    };
    let ingress = spec.ingress.unwrap();
    let from: Vec<Vec<String>> = ingress.iter().map(|r| ns_of(&r.from)).collect();
    assert_eq!(from, [["ingress-nginx"], ["monitoring"]]);
    for rule in &ingress {
        let ports = rule.ports.as_ref().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, Some(IntOrString::String("http".into())));
        // The named port is the container's only one: the gateway's listener.
        assert_eq!(
            container(&built.deployment).ports.as_ref().unwrap()[0]
                .name
                .as_deref(),
            Some("http")
        );
    }
    let egress = spec.egress.unwrap();
    let ports: Vec<EgressRule> = egress
        .iter()
        .map(|r| {
            (
                ns_of(&r.to),
                r.ports
                    .iter()
                    .flatten()
                    .map(|p| (p.protocol.clone().unwrap(), p.port.clone().unwrap()))
                    .collect(),
            )
        })
        .collect();
    let db = i32::from(fixture.ctx.network_policy.unwrap().database_port);
    assert_eq!(
        ports,
        [
            (
                vec!["kube-system".to_string()],
                vec![
                    ("UDP".to_string(), IntOrString::Int(53)),
                    ("TCP".to_string(), IntOrString::Int(53))
                ]
            ),
            (vec![], vec![("TCP".to_string(), IntOrString::Int(db))]),
            (vec![], vec![("TCP".to_string(), IntOrString::Int(443))]),
        ]
    );
    // Without settings, no policy (the controller prunes one built before).
    let (_, minimal) = children("minimal");
    assert!(minimal.network_policy.is_none());
}

#[test]
fn image_is_the_tenants_override_or_the_operators_own() {
    let (fixture, built) = children("acme");
    assert_eq!(
        container(&built.deployment).image.as_ref(),
        Some(&fixture.ctx.default_image)
    );
    let (_, minimal) = children("minimal");
    assert_eq!(
        container(&minimal.deployment).image.as_deref(),
        Some("registry.local/switchboard:pinned")
    );
    let (_, long) = children("long-name");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        container(&long.deployment).image.clone().unwrap(),
        format!("ghcr.io/switchboard-dev/switchboard:{version}")
    );
}

#[test]
fn checksum_follows_the_config_and_the_referenced_secrets_only() {
    let fixture = common::load("acme");
    let (tenant, ctx) = (&fixture.tenant, &fixture.ctx);
    let base = checksum(&build_deployment(tenant, ctx).unwrap());
    assert_eq!(base.len(), 64);

    for secret in ["acme-twilio", "acme-openai", "switchboard-postgres"] {
        let mut rotated = ctx.clone();
        rotated
            .secret_versions
            .insert(secret.into(), "999999".into());
        let d = build_deployment(tenant, &rotated).unwrap();
        assert_ne!(checksum(&d), base, "rotating {secret} must roll the pods");
    }

    let mut unrelated = ctx.clone();
    unrelated
        .secret_versions
        .insert("someone-else".into(), "1".into());
    assert_eq!(
        checksum(&build_deployment(tenant, &unrelated).unwrap()),
        base
    );

    let mut edited = tenant.clone();
    edited.spec.agent.voice = "alloy".into();
    assert_ne!(checksum(&build_deployment(&edited, ctx).unwrap()), base);

    // Status and bookkeeping metadata are not config.
    let mut touched = tenant.clone();
    touched.metadata.resource_version = Some("48999".into());
    touched.metadata.generation = Some(4);
    assert_eq!(checksum(&build_deployment(&touched, ctx).unwrap()), base);
}

#[test]
fn referenced_secrets_are_what_the_dereference_step_reads() {
    let fixture = common::load("acme");
    let names: Vec<String> = referenced_secrets(&fixture.tenant, &fixture.ctx)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        names,
        ["acme-openai", "acme-twilio", "switchboard-postgres"]
    );
    let long = common::load("long-name");
    let names: Vec<String> = referenced_secrets(&long.tenant, &long.ctx)
        .unwrap()
        .into_iter()
        .collect();
    // The provisioned role's Secret replaces spec.database.url.
    assert_eq!(names, ["north-db", "north-openai", "north-twilio"]);

    for name in ["acme-twilio", "switchboard-postgres"] {
        let mut ctx = fixture.ctx.clone();
        ctx.secret_versions.remove(name);
        let err = build_deployment(&fixture.tenant, &ctx).unwrap_err();
        assert!(matches!(&err, BuildError::SecretNotObserved { name: n } if n == name));
        assert_eq!(err.category(), "SecretNotObserved");
    }
}

#[test]
fn secrets_are_mounted_where_the_gateway_reads_them() {
    let (fixture, built) = children("minimal");
    let d = &built.deployment;
    assert_eq!(
        env(d, "SWITCHBOARD_SECRETS_DIR").as_deref(),
        Some(SECRETS_DIR)
    );
    let mount = container(d)
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == SECRETS_DIR)
        .unwrap();
    assert_eq!(mount.read_only, Some(true));
    let volume = pod(d)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let sources = volume.projected.as_ref().unwrap().sources.as_ref().unwrap();
    // Both keys of the one Secret, each at <secret>/<key> as the gateway resolves them.
    assert_eq!(sources.len(), 1);
    let projection = sources[0].secret.as_ref().unwrap();
    assert_eq!(projection.name, "demo-secrets");
    let paths: Vec<_> = projection
        .items
        .iter()
        .flatten()
        .map(|i| i.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "demo-secrets/openai-api-key",
            "demo-secrets/twilio-auth-token"
        ]
    );
    // No database configured: the gateway keeps records in SQLite in its data dir.
    assert_eq!(env(d, "SWITCHBOARD_DATABASE_URL"), None);
    assert!(
        container(d)
            .env
            .iter()
            .flatten()
            .all(|e| e.value_from.is_none())
    );
    let _ = fixture;
}

#[test]
fn database_url_comes_from_a_secret_in_the_environment() {
    let (_, built) = children("acme");
    let var = container(&built.deployment)
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "SWITCHBOARD_DATABASE_URL")
        .unwrap();
    let from = var
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (from.name.as_str(), from.key.as_str()),
        ("switchboard-postgres", "url")
    );
    assert_eq!(var.value, None);
}

#[test]
fn laptop_secret_sources_are_refused_in_a_cluster() {
    let fixture = common::load("acme");
    let mut tenant = fixture.tenant.clone();
    tenant.spec.openai.api_key = SecretRef::env("OPENAI_API_KEY");
    let err = build_deployment(&tenant, &fixture.ctx).unwrap_err();
    assert!(matches!(
        err,
        BuildError::SecretNotInCluster {
            field: "spec.openai.apiKey",
            ..
        }
    ));
    assert_eq!(err.category(), "InvalidSpec");
    assert!(
        err.to_string()
            .contains("environment variable OPENAI_API_KEY")
    );

    let mut tenant = fixture.tenant.clone();
    tenant.spec.database.as_mut().unwrap().url = Some(SecretRef {
        file: Some("/etc/db-url".into()),
        ..SecretRef::default()
    });
    let err = referenced_secrets(&tenant, &fixture.ctx).unwrap_err();
    assert!(matches!(
        err,
        BuildError::SecretNotInCluster {
            field: "spec.database.url",
            ..
        }
    ));

    let mut tenant = fixture.tenant.clone();
    tenant
        .spec
        .twilio
        .auth_token
        .secret_key_ref
        .as_mut()
        .unwrap()
        .key = "..data".into();
    let err = build_deployment(&tenant, &fixture.ctx).unwrap_err();
    assert!(matches!(err, BuildError::UnmountableSecretKey { .. }));
}

#[test]
fn tenants_not_read_from_an_api_server_are_refused() {
    let fixture = common::load("minimal");
    let mut no_uid = fixture.tenant.clone();
    no_uid.metadata.uid = None;
    let mut no_ns = fixture.tenant.clone();
    no_ns.metadata.namespace = None;
    let mut no_name = fixture.tenant.clone();
    no_name.metadata.name = None;
    let mut empty_name = fixture.tenant.clone();
    empty_name.metadata.name = Some(String::new());
    for tenant in [no_uid, no_ns, no_name, empty_name] {
        let err = build_children(&tenant, &fixture.ctx).unwrap_err();
        assert_eq!(err.category(), "MissingMetadata", "{err}");
    }
}

#[test]
fn autoscaling_owns_replicas_and_the_hpa_exists_only_with_it() {
    let fixture = common::load("minimal");
    let (tenant, ctx) = (&fixture.tenant, &fixture.ctx);
    assert!(build_hpa(tenant, ctx).unwrap().is_none());
    assert_eq!(
        build_deployment(tenant, ctx).unwrap().spec.replicas,
        Some(2)
    );

    let mut no_gateway = tenant.clone();
    no_gateway.spec.gateway = None;
    assert!(build_hpa(&no_gateway, ctx).unwrap().is_none());
    assert_eq!(
        build_deployment(&no_gateway, ctx).unwrap().spec.replicas,
        Some(1)
    );

    let mut scaled = tenant.clone();
    let gateway = scaled.spec.gateway.as_mut().unwrap();
    gateway.replicas = None;
    gateway.autoscaling = Some(AutoscalingSpec {
        min_replicas: 3,
        max_replicas: 7,
        target_cpu_utilization: None,
    });
    let hpa = build_hpa(&scaled, ctx).unwrap().unwrap();
    assert_eq!(hpa.spec.min_replicas, Some(3));
    assert_eq!(hpa.spec.max_replicas, 7);
    assert_eq!(hpa.spec.scale_target_ref.kind, "Deployment");
    assert_eq!(
        hpa.spec.scale_target_ref.name,
        hpa.metadata.name.clone().unwrap()
    );
    let metrics = hpa.spec.metrics.as_ref().unwrap();
    assert_eq!(
        metrics.len(),
        1,
        "no active-calls metric without one in the context"
    );
    let cpu = metrics[0].resource.as_ref().unwrap();
    assert_eq!(cpu.target.average_utilization, Some(70));
    assert_eq!(build_deployment(&scaled, ctx).unwrap().spec.replicas, None);
}

#[test]
fn ingress_host_is_the_public_url_the_gateway_checks_signatures_against() {
    let (fixture, built) = children("acme");
    let ingress = built.ingress.as_ref().unwrap();
    let spec = ingress.spec.as_ref().unwrap();
    let rule = &spec.rules.as_ref().unwrap()[0];
    let host = rule.host.clone().unwrap();
    let public = env(&built.deployment, "SWITCHBOARD_PUBLIC_URL").unwrap();
    assert_eq!(public, format!("https://{host}"));
    assert_eq!(
        spec.tls.as_ref().unwrap()[0].hosts.as_deref(),
        Some(&[host.clone()][..])
    );
    assert_eq!(
        webhook_url(&fixture.tenant, &fixture.ctx).unwrap(),
        format!("https://{host}/twilio/voice")
    );
    let path = &rule.http.as_ref().unwrap().paths[0];
    assert_eq!(path.path.as_deref(), Some("/twilio"));
    let backend = path.backend.service.as_ref().unwrap();
    assert_eq!(Some(&backend.name), built.service.metadata.name.as_ref());
    assert_eq!(backend.port.as_ref().unwrap().name.as_deref(), Some("http"));
}

#[test]
fn without_public_access_the_gateway_answers_at_its_service_address() {
    let (fixture, built) = children("minimal");
    assert!(built.ingress.is_none());
    let url = env(&built.deployment, "SWITCHBOARD_PUBLIC_URL").unwrap();
    assert_eq!(url, "http://demo-gateway.default.svc:8080");
    assert_eq!(public_url(&fixture.tenant, &fixture.ctx).unwrap(), url);

    let (long, built) = children("long-name");
    assert!(
        built.ingress.is_none(),
        "public host without Ingress settings"
    );
    assert_eq!(
        public_url(&long.tenant, &long.ctx).unwrap(),
        "https://north.voice.example.com"
    );

    let mut bad = fixture.ctx.clone();
    bad.public = Some(switchboard_operator::PublicAccess {
        host: "https://twilio.example.com/".into(),
        ingress: Some(Default::default()),
    });
    let err = build_ingress(&fixture.tenant, &bad).unwrap_err();
    assert!(matches!(err, BuildError::InvalidPublicHost { .. }));
    assert!(build_deployment(&fixture.tenant, &bad).is_err());

    let mut no_image = fixture.ctx.clone();
    no_image.default_image = " ".into();
    let mut tenant = fixture.tenant.clone();
    tenant.spec.gateway.as_mut().unwrap().image = None;
    assert!(matches!(
        build_deployment(&tenant, &no_image),
        Err(BuildError::NoImage)
    ));
}

#[test]
fn tenant_file_is_what_the_gateway_parses_back() {
    for name in common::names() {
        let fixture = common::load(&name);
        let cm = build_config_map(&fixture.tenant, &fixture.ctx).unwrap();
        let text = &cm.data.as_ref().unwrap()[TENANT_FILE];
        let parsed: VoiceTenant = parse_tenant(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.metadata.name, fixture.tenant.metadata.name);
        assert_eq!(parsed.spec, fixture.tenant.spec, "{name}");
        assert_eq!(
            parsed.metadata.namespace, None,
            "cluster metadata stays out"
        );
        assert_eq!(parsed.metadata.uid, None);
        assert!(parsed.status.is_none());
    }
    let (_, built) = children("acme");
    assert_eq!(
        env(&built.deployment, "SWITCHBOARD_TENANT").as_deref(),
        Some(TENANT_PATH)
    );
    assert!(TENANT_PATH.ends_with(TENANT_FILE));
}

#[test]
fn transcription_off_survives_the_config_map() {
    let fixture = common::load("minimal");
    assert!(fixture.tenant.spec.agent.transcription.is_none());
    let cm = build_config_map(&fixture.tenant, &fixture.ctx).unwrap();
    let parsed = parse_tenant(&cm.data.unwrap()[TENANT_FILE]).unwrap();
    assert!(parsed.spec.agent.transcription.is_none());
}

#[test]
fn service_account_carries_the_context_annotations() {
    let (fixture, built) = children("acme");
    assert_eq!(
        built.service_account.metadata.annotations.as_ref(),
        Some(&fixture.ctx.service_account_annotations)
    );
    assert_eq!(
        built.service_account.automount_service_account_token,
        Some(false)
    );
    // The tenant's own role (spec.aws.roleArn) is the annotation, and wins over the
    // operator's template; without either there is none.
    let (mut fixture, minimal) = children("minimal");
    let role = "eks.amazonaws.com/role-arn";
    assert_eq!(
        minimal.service_account.metadata.annotations.unwrap()[role],
        "arn:aws:iam::123456789012:role/demo-dental-gateway"
    );
    fixture.ctx.service_account_annotations.insert(
        role.into(),
        "arn:aws:iam::123456789012:role/from-template".into(),
    );
    let sa =
        switchboard_operator::tenant::build::build_service_account(&fixture.tenant, &fixture.ctx)
            .unwrap();
    assert_eq!(
        sa.metadata.annotations.unwrap()[role],
        "arn:aws:iam::123456789012:role/demo-dental-gateway"
    );
    fixture.tenant.spec.aws = None;
    fixture.ctx.service_account_annotations.clear();
    let sa =
        switchboard_operator::tenant::build::build_service_account(&fixture.tenant, &fixture.ctx)
            .unwrap();
    assert_eq!(sa.metadata.annotations, None);
}

#[test]
fn active_calls_target_is_a_share_of_pod_capacity() {
    let (_, built) = children("acme");
    let metrics = built.hpa.as_ref().unwrap().spec.metrics.clone().unwrap();
    let pods = metrics.iter().find_map(|m| m.pods.as_ref()).unwrap();
    assert_eq!(pods.metric.name, "switchboard_active_calls");
    // maxCallsPerPod 200 → 70 %.
    assert_eq!(pods.target.average_value.as_ref().unwrap().0, "140");
    assert_eq!(pods.target.type_, "AverageValue");
}

#[test]
fn labels_map_is_sorted_and_stable() {
    let l: BTreeMap<String, String> = labels("acme");
    let keys: Vec<_> = l.keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "app.kubernetes.io/component",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/name"
        ]
    );
}

#[test]
fn database_tls_defaults_only_for_gateways_with_a_database() {
    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    // acme connects to Postgres: verify-full against the operator's CA, mounted from
    // the ConfigMap; changing the CA rolls the pods.
    let mut acme = common::load("acme");
    acme.ctx.database_ca = Some(CA.into());
    let d = build_deployment(&acme.tenant, &acme.ctx).unwrap();
    assert_eq!(env(&d, "PGSSLMODE").as_deref(), Some("verify-full"));
    assert_eq!(
        env(&d, "PGSSLROOTCERT").as_deref(),
        Some("/etc/switchboard/database-ca.pem")
    );
    let cm = build_config_map(&acme.tenant, &acme.ctx).unwrap();
    assert_eq!(cm.data.unwrap()["database-ca.pem"], CA);
    let mounted: Vec<String> = pod(&d).volumes.as_ref().unwrap()[0]
        .config_map
        .as_ref()
        .unwrap()
        .items
        .iter()
        .flatten()
        .map(|i| i.path.clone())
        .collect();
    assert!(
        mounted.contains(&"database-ca.pem".to_string()),
        "{mounted:?}"
    );
    let mut other = acme.ctx.clone();
    other.database_ca = Some(CA.replace("MIIB", "MIIC"));
    assert_ne!(
        checksum(&d),
        checksum(&build_deployment(&acme.tenant, &other).unwrap())
    );
    // Without a CA: verify-full against the driver's roots, nothing mounted.
    acme.ctx.database_ca = None;
    let d = build_deployment(&acme.tenant, &acme.ctx).unwrap();
    assert_eq!(env(&d, "PGSSLMODE").as_deref(), Some("verify-full"));
    assert_eq!(env(&d, "PGSSLROOTCERT"), None);

    // minimal keeps SQLite: no Postgres variables, no CA in its ConfigMap.
    let mut minimal = common::load("minimal");
    minimal.ctx.database_ca = Some(CA.into());
    let d = build_deployment(&minimal.tenant, &minimal.ctx).unwrap();
    assert_eq!(env(&d, "PGSSLMODE"), None);
    assert_eq!(env(&d, "PGSSLROOTCERT"), None);
    let cm = build_config_map(&minimal.tenant, &minimal.ctx).unwrap();
    assert!(!cm.data.unwrap().contains_key("database-ca.pem"));
}

#[test]
fn every_config_map_key_is_mounted() {
    // The knowledge bases' manifests were in the ConfigMap but not among the volume's
    // items, so SWITCHBOARD_KNOWLEDGE named files the pod did not have.
    let (_, c) = children("knowledge");
    let keys: Vec<String> = c.config_map.data.clone().unwrap().into_keys().collect();
    let mounted: Vec<String> = pod(&c.deployment).volumes.as_ref().unwrap()[0]
        .config_map
        .as_ref()
        .unwrap()
        .items
        .iter()
        .flatten()
        .map(|i| i.path.clone())
        .collect();
    assert_eq!(keys, mounted);
    let paths = env(&c.deployment, "SWITCHBOARD_KNOWLEDGE").unwrap();
    for path in paths.split(',') {
        let file = path.strip_prefix("/etc/switchboard/").unwrap();
        assert!(mounted.contains(&file.to_string()), "{path} not mounted");
    }
}

#[test]
fn secrets_manager_references_are_read_by_the_gateway_not_mounted() {
    let fixture = common::load("acme");
    let mut tenant = fixture.tenant.clone();
    let mounted = tenant
        .spec
        .twilio
        .auth_token
        .secret_key_ref
        .clone()
        .expect("the fixture mounts its auth token");
    let path = format!("\"path\":\"{}/{}\"", mounted.name, mounted.key);
    let before = serde_json::to_string(&build_deployment(&tenant, &fixture.ctx).unwrap()).unwrap();
    assert!(before.contains(&path), "{before}");
    tenant.spec.twilio.auth_token = SecretRef {
        aws_secrets_manager: Some(switchboard_crds::AwsSecretsManagerRef {
            secret_id: "switchboard/acme".into(),
            key: Some("twilioAuthToken".into()),
            version_stage: None,
        }),
        ..SecretRef::default()
    };
    let after = serde_json::to_string(&build_deployment(&tenant, &fixture.ctx).unwrap()).unwrap();
    assert!(!after.contains(&path), "{after}");
    assert!(
        !after.contains("switchboard/acme"),
        "nothing about the AWS secret is mounted"
    );
}

/// A recording tenant's upload queue is on one claim that every pod mounts at the same
/// directory (what one pod leaves queued, another uploads); no claim and no mount
/// without `spec.recordings` or without a recordings volume.
#[test]
fn every_pod_of_a_recording_tenant_mounts_its_one_queue_claim() {
    use switchboard_operator::tenant::build::recordings::RECORDINGS_DIR;
    use switchboard_operator::tenant::inputs::RecordingsVolume;

    let (fixture, c) = children("acme");
    let claim = c
        .recordings_claim
        .as_ref()
        .expect("acme records with a volume");
    let claim_name = claim.metadata.name.clone().unwrap();
    assert_eq!(claim_name, "acme-gateway-recordings");
    let spec = claim.spec.as_ref().unwrap();
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteMany".to_string()]));
    assert_eq!(spec.storage_class_name.as_deref(), Some("efs-sc"));
    let p = pod(&c.deployment);
    let volume = p
        .volumes
        .iter()
        .flatten()
        .find(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == claim_name)
        })
        .expect("the pods mount the claim");
    let mounted = container(&c.deployment)
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == volume.name)
        .expect("the container mounts it");
    assert_eq!(mounted.mount_path, RECORDINGS_DIR);
    assert_ne!(mounted.read_only, Some(true));
    assert_eq!(
        env(&c.deployment, "SWITCHBOARD_RECORDINGS_DIR").as_deref(),
        Some(RECORDINGS_DIR)
    );
    // A replica count does not change the claim: one per tenant, not per pod.
    let mut scaled = fixture.tenant.clone();
    scaled.spec.gateway.get_or_insert_default().replicas = Some(5);
    let again = build_children(&scaled, &fixture.ctx).unwrap();
    assert_eq!(again.recordings_claim.as_ref(), Some(claim));

    let without = |tenant: &VoiceTenant, volume: Option<RecordingsVolume>| {
        let mut ctx = fixture.ctx.clone();
        ctx.recordings_volume = volume;
        let c = build_children(tenant, &ctx).unwrap();
        assert!(c.recordings_claim.is_none());
        assert_eq!(env(&c.deployment, "SWITCHBOARD_RECORDINGS_DIR"), None);
        assert!(
            !pod(&c.deployment)
                .volumes
                .iter()
                .flatten()
                .any(|v| v.persistent_volume_claim.is_some())
        );
    };
    // The operator has no recordings volume: the queue stays in the data directory.
    without(&fixture.tenant, None);
    // The tenant does not record.
    let mut silent = fixture.tenant.clone();
    silent.spec.recordings = None;
    without(&silent, fixture.ctx.recordings_volume.clone());
}
