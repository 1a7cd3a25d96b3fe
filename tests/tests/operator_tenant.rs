//! The real VoiceTenant controller against a [`TestCluster`] (the simulated Kubernetes
//! API server by default; a real one with `SWITCHBOARD_TEST_CONTROLLERS=apiserver`, the
//! default when `scripts/kube-apiserver.sh` runs envtest's full kube-apiserver), and real
//! Postgres for the database parts: what a platform engineer sees after `kubectl apply`,
//! edit, rotate and delete. Each test owns a namespace and its operator watches only
//! that, so the tests share a real server concurrently. On a real server a stand-in for
//! the Deployment controller reports rollouts ([`TestCluster::roll_out_deployments`]);
//! checks of the simulator's write log run on the simulator only.

#![allow(clippy::unwrap_used)] // shared assertion helpers outside #[test] fns

use std::time::Duration;

use ::kube::api::{Api, Patch, PatchParams};
use ::kube::{Client, Resource};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::json;
use switchboard_operator::FINALIZER;
use switchboard_operator::database::{Ownership, Provisioner, TenantDatabase};
use switchboard_operator::labels::child_name;
use switchboard_sim::kubeapi::{KubeApiOptions, KubeApiSim};
use switchboard_tests::kube::{Rollouts, TestCluster, roll_out_deployments};
use switchboard_tests::operator::{
    Operator, condition, config, create, delete, get, put_secret, tenant, tenants, wait_condition,
    wait_for, wait_ready,
};
use switchboard_tests::{Proxy, via};

const CHECKSUM: &str = "voice.switchboard.dev/config-checksum";

/// The test's cluster (`None`: a real server was asked for and is not running), with
/// Deployments rolled out on a real server and no tenants' Secret yet.
async fn empty_cluster(prefix: &str) -> Option<(TestCluster, Rollouts)> {
    let cluster = TestCluster::start(prefix).await?;
    let rollouts = cluster.roll_out_deployments();
    Some((cluster, rollouts))
}

/// [`empty_cluster`] with the tenants' Secret.
async fn setup(prefix: &str) -> Option<(TestCluster, Rollouts)> {
    let (cluster, rollouts) = empty_cluster(prefix).await?;
    put_secret(&cluster.client, &cluster.namespace, "token-1").await;
    Some((cluster, rollouts))
}

fn api<K>(c: &Client, ns: &str) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(c.clone(), ns)
}

async fn checksum(c: &Client, ns: &str, name: &str) -> String {
    let d = api::<Deployment>(c, ns)
        .get(&child_name(name))
        .await
        .unwrap();
    d.spec.template.metadata.unwrap().annotations.unwrap()[CHECKSUM].clone()
}

