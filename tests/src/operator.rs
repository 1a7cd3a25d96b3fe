//! Harness of the operator tests: the real operator (controllers, finalizer, leader
//! election) in-process against a [`crate::kube::TestCluster`] (the simulated Kubernetes
//! API server, or a real one), with short backoffs and Leases, and helpers to create
//! tenants in a test's namespace and wait for conditions.

use std::sync::Arc;
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use switchboard_crds::VoiceTenant;
use switchboard_operator::metrics::{Health, Metrics};
use switchboard_operator::run::RunError;
use switchboard_operator::tenant::config::OperatorConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The Secret every test tenant references (Twilio token and OpenAI key).
pub const SECRET: &str = "tenant-secrets";
/// How long a wait for convergence may take before the test fails: generous, the
/// waits poll and return as soon as the condition holds.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// The configuration of a test operator: short retries and Leases, watching only
/// `namespace` (so that tests sharing a real API server do not reconcile each other's
/// tenants) and holding its Lease there.
pub fn config(identity: &str, namespace: &str) -> OperatorConfig {
    let mut c = OperatorConfig::new(identity);
    c.default_image = "registry.test/switchboard:test".into();
    c.retry_min = Duration::from_millis(100);
    c.retry_max = Duration::from_secs(1);
    c.lease_duration = Duration::from_secs(3);
    c.lease_grace = Duration::from_secs(1);
    c.lease_namespace = namespace.into();
    c.watch_namespace = Some(namespace.into());
    c.concurrency = 8;
    c
}

/// A running operator.
pub struct Operator {
    /// Its metrics (writes it sent, leadership).
    pub metrics: Arc<Metrics>,
    /// Its readiness.
    pub health: Arc<Health>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), RunError>>,
}

impl Operator {
    /// Starts an operator with `config` against `client`.
    pub fn start(client: ::kube::Client, config: OperatorConfig) -> Operator {
        crate::init();
        let metrics = Arc::new(Metrics::new().expect("metrics register"));
        let health = Arc::new(Health::new());
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(switchboard_operator::leader::run(
            client,
            config,
            metrics.clone(),
            health.clone(),
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        ));
        Operator {
            metrics,
            health,
            stop,
            task,
        }
    }

    /// Whether this operator currently leads.
    pub fn is_leader(&self) -> bool {
        self.metrics.leader.get() == 1
    }

    /// Stops it (finishing reconciles in flight, releasing the Lease) and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(CONVERGE, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("operator failed: {e}"),
            Ok(Err(e)) => panic!("operator task: {e}"),
            Err(_) => panic!("operator did not stop"),
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or fails the test after
/// [`CONVERGE`] naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_within(what, CONVERGE, check).await
}

/// Polls `check` every 50 ms until it returns `Some`, or fails the test after `limit`
/// naming `what`.
pub async fn wait_within<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Secret the tenants of `namespace` reference, with `token` as the Twilio auth
/// token.
pub fn secret(namespace: &str, token: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(SECRET.into());
    s.metadata.namespace = Some(namespace.into());
    s.metadata.labels = Some(
        [(
            switchboard_operator::labels::USABLE_SECRET_LABEL.to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    s.data = Some(
        [
            (
                "twilio-auth-token".to_string(),
                ByteString(token.as_bytes().to_vec()),
            ),
            (
                "openai-api-key".to_string(),
                ByteString(b"sk-test".to_vec()),
            ),
        ]
        .into(),
    );
    s
}

/// Creates (or replaces the data of) the Secret of the tenants of `namespace`.
pub async fn put_secret(client: &::kube::Client, namespace: &str, token: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let s = secret(namespace, token);
    api.patch(
        SECRET,
        &PatchParams::apply("test").force(),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": namespace, "labels": s.metadata.labels},
            "data": s.data,
        })),
    )
    .await
    .expect("apply the tenants' Secret");
}

/// A tenant manifest named `name` in `namespace`; `extra` is YAML appended under `spec`
/// (indented by two spaces).
pub fn tenant(namespace: &str, name: &str, extra: &str) -> VoiceTenant {
    let yaml = format!(
        r#"apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata:
  name: {name}
  namespace: {namespace}
spec:
  displayName: Demo Dental
  phoneNumbers: ["+15005550006"]
  agent:
    greeting:
      text: Hello from {name}
  twilio:
    accountSid: ACe5b9b91d74144c1eab5502f239bd8ed9
    authToken:
      secretKeyRef: {{ name: {SECRET}, key: twilio-auth-token }}
  openai:
    apiKey:
      secretKeyRef: {{ name: {SECRET}, key: openai-api-key }}
{extra}"#
    );
    switchboard_crds::parse_tenant(&yaml).expect("test tenant parses")
}

/// Creates a tenant (in the namespace of its manifest).
pub async fn create(client: &::kube::Client, vt: &VoiceTenant) -> VoiceTenant {
    let namespace = vt
        .metadata
        .namespace
        .as_deref()
        .expect("a namespaced manifest");
    tenants(client, namespace)
        .create(&PostParams::default(), vt)
        .await
        .expect("create tenant")
}

/// Deletes a tenant (it stays while a finalizer holds it).
pub async fn delete(client: &::kube::Client, namespace: &str, name: &str) {
    tenants(client, namespace)
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete tenant");
}

/// The tenants of `namespace`.
pub fn tenants(client: &::kube::Client, namespace: &str) -> Api<VoiceTenant> {
    Api::namespaced(client.clone(), namespace)
}

/// Reads a tenant.
pub async fn get(client: &::kube::Client, namespace: &str, name: &str) -> Option<VoiceTenant> {
    tenants(client, namespace)
        .get_opt(name)
        .await
        .expect("read tenant")
}

/// The `(status, reason)` of condition `type_` of tenant `name`.
pub async fn condition(
    client: &::kube::Client,
    namespace: &str,
    name: &str,
    type_: &str,
) -> Option<(String, String)> {
    let vt = get(client, namespace, name).await?;
    vt.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason))
}

/// Waits until tenant `name` has condition `type_` = `status` with `reason`
/// (any reason when `None`) for its current generation; returns the tenant.
pub async fn wait_condition(
    client: &::kube::Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> VoiceTenant {
    wait_for(&format!("{name}: {type_}={status} {reason:?}"), || async {
        let vt = get(client, namespace, name).await?;
        let st = vt.status.as_ref()?;
        if st.observed_generation != vt.metadata.generation {
            return None;
        }
        let c = st.conditions.iter().find(|c| c.type_ == type_)?;
        (c.status == status && reason.is_none_or(|r| c.reason == r)).then_some(vt.clone())
    })
    .await
}

/// Waits until tenant `name` is Ready for its current generation.
pub async fn wait_ready(client: &::kube::Client, namespace: &str, name: &str) -> VoiceTenant {
    wait_condition(client, namespace, name, "Ready", "True", None).await
}
