//! Kube clients for the controller tests: the simulated Kubernetes API server
//! ([`switchboard_sim::kubeapi::KubeApiSim`]) or the real one of
//! `scripts/kube-apiserver.sh` ([`TestCluster`]).

use switchboard_sim::kubeapi::KubeApiSim;

/// A kube client talking plain HTTP to `sim`, default namespace `default`, with kube's
/// built-in retry of 429/503/504 responses.
pub async fn client(sim: &KubeApiSim) -> ::kube::Client {
    client_with_retry(sim, true)
}

/// Like [`client`], with kube's retry of 429/503/504 on or off (off to see a 503 as is).
pub fn client_with_retry(sim: &KubeApiSim, retry: bool) -> ::kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = sim
        .url()
        .parse()
        .expect("the simulator's URL is a valid URI");
    let mut config = ::kube::Config::new(url);
    config.default_retry = retry;
    ::kube::Client::try_from(config).expect("a kube client for a plain-HTTP URL")
}

/// Which API server the controller tests run against (`SWITCHBOARD_TEST_CONTROLLERS`).
///
/// - `sim` (the default): a fresh [`KubeApiSim`] per test, in process.
/// - `apiserver`: the server `scripts/kube-apiserver.sh start` started
///   (`SWITCHBOARD_TEST_KUBECONFIG`), our CRDs applied, each test in a namespace of its
///   own. When that server is a full one (`SWITCHBOARD_TEST_KUBE_KIND=full`, envtest's
///   kube-apiserver and etcd from `KUBEBUILDER_ASSETS`), `apiserver` is the default.
///   The CRD-only server serves our kinds but not the core ones: run there, a test that
///   needs Secrets, ConfigMaps or Deployments fails (docs/operations.md lists which).
///   Tests that need what only the simulator has (its write log, its fault injection)
///   start with [`TestCluster::sim_only`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControllerServer {
    /// The simulated API server.
    Sim,
    /// The real one of `scripts/kube-apiserver.sh`.
    ApiServer,
}

impl ControllerServer {
    /// From `SWITCHBOARD_TEST_CONTROLLERS` (`sim` | `apiserver`), else `apiserver` when
    /// the script's server is a full one, else `sim`.
    ///
    /// # Panics
    /// On another value.
    pub fn from_env() -> Self {
        match std::env::var("SWITCHBOARD_TEST_CONTROLLERS").as_deref() {
            Ok("sim") => Self::Sim,
            Ok("apiserver") => Self::ApiServer,
            Ok(other) => panic!("SWITCHBOARD_TEST_CONTROLLERS={other}: expected sim or apiserver"),
            Err(_) if std::env::var("SWITCHBOARD_TEST_KUBE_KIND").as_deref() == Ok("full") => {
                Self::ApiServer
            }
            Err(_) => Self::Sim,
        }
    }
}

/// An API server for one controller test: a client, and the namespace the test owns.
pub struct TestCluster {
    /// A client of the server.
    pub client: ::kube::Client,
    /// The namespace of this test's objects.
    pub namespace: String,
    /// The simulated server, when that is what runs (kept alive with the cluster).
    pub sim: Option<KubeApiSim>,
    /// Which server it is.
    pub server: ControllerServer,
}

impl TestCluster {
    /// The server [`ControllerServer::from_env`] names, with a namespace named after
    /// `prefix` (unique per call). `None`: `apiserver` was asked for but the script's
    /// server is not running (skips; fails under `CI=true`).
    ///
    /// # Panics
    /// When the server cannot be reached or refuses our CRDs.
    pub async fn start(prefix: &str) -> Option<Self> {
        let namespace = format!("{prefix}-{}", crate::knowledge::unique());
        match ControllerServer::from_env() {
            ControllerServer::Sim => {
                let sim = KubeApiSim::start()
                    .await
                    .expect("the simulated API server starts");
                Some(Self {
                    client: client(&sim).await,
                    namespace,
                    sim: Some(sim),
                    server: ControllerServer::Sim,
                })
            }
            ControllerServer::ApiServer => {
                let client = apiserver_client().await?;
                install_crds(&client).await;
                let full = std::env::var("SWITCHBOARD_TEST_KUBE_KIND").as_deref() == Ok("full");
                if full {
                    // A full server refuses objects in a namespace that does not exist.
                    let ns: ::kube::Api<k8s_openapi::api::core::v1::Namespace> =
                        ::kube::Api::all(client.clone());
                    let body = serde_json::json!({
                        "apiVersion": "v1", "kind": "Namespace",
                        "metadata": { "name": namespace },
                    });
                    ns.create(
                        &::kube::api::PostParams::default(),
                        &serde_json::from_value(body).expect("a Namespace"),
                    )
                    .await
                    .expect("create the test namespace");
                } else {
                    eprintln!(
                        "{namespace}: on the CRD-only API server (SWITCHBOARD_TEST_KUBE_KIND \
                         is not full): no Secrets, ConfigMaps, Deployments, Events or Leases; \
                         a test that needs them fails (a 404 reads as an empty Status)"
                    );
                }
                Some(Self {
                    client,
                    namespace,
                    sim: None,
                    server: ControllerServer::ApiServer,
                })
            }
        }
    }
}

