//! Controller tests written once against either API server ([`TestCluster`]): the
//! simulated one by default, the real one of `scripts/kube-apiserver.sh` with
//! `SWITCHBOARD_TEST_CONTROLLERS=apiserver` (the default when that server is envtest's
//! full kube-apiserver, `KUBEBUILDER_ASSETS`). They use custom resources only, so they
//! also run on the CRD-only API server built here: the real schema, status subresource,
//! finalizers, deletion and watches, with the real KnowledgeBase controller.
//!
//! The larger suites (operator_tenant.rs, operator_knowledge.rs, operator_knowledge_s3.rs)
//! run on the same switch; they need the core kinds (Secrets, ConfigMaps, Deployments),
//! so on the CRD-only server most of them fail (docs/operations.md lists which).

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::path::PathBuf;
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use switchboard_crds::{KnowledgeBase, VoiceTenant};
use switchboard_operator::FINALIZER;
use switchboard_tests::knowledge::{condition, controller_config, start_controller, wait_kb};
use switchboard_tests::kube::TestCluster;

const WAIT: Duration = Duration::from_secs(60);

fn tenant(name: &str, ns: &str) -> VoiceTenant {
    serde_json::from_value(json!({
        "apiVersion": "voice.switchboard.dev/v1alpha1",
        "kind": "VoiceTenant",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "displayName": "Controller test",
            "phoneNumbers": ["+15005550006"],
            "twilio": {
                "accountSid": "ACe5b9b91d74144c1eab5502f239bd8ed9",
                "authToken": { "secretKeyRef": { "name": "keys", "key": "twilio" } },
            },
            "openai": { "apiKey": { "secretKeyRef": { "name": "keys", "key": "openai" } } },
        },
    }))
    .unwrap()
}

fn knowledge_base(name: &str, ns: &str, tenant: &str) -> KnowledgeBase {
    serde_json::from_value(json!({
        "apiVersion": "voice.switchboard.dev/v1alpha1",
        "kind": "KnowledgeBase",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "tenant": tenant,
            "sources": [{ "inline": { "documents": [
                { "id": "hours", "title": "Hours", "content": "We open at 8." },
            ] } }],
        },
    }))
    .unwrap()
}

/// Starts the KnowledgeBase controller on the cluster's namespace (the local model is
/// never loaded: nothing here gets as far as embedding).
fn controller(
    cluster: &TestCluster,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let config = controller_config(&cluster.namespace, PathBuf::from("/nonexistent-model"));
    start_controller(&cluster.client, config)
}

fn reason_is(kb: &KnowledgeBase, type_: &str, reason: &str) -> bool {
    condition(kb, type_).is_some_and(|(s, r)| s == "True" && r == reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knowledge_base_without_its_tenant_is_degraded_and_deleted_through_its_finalizer() {
    let Some(cluster) = TestCluster::start("ctl-orphan").await else {
        return;
    };
    let ns = cluster.namespace.as_str();
    let kbs: Api<KnowledgeBase> = Api::namespaced(cluster.client.clone(), ns);
    kbs.create(
        &PostParams::default(),
        &knowledge_base("orphan", ns, "nobody"),
    )
    .await
    .unwrap();
    let (stop, task) = controller(&cluster);

    let kb = wait_kb(
        &cluster.client,
        ns,
        "orphan",
        "Degraded TenantNotFound",
        |kb| reason_is(kb, "Degraded", "TenantNotFound"),
    )
    .await;
    assert!(
        kb.metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .contains(&FINALIZER.to_string()),
        "the controller holds deletion with its finalizer"
    );
    assert_eq!(condition(&kb, "Ready").unwrap().0, "False");
    assert_eq!(
        kb.status.unwrap().observed_generation,
        kb.metadata.generation
    );

    // Deleting: the finalizer's cleanup (no tenant: nothing to drop) releases it.
    kbs.delete("orphan", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while kbs.get_opt("orphan").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the finalizer was not removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    let _ = tokio::time::timeout(WAIT, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_tenant_database_status_is_refused() {
    let Some(cluster) = TestCluster::start("ctl-forged").await else {
        return;
    };
    let ns = cluster.namespace.as_str();
    let tenants: Api<VoiceTenant> = Api::namespaced(cluster.client.clone(), ns);
    let kbs: Api<KnowledgeBase> = Api::namespaced(cluster.client.clone(), ns);
    let victim = tenants
        .create(&PostParams::default(), &tenant("victim", ns))
        .await
        .unwrap();
    tenants
        .create(&PostParams::default(), &tenant("mallory", ns))
        .await
        .unwrap();
    kbs.create(
        &PostParams::default(),
        &knowledge_base("faq", ns, "mallory"),
    )
    .await
    .unwrap();
    let (stop, task) = controller(&cluster);

    // No database yet: waiting for it.
    wait_kb(
        &cluster.client,
        ns,
        "faq",
        "Progressing TenantDatabasePending",
        |kb| reason_is(kb, "Progressing", "TenantDatabasePending"),
    )
    .await;

    // mallory's status names victim's database, as whoever may patch the status can
    // write it: refused, with the reason, before any Secret or database is touched.
    let names = switchboard_operator::dbnames::derive(
        ns,
        "victim",
        victim.metadata.uid.as_deref().unwrap(),
    );
    tenants
        .patch_status(
            "mallory",
            &PatchParams::apply("switchboard-tests").force(),
            &Patch::Apply(json!({
                "apiVersion": "voice.switchboard.dev/v1alpha1",
                "kind": "VoiceTenant",
                "status": { "database": {
                    "role": names.identifier,
                    "schema": names.identifier,
                    "secretName": names.secret_name,
                } },
            })),
        )
        .await
        .unwrap();
    let kb = wait_kb(
        &cluster.client,
        ns,
        "faq",
        "Degraded TenantDatabaseNotProven",
        |kb| reason_is(kb, "Degraded", "TenantDatabaseNotProven"),
    )
    .await;
    assert_eq!(condition(&kb, "Ready").unwrap().0, "False");
    let _ = stop.send(true);
    let _ = tokio::time::timeout(WAIT, task).await;
}