async fn patch_spec(c: &Client, ns: &str, name: &str, spec: serde_json::Value) {
    tenants(c, ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

/// Converged: Ready, rollout complete, for the current generation.
async fn wait_settled(c: &Client, ns: &str, name: &str) {
    wait_ready(c, ns, name).await;
    wait_condition(c, ns, name, "Progressing", "False", Some("RolloutComplete")).await;
}

/// Writes sent over a short window once everything has settled: those the operator
/// counted (on any server) and, on the simulator, every write its log recorded.
async fn writes_over_window(cluster: &TestCluster, op: &Operator, window: Duration) -> Vec<String> {
    let sim_before = cluster.sim.as_ref().map(|sim| sim.write_log().len());
    let op_before = op.metrics.writes_total();
    tokio::time::sleep(window).await;
    let mut writes: Vec<String> = match (&cluster.sim, sim_before) {
        (Some(sim), Some(before)) => sim.write_log()[before..]
            .iter()
            .map(|w| format!("{} {}/{} {}", w.verb, w.resource, w.name, w.field_manager))
            .collect(),
        _ => Vec::new(),
    };
    let op_writes = op.metrics.writes_total() - op_before;
    if op_writes > 0 {
        writes.push(format!("{op_writes} writes counted by the operator"));
    }
    writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_gives_children_ready_status_and_then_silence() {
    let Some((cluster, _rollouts)) = setup("create").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    // A short periodic requeue: the idle window below then covers several of them.
    cfg.requeue_interval = Duration::from_millis(500);
    let op = Operator::start(c.clone(), cfg);
    // Ready (/readyz) once its watches listed, also in an empty cluster.
    wait_for("operator ready", || async {
        op.health.ready().then_some(())
    })
    .await;

    let created = create(&c, &tenant(ns, "dental", "")).await;
    let vt = wait_ready(&c, ns, "dental").await;
    let uid = created.metadata.uid.clone().unwrap();
    let status = vt.status.clone().unwrap();
    assert_eq!(status.observed_generation, vt.metadata.generation);
    assert_eq!(
        status.webhook_url.as_deref(),
        Some(format!("http://dental-gateway.{ns}.svc:8080/twilio/voice").as_str())
    );
    assert_eq!(status.ready_replicas, Some(1));
    assert_eq!(
        status.database, None,
        "no admin URL: the gateway keeps SQLite"
    );
    // No database managed: no finalizer to block deletion.
    assert!(
        !vt.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&FINALIZER.to_string())
    );

    let name = child_name("dental");
    let owners = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        let refs = meta.owner_references.clone().unwrap_or_default();
        assert_eq!(refs.len(), 1, "{:?}", meta.name);
        assert_eq!(refs[0].uid, uid);
        assert_eq!(refs[0].controller, Some(true));
    };
    owners(&api::<Deployment>(&c, ns).get(&name).await.unwrap().metadata);
    owners(&api::<ConfigMap>(&c, ns).get(&name).await.unwrap().metadata);
    owners(&api::<Service>(&c, ns).get(&name).await.unwrap().metadata);
    owners(
        &api::<ServiceAccount>(&c, ns)
            .get(&name)
            .await
            .unwrap()
            .metadata,
    );
    owners(
        &api::<PodDisruptionBudget>(&c, ns)
            .get(&name)
            .await
            .unwrap()
            .metadata,
    );
    assert!(
        api::<HorizontalPodAutoscaler>(&c, ns)
            .get_opt(&name)
            .await
            .unwrap()
            .is_none()
    );
    let cm = api::<ConfigMap>(&c, ns).get(&name).await.unwrap();
    assert!(cm.data.unwrap()["tenant.yaml"].contains("Hello from dental"));

    // Idle: after convergence, nothing is written, not even by the periodic requeue.
    wait_settled(&c, ns, "dental").await;
    let reconciles_before = reconciles(&op);
    let writes = writes_over_window(&cluster, &op, Duration::from_secs(3)).await;
    assert_eq!(writes, Vec::<String>::new(), "an idle operator wrote");
    assert!(
        reconciles(&op) > reconciles_before + 2,
        "the periodic requeue ran during the window"
    );
    op.stop().await;
}

fn reconciles(op: &Operator) -> u64 {
    op.metrics
        .reconciliations
        .with_label_values(&["voicetenant"])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_changes_secret_rotation_and_autoscaling_roll_and_prune() {
    let Some((cluster, _rollouts)) = setup("roll").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    let op = Operator::start(c.clone(), cfg);
    create(
        &c,
        &tenant(ns, "dental",
            "  gateway:\n    autoscaling: { minReplicas: 2, maxReplicas: 5, targetCpuUtilization: 60 }\n",
        ),
    )
    .await;
    wait_settled(&c, ns, "dental").await;
    let name = child_name("dental");
    let hpa = api::<HorizontalPodAutoscaler>(&c, ns)
        .get(&name)
        .await
        .unwrap();
    assert_eq!(hpa.spec.max_replicas, 5);
    let first = checksum(&c, ns, "dental").await;

    // A greeting change: the ConfigMap follows, the pods roll, observedGeneration follows.
    patch_spec(
        &c,
        ns,
        "dental",
        json!({"agent": {"greeting": {"text": "New greeting"}}}),
    )
    .await;
    let vt = wait_settled_generation(&c, ns, "dental").await;
    assert_eq!(vt.metadata.generation, Some(2));
    let cm = api::<ConfigMap>(&c, ns).get(&name).await.unwrap();
    assert!(cm.data.unwrap()["tenant.yaml"].contains("New greeting"));
    let second = checksum(&c, ns, "dental").await;
    assert_ne!(first, second, "a config change rolls the pods");

    // The referenced Secret is rotated: the pods roll, the tenant is unchanged.
    put_secret(&c, ns, "token-2").await;
    let third = wait_for("checksum after rotation", || {
        let c = c.clone();
        let second = second.clone();
        async move {
            let now = checksum(&c, ns, "dental").await;
            (now != second).then_some(now)
        }
    })
    .await;
    assert_ne!(third, first);

    // Autoscaling off, fixed replicas: the HPA is pruned, the Deployment scales.
    patch_spec(
        &c,
        ns,
        "dental",
        json!({"gateway": {"autoscaling": null, "replicas": 3}}),
    )
    .await;
    wait_settled_generation(&c, ns, "dental").await;
    wait_for("HPA pruned", || {
        let c = c.clone();
        let name = name.clone();
        async move {
            api::<HorizontalPodAutoscaler>(&c, ns)
                .get_opt(&name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    let d = api::<Deployment>(&c, ns).get(&name).await.unwrap();
    assert_eq!(d.spec.replicas, Some(3));
    let vt = wait_ready(&c, ns, "dental").await;
    assert_eq!(vt.status.unwrap().desired_replicas, Some(3));

    // Settled again: silence.
    wait_settled(&c, ns, "dental").await;
    let writes = writes_over_window(&cluster, &op, Duration::from_secs(2)).await;
    assert_eq!(writes, Vec::<String>::new());
    op.stop().await;
}

/// A recording tenant gets one upload-queue claim that its gateway pods mount; dropping
/// `spec.recordings` prunes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_tenant_gets_one_queue_claim_for_all_its_pods() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let Some((cluster, _rollouts)) = setup("recq").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    cfg.gateway_recordings_volume = Some(switchboard_operator::tenant::inputs::RecordingsVolume {
        size: "20Gi".into(),
        storage_class_name: Some("efs-sc".into()),
        access_mode: "ReadWriteMany".into(),
    });
    let op = Operator::start(c.clone(), cfg);
    create(
        &c,
        &tenant(
            ns,
            "talky",
            "  gateway: { replicas: 3 }\n  recordings: { enabled: true, bucket: calls }\n",
        ),
    )
    .await;
    wait_settled(&c, ns, "talky").await;
    let claim_name = format!("{}-recordings", child_name("talky"));
    let claim = api::<PersistentVolumeClaim>(&c, ns)
        .get(&claim_name)
        .await
        .unwrap();
    let spec = claim.spec.unwrap();
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteMany".to_string()]));
    assert_eq!(spec.storage_class_name.as_deref(), Some("efs-sc"));
    let d = api::<Deployment>(&c, ns)
        .get(&child_name("talky"))
        .await
        .unwrap();
    let pod = d.spec.template.spec.unwrap();
    assert!(pod.volumes.unwrap().iter().any(|v| {
        v.persistent_volume_claim
            .as_ref()
            .is_some_and(|p| p.claim_name == claim_name)
    }));

    patch_spec(&c, ns, "talky", json!({"recordings": null})).await;
    wait_settled_generation(&c, ns, "talky").await;
    // Gone, or (a real server's pvc-protection finalizer, removed by a controller
    // manager) being deleted.
    wait_for("queue claim pruned", || {
        let c = c.clone();
        let claim_name = claim_name.clone();
        async move {
            api::<PersistentVolumeClaim>(&c, ns)
                .get_opt(&claim_name)
                .await
                .unwrap()
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
                .then_some(())
        }
    })
    .await;
    op.stop().await;
}

async fn wait_settled_generation(
    c: &Client,
    ns: &str,
    name: &str,
) -> switchboard_crds::VoiceTenant {
    wait_settled(c, ns, name).await;
    get(c, ns, name).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_is_refused_without_children() {
    // A real server's CRD schema refuses this tenant (the E.164 pattern) before the
    // operator sees it; tests/tests/apiserver.rs checks that refusal.
    let cluster = TestCluster::sim_only(
        "invalid",
        "a server that stores a tenant its CRD schema would refuse",
    )
    .await;
    let _rollouts = cluster.roll_out_deployments();
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    put_secret(&c, ns, "token-1").await;
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    let op = Operator::start(c.clone(), cfg);
    // The API server here does not run the CRD schema; the operator's own validation
    // still refuses (as it would a tenant written before a schema rule existed).
    let mut vt = tenant(ns, "broken", "");
    vt.spec.phone_numbers = vec!["555-0100".into()];
    create(&c, &vt).await;
    let vt = wait_condition(&c, ns, "broken", "Degraded", "True", Some("InvalidSpec")).await;
    let status = vt.status.unwrap();
    let degraded = status
        .conditions
        .iter()
        .find(|x| x.type_ == "Degraded")
        .unwrap();
    assert!(
        degraded.message.contains("phoneNumbers"),
        "{}",
        degraded.message
    );
    let ready = status
        .conditions
        .iter()
        .find(|x| x.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");
    let name = child_name("broken");
    assert!(
        api::<Deployment>(&c, ns)
            .get_opt(&name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        api::<ConfigMap>(&c, ns)
            .get_opt(&name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        api::<ServiceAccount>(&c, ns)
            .get_opt(&name)
            .await
            .unwrap()
            .is_none()
    );
    // Counted after the reconcile returns, which is after its status write: waited for.
    wait_for("an InvalidSpec failure counted", || async {
        (op.metrics
            .failures
            .with_label_values(&["voicetenant", "InvalidSpec"])
            .get()
            >= 1)
            .then_some(())
    })
    .await;

    // Fixed: it converges.
    patch_spec(&c, ns, "broken", json!({"phoneNumbers": ["+15005550006"]})).await;
    wait_settled(&c, ns, "broken").await;
    op.stop().await;
}

/// Issue 12 §1 (b–e): what a tenant's editor may point the gateway at. Each of these
/// tenants went Ready before (the operator had no such checks; the secondary token was
/// not mounted), so each assertion fails on the code before this change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_references_only_labelled_secrets_allowed_hosts_and_images() {
    let Some((cluster, _rollouts)) = setup("refs").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    let op = Operator::start(c.clone(), cfg);
    let secrets = api::<Secret>(&c, ns);
    let plain = |name: &str| {
        let mut s = switchboard_tests::operator::secret(ns, "x");
        s.metadata.name = Some(name.into());
        s.metadata.labels = None;
        s
    };

    // (a) An unlabelled Secret is refused, naming it and the label; labelled, it works.
    secrets
        .create(&Default::default(), &plain("other-app"))
        .await
        .unwrap();
    let mut vt = tenant(ns, "sneaky", "");
    vt.spec.openai.api_key.secret_key_ref.as_mut().unwrap().name = "other-app".into();
    create(&c, &vt).await;
    let vt = wait_condition(
        &c,
        ns,
        "sneaky",
        "Degraded",
        "True",
        Some("SecretNotUsable"),
    )
    .await;
    let message = condition_message(&vt, "Degraded");
    assert!(
        message.contains("other-app") && message.contains("voice.switchboard.dev/usable=true"),
        "{message}"
    );
    assert!(
        api::<Deployment>(&c, ns)
            .get_opt(&child_name("sneaky"))
            .await
            .unwrap()
            .is_none()
    );
    secrets
        .patch(
            "other-app",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"voice.switchboard.dev/usable": "true"}}}),
            ),
        )
        .await
        .unwrap();
    wait_settled(&c, ns, "sneaky").await;

    // (b) realtimeUrl to a host outside --realtime-hosts; (c) an image outside
    // --allowed-gateway-images; (d) unsigned webhooks.
    let mut exfil = tenant(ns, "exfil", "");
    exfil.spec.openai.realtime_url = Some("wss://collector.example/v1/realtime".into());
    let own_image = tenant(
        ns,
        "own-image",
        "  gateway:\n    image: docker.io/attacker/gateway:1\n",
    );
    let mut open_relay = tenant(ns, "open-relay", "");
    open_relay.spec.twilio.validate_signatures = false;
    for (vt, reason) in [
        (exfil, "RealtimeHostNotAllowed"),
        (own_image, "GatewayImageNotAllowed"),
        (open_relay, "UnsignedWebhooksRefused"),
    ] {
        let name = vt.metadata.name.clone().unwrap();
        let name = name.as_str();
        create(&c, &vt).await;
        wait_condition(&c, ns, name, "Degraded", "True", Some(reason)).await;
        assert!(
            api::<Deployment>(&c, ns)
                .get_opt(&child_name(name))
                .await
                .unwrap()
                .is_none(),
            "{name}: no gateway"
        );
    }

    // (e) The secondary Auth Token is mounted like the primary.
    let mut rotation = plain("rotation");
    rotation.metadata.labels = switchboard_tests::operator::secret(ns, "x").metadata.labels;
    secrets
        .create(&Default::default(), &rotation)
        .await
        .unwrap();
    let mut vt = tenant(ns, "rotating", "");
    vt.spec.twilio.secondary_auth_token = Some(
        serde_json::from_value(
            json!({"secretKeyRef": {"name": "rotation", "key": "twilio-auth-token"}}),
        )
        .unwrap(),
    );
    create(&c, &vt).await;
    wait_settled(&c, ns, "rotating").await;
    let d = api::<Deployment>(&c, ns)
        .get(&child_name("rotating"))
        .await
        .unwrap();
    let volumes = serde_json::to_string(&d.spec.template.spec.unwrap().volumes).unwrap();
    assert!(volumes.contains("rotation/twilio-auth-token"), "{volumes}");
    op.stop().await;
}

/// Issue 12 §1 (b), the rest of it: every URL that receives a tenant's key is under the
/// operator's host lists, not only `realtimeUrl`. Before this change each of these
/// tenants went Ready with a gateway that would have sent the OpenAI key (or the
/// knowledge base's key) and the callers' transcripts or questions to the editor's host,
/// so each assertion fails on the code before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_go_only_to_allowed_analysis_and_knowledge_hosts() {
    let Some((cluster, _rollouts)) = setup("hosts").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    // An OpenAI-compatible provider the operator trusts besides OpenAI.
    cfg.references
        .endpoints
        .openai
        .secure
        .push("llm.example.com".into());
    let op = Operator::start(c.clone(), cfg);
    let no_gateway = |name: &'static str| {
        let c = c.clone();
        let ns = ns.to_string();
        async move {
            let ns = ns.as_str();
            assert!(
                api::<Deployment>(&c, ns)
                    .get_opt(&child_name(name))
                    .await
                    .unwrap()
                    .is_none(),
                "{name}: a gateway was deployed"
            );
            let leaked: Vec<String> = api::<ConfigMap>(&c, ns)
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|cm| {
                    serde_json::to_string(cm)
                        .unwrap()
                        .contains("collector.example")
                })
                .map(|cm| cm.metadata.name.unwrap_or_default())
                .collect();
            assert!(leaked.is_empty(), "{name}: ConfigMaps {leaked:?}");
        }
    };

    // (a) The analysis at a host outside --openai-hosts, with or without a key of its own.
    for (name, key) in [("analysis-exfil", false), ("analysis-exfil-keyed", true)] {
        let key = if key {
            "    apiKey: { secretKeyRef: { name: tenant-secrets, key: openai-api-key } }\n"
        } else {
            ""
        };
        create(
            &c,
            &tenant(
                ns,
                name,
                &format!(
                    "  analysis:\n    model: gpt-4o-mini\n    baseUrl: https://collector.example/v1\n{key}"
                ),
            ),
        )
        .await;
        let vt = wait_condition(
            &c,
            ns,
            name,
            "Degraded",
            "True",
            Some("AnalysisHostNotAllowed"),
        )
        .await;
        let message = condition_message(&vt, "Degraded");
        assert!(
            message.contains("https://collector.example/v1") && message.contains("--openai-hosts"),
            "{message}"
        );
        no_gateway(name).await;
    }

    // (b) An allowed host that is not OpenAI's: the tenant's OpenAI key is not lent to
    // it; naming a key for the analysis makes the tenant converge.
    create(
        &c,
        &tenant(
            ns,
            "borrowed-key",
            "  analysis:\n    model: gpt-4o-mini\n    baseUrl: https://llm.example.com/v1\n",
        ),
    )
    .await;
    let vt = wait_condition(
        &c,
        ns,
        "borrowed-key",
        "Degraded",
        "True",
        Some("AnalysisApiKeyRequired"),
    )
    .await;
    assert!(
        condition_message(&vt, "Degraded").contains("spec.analysis.apiKey"),
        "{}",
        condition_message(&vt, "Degraded")
    );
    no_gateway("borrowed-key").await;
    patch_spec(
        &c,
        ns,
        "borrowed-key",
        json!({"analysis": {"apiKey": {"secretKeyRef": {"name": "tenant-secrets", "key": "openai-api-key"}}}}),
    )
    .await;
    wait_settled(&c, ns, "borrowed-key").await;

    // (c) A knowledge base the agent searches, its embedder at a host outside
    // --openai-hosts: the gateway would embed every question there with the key.
    let kb = switchboard_crds::parse_knowledge_base(&format!(
        "apiVersion: voice.switchboard.dev/v1alpha1
kind: KnowledgeBase
metadata:
  name: leaky-faq
  namespace: {ns}
spec:
  tenant: kb-exfil
  embedder:
    type: openai
    openai:
      baseUrl: https://collector.example/v1
      apiKey: {{ secretKeyRef: {{ name: tenant-secrets, key: openai-api-key }} }}
  sources:
    - inline: {{ documents: [{{ title: Hours, content: Open 9 to 5. }}] }}
"
    ))
    .unwrap();
    api::<switchboard_crds::KnowledgeBase>(&c, ns)
        .create(&Default::default(), &kb)
        .await
        .unwrap();
    let mut vt = tenant(ns, "kb-exfil", "");
    vt.spec.agent.knowledge_bases = vec!["leaky-faq".into()];
    create(&c, &vt).await;
    let vt = wait_condition(
        &c,
        ns,
        "kb-exfil",
        "Degraded",
        "True",
        Some("EmbedderHostNotAllowed"),
    )
    .await;
    let message = condition_message(&vt, "Degraded");
    assert!(
        message.contains("leaky-faq") && message.contains("collector.example"),
        "{message}"
    );
    no_gateway("kb-exfil").await;
    // The KnowledgeBase controller refuses it too (it would index with the same key).
    let kb = wait_for("the knowledge base refused", || {
        let c = c.clone();
        async move {
            api::<switchboard_crds::KnowledgeBase>(&c, ns)
                .get("leaky-faq")
                .await
                .ok()
                .filter(|kb| {
                    switchboard_tests::knowledge::condition(kb, "Degraded")
                        .is_some_and(|(s, r)| s == "True" && r == "EmbedderHostNotAllowed")
                })
        }
    })
    .await;
    assert_eq!(kb.status.unwrap().chunks, 0);
    op.stop().await;
}