impl TestCluster {
    /// A simulated server whatever `SWITCHBOARD_TEST_CONTROLLERS` says, for a test that
    /// needs what only the simulator has; `why` names it, and is printed when a real
    /// server was asked for (the test then still runs, on a simulator).
    ///
    /// # Panics
    /// When the simulator does not start.
    pub async fn sim_only(prefix: &str, why: &str) -> Self {
        note_sim_only(prefix, why);
        let sim = KubeApiSim::start()
            .await
            .expect("the simulated API server starts");
        Self {
            client: client(&sim).await,
            namespace: format!("{prefix}-{}", crate::knowledge::unique()),
            sim: Some(sim),
            server: ControllerServer::Sim,
        }
    }

    /// Stands in for kube-controller-manager's Deployment controller on a real server
    /// (a bare kube-apiserver, as envtest's, rolls nothing out): while the returned guard
    /// lives, every Deployment of the namespace whose status lags its spec gets the
    /// status of a finished rollout, every replica updated and available, as envtest
    /// users patch it. On the simulator, which has that controller, it does nothing.
    pub fn roll_out_deployments(&self) -> Rollouts {
        if self.sim.is_some() {
            return Rollouts(None);
        }
        roll_out_deployments(&self.client, &self.namespace)
    }
}

/// Says (on stderr) that test `test` runs on a simulator although a real server was
/// asked for, because it needs `why`; silent when the simulator was asked for.
pub fn note_sim_only(test: &str, why: &str) {
    if ControllerServer::from_env() == ControllerServer::ApiServer {
        eprintln!(
            "{test}: runs on the simulated API server regardless of \
             SWITCHBOARD_TEST_CONTROLLERS=apiserver: it needs {why}"
        );
    }
}

/// The stand-in for the Deployment controller of [`TestCluster::roll_out_deployments`],
/// on any server (tests/tests/operator_tenant.rs runs it on a simulator whose own
/// Deployment controller is off, to show it is what a real server lacks).
pub fn roll_out_deployments(client: &::kube::Client, namespace: &str) -> Rollouts {
    let api: ::kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        ::kube::Api::namespaced(client.clone(), namespace);
    Rollouts(Some(tokio::spawn(async move {
        loop {
            // Errors (a CRD-only server serves no Deployments) are retried: the
            // test that waits for a rollout then fails on its own timeout.
            if let Ok(list) = api.list(&Default::default()).await {
                for d in list.items {
                    if let Some((name, status)) = finished_rollout(&d) {
                        let _ = api
                            .patch_status(
                                &name,
                                &::kube::api::PatchParams::default(),
                                &::kube::api::Patch::Merge(serde_json::json!({
                                    "status": status
                                })),
                            )
                            .await;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })))
}

/// The rollout stand-in of [`TestCluster::roll_out_deployments`]; stops when dropped.
pub struct Rollouts(Option<tokio::task::JoinHandle<()>>);

impl Drop for Rollouts {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// `(name, status)` of a finished rollout of `d`, or `None` when its status already says so.
fn finished_rollout(
    d: &k8s_openapi::api::apps::v1::Deployment,
) -> Option<(String, serde_json::Value)> {
    let name = d.metadata.name.clone()?;
    let generation = d.metadata.generation?;
    let replicas = d.spec.replicas.unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let done = status.observed_generation == Some(generation)
        && [
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
        ]
        .iter()
        .all(|n| n.unwrap_or(0) == replicas);
    if done {
        return None;
    }
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let condition = |type_: &str, reason: &str| {
        serde_json::json!({
            "type": type_, "status": "True", "reason": reason,
            "lastUpdateTime": now, "lastTransitionTime": now,
        })
    };
    Some((
        name,
        serde_json::json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                condition("Available", "MinimumReplicasAvailable"),
                condition("Progressing", "NewReplicaSetAvailable"),
            ],
        }),
    ))
}

/// A client of the server `scripts/kube-apiserver.sh` started (its kubeconfig), or
/// `None` when it is not running (the shared gate: fails under `CI=true`).
///
/// # Panics
/// When the kubeconfig does not parse.
pub async fn apiserver_client() -> Option<::kube::Client> {
    use ::kube::config::{KubeConfigOptions, Kubeconfig};
    let path = switchboard_testenv::service_path(
        "SWITCHBOARD_TEST_KUBECONFIG",
        "eval \"$(scripts/kube-apiserver.sh start)\"",
    )?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::read_from(&path).expect("the script's kubeconfig parses");
    let config = ::kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration from the script's kubeconfig");
    Some(::kube::Client::try_from(config).expect("a kube client"))
}

/// Server-side applies the generated CRDs (`crds/generated/crds.yaml`) and waits until
/// both are Established.
///
/// # Panics
/// When the server refuses them or they do not become Established in 30 s.
pub async fn install_crds(client: &::kube::Client) {
    use ::kube::api::{Api, Patch, PatchParams};
    use ::kube::runtime::wait::{await_condition, conditions};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/generated/crds.yaml");
    let text = std::fs::read_to_string(&path).expect("the generated CRDs");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("CRD YAML");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in docs.into_iter().filter(|d| !d.is_null()) {
        let name = crd["metadata"]["name"]
            .as_str()
            .expect("a CRD name")
            .to_string();
        api.patch(
            &name,
            &PatchParams::apply("switchboard-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("the server refused CRD {name}: {e}"));
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established"))
        .expect("watching the CRD");
    }
}