/// Issue 11 item 6: a tenant whose agent lists a knowledge base that does not exist
/// went Ready silently. Now Ready (the agent works without it) and Degraded
/// `KnowledgeBaseNotFound`, with an Event naming it; before, the test failed waiting for
/// that condition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_knowledge_base_degrades_but_keeps_ready() {
    let Some((cluster, _rollouts)) = setup("nokb").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    let op = Operator::start(c.clone(), cfg);
    let mut vt = tenant(ns, "forgetful", "");
    vt.spec.agent.knowledge_bases = vec!["no-such-faq".into()];
    create(&c, &vt).await;
    let vt = wait_condition(
        &c,
        ns,
        "forgetful",
        "Degraded",
        "True",
        Some("KnowledgeBaseNotFound"),
    )
    .await;
    assert!(condition_message(&vt, "Degraded").contains("no-such-faq"));
    wait_ready(&c, ns, "forgetful").await;
    let events: Api<k8s_openapi::api::events::v1::Event> = api(&c, ns);
    let list = events.list(&Default::default()).await.unwrap();
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("KnowledgeBaseNotFound")
                && e.note
                    .as_deref()
                    .unwrap_or_default()
                    .contains("no-such-faq")),
        "{list:?}"
    );
    op.stop().await;
}

fn condition_message(vt: &switchboard_crds::VoiceTenant, type_: &str) -> String {
    vt.status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap()
        .message
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_degrades_until_it_exists() {
    let Some((cluster, _rollouts)) = empty_cluster("nosecret").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    let op = Operator::start(c.clone(), cfg);
    create(&c, &tenant(ns, "dental", "")).await;
    wait_condition(
        &c,
        ns,
        "dental",
        "Degraded",
        "True",
        Some("SecretNotObserved"),
    )
    .await;
    put_secret(&c, ns, "token-1").await;
    wait_settled(&c, ns, "dental").await;
    op.stop().await;
}

/// On a server without kube-controller-manager (envtest's bare kube-apiserver) nothing
/// rolls a Deployment out, and the tests on such a server get to Ready through the
/// stand-in of [`TestCluster::roll_out_deployments`]. Shown here on a simulator with its
/// own Deployment controller off (a simulator whatever `SWITCHBOARD_TEST_CONTROLLERS`
/// says): the tenant stays RollingOut, not Ready, until the stand-in runs; then it
/// settles, and a spec change rolls out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_deployment_controller_the_rollout_stand_in_takes_a_tenant_to_ready() {
    switchboard_tests::kube::note_sim_only(
        "standin",
        "a simulator with its Deployment controller off",
    );
    let sim = KubeApiSim::start_on(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        KubeApiOptions {
            simulate_workloads: false,
            ..KubeApiOptions::default()
        },
    )
    .await
    .unwrap();
    let c = switchboard_tests::kube::client(&sim).await;
    let ns = "standin";
    put_secret(&c, ns, "token-1").await;
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    let op = Operator::start(c.clone(), cfg);
    create(&c, &tenant(ns, "dental", "")).await;
    wait_condition(&c, ns, "dental", "Progressing", "True", Some("RollingOut")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ready, _) = condition(&c, ns, "dental", "Ready").await.unwrap();
    assert_eq!(ready, "False", "Ready without any rollout");

    let _rollouts = roll_out_deployments(&c, ns);
    wait_settled(&c, ns, "dental").await;
    let first = checksum(&c, ns, "dental").await;
    patch_spec(
        &c,
        ns,
        "dental",
        json!({"agent": {"greeting": {"text": "New greeting"}}}),
    )
    .await;
    let vt = wait_settled_generation(&c, ns, "dental").await;
    assert_eq!(vt.metadata.generation, Some(2));
    assert_ne!(checksum(&c, ns, "dental").await, first);
    op.stop().await;
}

// ---------------------------------------------------------------------------------
// Database: real Postgres.

fn admin_url() -> Option<String> {
    switchboard_tests::services::postgres()
}

async fn exists(admin: &str, db: &TenantDatabase) -> (bool, bool) {
    let pool = sqlx::PgPool::connect(admin).await.unwrap();
    let role: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&db.role)
            .fetch_one(&pool)
            .await
            .unwrap();
    let schema: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&db.schema)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    (role, schema)
}

/// A tenant name unique per run (roles are server-wide on the shared test Postgres).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", switchboard_tests::knowledge::unique())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_provisioned_then_dropped_or_retained_on_delete() {
    let Some(admin) = admin_url() else { return };
    let Some((cluster, _rollouts)) = setup("db").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    cfg.database_admin_url = Some(admin.clone());
    let op = Operator::start(c.clone(), cfg);

    let gone = unique("gone");
    let kept = unique("kept");
    create(&c, &tenant(ns, &gone, "  deletionPolicy: Delete\n")).await;
    create(&c, &tenant(ns, &kept, "")).await;
    let mut dbs = Vec::new();
    for name in [&gone, &kept] {
        let vt = wait_ready(&c, ns, name).await;
        assert!(
            vt.metadata
                .finalizers
                .clone()
                .unwrap_or_default()
                .contains(&FINALIZER.to_string())
        );
        let recorded = vt
            .status
            .clone()
            .unwrap()
            .database
            .expect("database names in status");
        let db = TenantDatabase::from_status(&recorded).unwrap();
        assert_eq!(
            exists(&admin, &db).await,
            (true, true),
            "{name}: role and schema"
        );
        // The credentials Secret exists, and the gateway reads its URL.
        let secret = api::<Secret>(&c, ns).get(&db.secret_name).await.unwrap();
        assert!(secret.data.unwrap().contains_key("url"));
        let d = api::<Deployment>(&c, ns)
            .get(&child_name(name))
            .await
            .unwrap();
        let env = serde_json::to_string(&d.spec.template.spec.unwrap().containers[0].env).unwrap();
        assert!(env.contains(&db.secret_name), "{env}");
        dbs.push((db, Ownership::of(&vt).unwrap()));
    }

    delete(&c, ns, &gone).await;
    delete(&c, ns, &kept).await;
    for name in [&gone, &kept] {
        wait_for(&format!("{name} deleted"), || {
            let c = c.clone();
            async move { get(&c, ns, name).await.is_none().then_some(()) }
        })
        .await;
    }
    assert_eq!(
        exists(&admin, &dbs[0].0).await,
        (false, false),
        "Delete drops role and schema"
    );
    assert_eq!(
        exists(&admin, &dbs[1].0).await,
        (true, true),
        "Retain keeps them"
    );
    op.stop().await;

    // Clean the retained tenant up (roles are server-wide).
    let p = Provisioner::new(&admin).unwrap();
    p.drop(&dbs[1].0, &dbs[1].1).await.unwrap();
}

/// Issue 12 §1: `status.database` is writable by whoever may patch
/// `voicetenants/status`. Tenant B writes tenant A's names there and is deleted with
/// `deletionPolicy: Delete`: A's role and schema must survive, and B says why. (Before
/// the ownership check, the finalizer dropped A's role (and everything it owned): this
/// test failed with "A's role and schema survive", left: (false, …).)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_names_in_status_are_never_dropped() {
    let Some(admin) = admin_url() else { return };
    let Some((cluster, _rollouts)) = setup("dbsteal").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    cfg.database_admin_url = Some(admin.clone());
    let op = Operator::start(c.clone(), cfg);

    let victim = unique("victim");
    let thief = unique("thief");
    create(&c, &tenant(ns, &victim, "")).await;
    create(&c, &tenant(ns, &thief, "  deletionPolicy: Delete\n")).await;
    let a = wait_ready(&c, ns, &victim).await;
    let b = wait_ready(&c, ns, &thief).await;
    let a_names = a.status.clone().unwrap().database.unwrap();
    let a_db = TenantDatabase::from_status(&a_names).unwrap();
    let b_db = TenantDatabase::from_status(&b.status.clone().unwrap().database.unwrap()).unwrap();

    // B's editor points its status at A's role and schema (A's Secret name, too, so
    // nothing else differs), then deletes B.
    op.stop().await;
    tenants(&c, ns)
        .patch_status(
            &thief,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "database": a_names } })),
        )
        .await
        .unwrap();
    delete(&c, ns, &thief).await;
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    cfg.database_admin_url = Some(admin.clone());
    let op = Operator::start(c.clone(), cfg);
    wait_for(&format!("{thief} released"), || {
        let c = c.clone();
        let thief = thief.clone();
        async move { get(&c, ns, &thief).await.is_none().then_some(()) }
    })
    .await;
    assert_eq!(
        exists(&admin, &a_db).await,
        (true, true),
        "A's role and schema survive"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = api(&c, ns);
    let list = events.list(&Default::default()).await.unwrap();
    let why = list
        .items
        .iter()
        .find(|e| {
            e.reason.as_deref() == Some("DatabaseOwnershipMismatch")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(thief.as_str())
        })
        .unwrap_or_else(|| panic!("a DatabaseOwnershipMismatch event for {thief}: {list:?}"));
    let note = why.note.clone().unwrap_or_default();
    assert!(
        note.contains(&a_db.schema) && note.contains(&a_db.role),
        "{note}"
    );
    // A keeps working.
    wait_ready(&c, ns, &victim).await;
    op.stop().await;

    let p = Provisioner::new(&admin).unwrap();
    p.drop(&a_db, &Ownership::of(&a).unwrap()).await.unwrap();
    p.drop(&b_db, &Ownership::of(&b).unwrap()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_secret_is_reported_not_replaced() {
    let Some(admin) = admin_url() else { return };
    let Some((cluster, _rollouts)) = setup("dblost").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    cfg.database_admin_url = Some(admin.clone());
    let op = Operator::start(c.clone(), cfg);

    let name = unique("lost");
    create(&c, &tenant(ns, &name, "")).await;
    let vt = wait_ready(&c, ns, &name).await;
    let owner = Ownership::of(&vt).unwrap();
    let db = TenantDatabase::from_status(&vt.status.unwrap().database.unwrap()).unwrap();
    api::<Secret>(&c, ns)
        .delete(&db.secret_name, &Default::default())
        .await
        .unwrap();
    // A fresh password would not match the existing role: the gateways could not log in.
    wait_condition(
        &c,
        ns,
        &name,
        "Degraded",
        "True",
        Some("DatabaseSecretLost"),
    )
    .await;
    assert!(
        api::<Secret>(&c, ns)
            .get_opt(&db.secret_name)
            .await
            .unwrap()
            .is_none(),
        "no new Secret with a password the role does not have"
    );
    assert_eq!(
        exists(&admin, &db).await,
        (true, true),
        "role and schema kept"
    );
    op.stop().await;
    Provisioner::new(&admin)
        .unwrap()
        .drop(&db, &owner)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_degrades_and_recovers() {
    let Some(admin) = admin_url() else { return };
    let target = admin
        .split_once('@')
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default().to_string())
        .unwrap();
    let proxy = Proxy::start(target).await.unwrap();
    proxy.cut();
    let Some((cluster, _rollouts)) = setup("dbdown").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    cfg.database_admin_url = Some(via(&admin, proxy.addr));
    let op = Operator::start(c.clone(), cfg);

    let name = unique("down");
    create(&c, &tenant(ns, &name, "  deletionPolicy: Delete\n")).await;
    let vt = wait_condition(
        &c,
        ns,
        &name,
        "Degraded",
        "True",
        Some("DatabaseUnreachable"),
    )
    .await;
    let log_at_degraded = cluster.sim.as_ref().map(|sim| sim.write_log().len());
    let version_at_degraded = vt.metadata.resource_version.clone();
    let ready = vt
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|x| x.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");
    // Retried with backoff: more than one attempt, each failing the same way.
    wait_for("retries", || async {
        (op.metrics
            .failures
            .with_label_values(&["voicetenant", "DatabaseUnreachable"])
            .get()
            >= 3)
            .then_some(())
    })
    .await;
    assert!(
        api::<Deployment>(&c, ns)
            .get_opt(&child_name(&name))
            .await
            .unwrap()
            .is_none()
    );
    // Degraded was written once: the retries, failing the same way, change nothing and
    // (seen in the simulator's write log) send no write of the tenant at all.
    assert_eq!(
        get(&c, ns, &name).await.unwrap().metadata.resource_version,
        version_at_degraded
    );
    if let (Some(sim), Some(before)) = (&cluster.sim, log_at_degraded) {
        let rewrites: Vec<String> = sim.write_log()[before..]
            .iter()
            .filter(|w| w.name == name)
            .map(|w| {
                format!(
                    "{} {} {:?} changed={}",
                    w.verb, w.resource, w.subresource, w.changed
                )
            })
            .collect();
        assert_eq!(rewrites, Vec::<String>::new());
    }

    proxy.restore();
    let vt = wait_ready(&c, ns, &name).await;
    let degraded = vt
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|x| x.type_ == "Degraded")
        .unwrap();
    assert_eq!(degraded.status, "False");

    delete(&c, ns, &name).await;
    wait_for("deleted", || {
        let c = c.clone();
        let name = name.clone();
        async move { get(&c, ns, &name).await.is_none().then_some(()) }
    })
    .await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_gives_up_on_an_unreachable_database_after_its_bound() {
    let Some(admin) = admin_url() else { return };
    let target = admin
        .split_once('@')
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default().to_string())
        .unwrap();
    let proxy = Proxy::start(target).await.unwrap();
    let Some((cluster, _rollouts)) = setup("dbleft").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let mut cfg = config("op-1", ns);
    cfg.leader_election = false;
    cfg.database_admin_url = Some(via(&admin, proxy.addr));
    cfg.cleanup_timeout = Duration::from_secs(2);
    let op = Operator::start(c.clone(), cfg);

    let name = unique("left");
    create(&c, &tenant(ns, &name, "  deletionPolicy: Delete\n")).await;
    let vt = wait_ready(&c, ns, &name).await;
    let owner = Ownership::of(&vt).unwrap();
    let db = TenantDatabase::from_status(&vt.status.unwrap().database.unwrap()).unwrap();
    proxy.cut();
    delete(&c, ns, &name).await;
    wait_for("released after the cleanup bound", || {
        let c = c.clone();
        let name = name.clone();
        async move { get(&c, ns, &name).await.is_none().then_some(()) }
    })
    .await;
    // Left on the server, as the Warning event says.
    assert_eq!(exists(&admin, &db).await, (true, true));
    let events: Api<k8s_openapi::api::events::v1::Event> = api(&c, ns);
    let list = events.list(&Default::default()).await.unwrap();
    let left = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("DatabaseLeft"))
        .expect("a DatabaseLeft event");
    assert_eq!(left.type_.as_deref(), Some("Warning"));
    assert!(
        left.note
            .as_deref()
            .unwrap_or_default()
            .contains(&db.schema)
    );
    op.stop().await;
    Provisioner::new(&admin)
        .unwrap()
        .drop(&db, &owner)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------
// Leader election.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_the_standby_takes_over() {
    let Some((cluster, _rollouts)) = setup("leader").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let a = Operator::start(c.clone(), config("op-a", ns));
    let b = Operator::start(c.clone(), config("op-b", ns));
    wait_for("a leader", || async {
        (a.is_leader() || b.is_leader()).then_some(())
    })
    .await;
    let (leader, standby) = if a.is_leader() { (a, b) } else { (b, a) };
    // A standby reports ready (a rolling update of the operator proceeds).
    wait_for("standby ready", || async {
        standby.health.ready().then_some(())
    })
    .await;

    create(&c, &tenant(ns, "one", "")).await;
    wait_settled(&c, ns, "one").await;
    assert!(leader.metrics.writes_total() > 0);
    assert_eq!(standby.metrics.writes_total(), 0, "the standby wrote");
    assert!(!standby.is_leader());

    // The leader stops (releasing the Lease): the standby takes over and reconciles.
    leader.stop().await;
    wait_for("takeover", || async { standby.is_leader().then_some(()) }).await;
    create(&c, &tenant(ns, "two", "")).await;
    wait_settled(&c, ns, "two").await;
    assert!(standby.metrics.writes_total() > 0);
    standby.stop().await;
}
