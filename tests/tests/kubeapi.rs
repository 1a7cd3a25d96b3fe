//! The simulated Kubernetes API server, driven by the real kube 5 client and runtime:
//! the semantics the operator relies on (server-side apply, no-op writes, status,
//! finalizers, garbage collection, watches, events, leases, failures).
#![allow(clippy::unwrap_used)] // shared assertion helpers outside #[test] fns

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use switchboard_sim::kubeapi::{KubeApiOptions, KubeApiSim};
use switchboard_tests::kube::{client, client_with_retry};

const NS: &str = "default";

async fn sim_with(opts: KubeApiOptions) -> KubeApiSim {
    switchboard_tests::init();
    KubeApiSim::start_on(([127, 0, 0, 1], 0).into(), opts)
        .await
        .unwrap()
}

async fn sim() -> KubeApiSim {
    sim_with(KubeApiOptions::default()).await
}

fn cm(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels}, "data": data,
    }))
    .unwrap()
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv(obj: &impl Resource) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// Polls `check` until it holds (the simulator acts asynchronously only for watches).
async fn eventually(mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

#[tokio::test]
async fn create_get_list_with_selectors() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    let pp = PostParams::default();
    let a = api
        .create(
            &pp,
            &cm("a", json!({"app": "gw", "tier": "edge"}), json!({"k": "1"})),
        )
        .await
        .unwrap();
    api.create(&pp, &cm("b", json!({"app": "gw"}), json!({})))
        .await
        .unwrap();
    api.create(&pp, &cm("c", json!({"app": "kb"}), json!({})))
        .await
        .unwrap();

    assert_eq!(a.metadata.generation, Some(1));
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["k"], "1");

    let names = |l: kube::api::ObjectList<ConfigMap>| {
        l.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app=gw"))
                .await
                .unwrap()
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app=gw,!tier"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app in (kb, x)"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    let all = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        all.metadata.resource_version,
        Some(sim.resource_version().to_string())
    );
    // All-namespaces list sees them too; another namespace does not.
    let everywhere: Api<ConfigMap> = Api::all(client(&sim).await);
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    let other: Api<ConfigMap> = Api::namespaced(client(&sim).await, "other");
    assert!(
        other
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let dup = api
        .create(&pp, &cm("a", json!({}), json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_error(dup), (409, "AlreadyExists".into()));
    assert_eq!(
        api_error(api.get("missing").await.unwrap_err()),
        (404, "NotFound".into())
    );

    let mut generated = cm("", json!({}), json!({}));
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let g = api.create(&pp, &generated).await.unwrap();
    assert!(g.name_any().starts_with("gen-") && g.name_any().len() == 9);

    let bad = api
        .create(&pp, &cm("Bad_Name", json!({}), json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_error(bad), (422, "Invalid".into()));
}

#[tokio::test]
async fn apply_twice_is_a_noop_and_dropped_fields_go() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    let ssa = PatchParams::apply("switchboard");
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"app": "gw"}}, "data": {"a": "1", "b": "2"}});
    let first = api
        .patch("cfg", &ssa, &Patch::Apply(&desired))
        .await
        .unwrap();
    let (writes, changes) = (sim.writes(), sim.changes());

    let second = api
        .patch("cfg", &ssa, &Patch::Apply(&desired))
        .await
        .unwrap();
    assert_eq!(
        rv(&second),
        rv(&first),
        "a no-op apply must not bump resourceVersion"
    );
    assert_eq!(sim.changes(), changes);
    assert_eq!(sim.writes(), writes + 1);
    let log = sim.write_log();
    let last = log.last().unwrap();
    assert_eq!(
        (
            last.verb.as_str(),
            last.field_manager.as_str(),
            last.changed
        ),
        ("apply", "switchboard", false)
    );

    let fewer = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let third = api.patch("cfg", &ssa, &Patch::Apply(&fewer)).await.unwrap();
    assert!(rv(&third) > rv(&second));
    assert_eq!(third.data.unwrap().keys().collect::<Vec<_>>(), ["a"]);
    assert!(third.metadata.labels.is_none());

    // Another manager setting an owned field to a different value conflicts...
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "9"}});
    let err = api
        .patch(
            "cfg",
            &PatchParams::apply("intruder"),
            &Patch::Apply(&other),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));
    // ...unless forced, which takes the field over: the first manager dropping it keeps it.
    api.patch(
        "cfg",
        &PatchParams::apply("intruder").force(),
        &Patch::Apply(&other),
    )
    .await
    .unwrap();
    let empty = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}});
    let after = api.patch("cfg", &ssa, &Patch::Apply(&empty)).await.unwrap();
    assert_eq!(after.data.unwrap()["a"], "9");
}

fn deployment(name: &str, replicas: i32, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "gw", "image": image}]}}}})
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let sim = sim_with(KubeApiOptions {
        simulate_workloads: false,
        ..KubeApiOptions::default()
    })
    .await;
    let api: Api<Deployment> = Api::namespaced(client(&sim).await, NS);
    let ssa = PatchParams::apply("switchboard");
    let d = api
        .patch("gw", &ssa, &Patch::Apply(deployment("gw", 2, "gw:1")))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));

    // A status write changes status only: no generation bump, spec untouched.
    let status =
        json!({"status": {"observedGeneration": 1, "readyReplicas": 2}, "spec": {"replicas": 9}});
    let s = api
        .patch_status("gw", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(1));
    assert_eq!(s.spec.replicas, Some(2));
    assert_eq!(s.status.as_ref().unwrap().ready_replicas, Some(2));
    assert!(rv(&s) > rv(&d));

    // Status sent to the main resource is ignored; a spec change bumps generation.
    let mut changed = deployment("gw", 3, "gw:1");
    changed["status"] = json!({"readyReplicas": 0});
    let c = api
        .patch("gw", &ssa, &Patch::Apply(&changed))
        .await
        .unwrap();
    assert_eq!(c.metadata.generation, Some(2));
    assert_eq!(c.status.as_ref().unwrap().ready_replicas, Some(2));

    // A label change is a change, but not a new generation.
    let labelled = json!({"metadata": {"labels": {"x": "y"}}});
    let l = api
        .patch("gw", &PatchParams::default(), &Patch::Merge(&labelled))
        .await
        .unwrap();
    assert_eq!(l.metadata.generation, Some(2));
    assert!(rv(&l) > rv(&c));
}

#[tokio::test]
async fn simulated_rollout_and_stall() {
    let sim = sim().await;
    let api: Api<Deployment> = Api::namespaced(client(&sim).await, NS);
    let ssa = PatchParams::apply("switchboard");
    let mut d = deployment("gw", 3, "gw:1");
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    api.patch("gw", &ssa, &Patch::Apply(&d)).await.unwrap();
    let live = api.get("gw").await.unwrap();
    let status = live.status.unwrap();
    assert_eq!(
        (
            status.ready_replicas,
            status.available_replicas,
            status.observed_generation
        ),
        (Some(3), Some(3), Some(1))
    );
    let available = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Available"))
        .unwrap();
    assert_eq!(available.status.as_deref(), Some("True"));
    // The controller's status write is not one of ours.
    assert_eq!(sim.changes(), 1);
    assert_eq!(sim.controller_changes(), 1);

    sim.set_deployment_ready(NS, "gw", Some(1));
    let stalled = api.get("gw").await.unwrap().status.unwrap();
    assert_eq!(stalled.ready_replicas, Some(1));
    let available = stalled
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Available"))
        .unwrap();
    assert_eq!(available.status.as_deref(), Some("False"));

    // Defaults are filled as by the real server; re-applying the same config is a no-op.
    let live = api.get("gw").await.unwrap();
    assert_eq!(live.spec.revision_history_limit, Some(10));
    let (before, changes) = (rv(&live), sim.changes());
    let again = api.patch("gw", &ssa, &Patch::Apply(&d)).await.unwrap();
    assert_eq!((rv(&again), sim.changes()), (before, changes));
}

#[tokio::test]
async fn finalizer_holds_deletion_until_removed() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    api.create(&PostParams::default(), &cm("t", json!({}), json!({})))
        .await
        .unwrap();
    const FIN: &str = "voice.switchboard.dev/cleanup";

    let reconcile = |obj: Arc<ConfigMap>| {
        let api = api.clone();
        async move {
            finalizer::finalizer(&api, FIN, obj, |ev| async move {
                Ok::<_, std::io::Error>(match ev {
                    FinalizerEvent::Apply(_) | FinalizerEvent::Cleanup(_) => Action::await_change(),
                })
            })
            .await
        }
    };
    // First pass adds the finalizer (JSON patch: test null + add).
    reconcile(Arc::new(api.get("t").await.unwrap()))
        .await
        .unwrap();
    assert_eq!(api.get("t").await.unwrap().finalizers(), [FIN]);

    let deleted = api.delete("t", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.is_left(),
        "an object with finalizers is returned, not a Status"
    );
    let held = api.get("t").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());

    // Adding a finalizer while deleting is refused.
    let add = json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "late"}]);
    let patch = serde_json::from_value(add).unwrap();
    let err = api
        .patch("t", &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 422);

    // Cleanup pass removes the finalizer (JSON patch: test + remove): the object goes.
    reconcile(Arc::new(held)).await.unwrap();
    assert_eq!(api_error(api.get("t").await.unwrap_err()).0, 404);
    assert_eq!(
        api_error(api.delete("t", &DeleteParams::default()).await.unwrap_err()).0,
        404
    );
}

#[tokio::test]
async fn json_patch_failed_test_is_422_and_changes_nothing() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    let c = api
        .create(
            &PostParams::default(),
            &cm("j", json!({}), json!({"k": "v"})),
        )
        .await
        .unwrap();
    let ops = json!([{"op": "replace", "path": "/data/k", "value": "w"},
                     {"op": "test", "path": "/data/k", "value": "nope"}]);
    let patch = serde_json::from_value(ops).unwrap();
    let err = api
        .patch("j", &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (422, "Invalid".into()));
    let after = api.get("j").await.unwrap();
    assert_eq!(
        (rv(&after), after.data.unwrap()["k"].as_str()),
        (rv(&c), "v")
    );
}

#[tokio::test]
async fn stale_put_conflicts() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    let v1 = api
        .create(
            &PostParams::default(),
            &cm("p", json!({}), json!({"k": "1"})),
        )
        .await
        .unwrap();
    let mut v2 = v1.clone();
    v2.data = Some([("k".to_string(), "2".to_string())].into());
    api.replace("p", &PostParams::default(), &v2).await.unwrap();
    let mut stale = v1.clone();
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let err = api
        .replace("p", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));
    assert_eq!(api.get("p").await.unwrap().data.unwrap()["k"], "2");
    let absent = api
        .replace(
            "nope",
            &PostParams::default(),
            &cm("nope", json!({}), json!({})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(absent).0, 404);
}

#[tokio::test]
async fn owner_references_are_garbage_collected() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    let pp = PostParams::default();
    let parent = api
        .create(&pp, &cm("parent", json!({}), json!({})))
        .await
        .unwrap();
    let owner = parent.controller_owner_ref(&()).unwrap();
    let mut child = cm("child", json!({}), json!({}));
    child.metadata.owner_references = Some(vec![owner]);
    let child = api.create(&pp, &child).await.unwrap();
    let mut grandchild = cm("grandchild", json!({}), json!({}));
    grandchild.metadata.owner_references = Some(vec![child.controller_owner_ref(&()).unwrap()]);
    grandchild.metadata.finalizers = Some(vec!["hold".into()]);
    api.create(&pp, &grandchild).await.unwrap();
    api.create(&pp, &cm("bystander", json!({}), json!({})))
        .await
        .unwrap();

    let gone = api
        .delete("parent", &DeleteParams::default())
        .await
        .unwrap();
    assert!(gone.is_right(), "an object without finalizers goes at once");
    assert_eq!(api_error(api.get("child").await.unwrap_err()).0, 404);
    let held = api.get("grandchild").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(api.get("bystander").await.is_ok());
}

type Events =
    futures_util::stream::BoxStream<'static, Result<watcher::Event<ConfigMap>, watcher::Error>>;

async fn next(events: &mut Events) -> watcher::Event<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("a watcher event within 10 s")
        .expect("the watcher stream goes on")
        .expect("no watcher error")
}

#[tokio::test]
async fn watcher_sees_init_apply_delete_and_resumes_after_timeout() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    let pp = PostParams::default();
    api.create(&pp, &cm("a", json!({}), json!({})))
        .await
        .unwrap();
    // Watches end after 1 s; the watcher must resume from its resourceVersion.
    let mut events = watcher(api.clone(), watcher::Config::default().timeout(1)).boxed();
    assert!(matches!(next(&mut events).await, watcher::Event::Init));
    assert!(matches!(next(&mut events).await, watcher::Event::InitApply(o) if o.name_any() == "a"));
    assert!(matches!(next(&mut events).await, watcher::Event::InitDone));

    api.create(&pp, &cm("b", json!({}), json!({})))
        .await
        .unwrap();
    assert!(matches!(next(&mut events).await, watcher::Event::Apply(o) if o.name_any() == "b"));
    api.delete("b", &DeleteParams::default()).await.unwrap();
    assert!(matches!(next(&mut events).await, watcher::Event::Delete(o) if o.name_any() == "b"));

    // Let the first watch time out and the watcher start another (the next() call
    // drives it).
    let watches = sim.watch_requests();
    let driver = tokio::spawn(async move {
        let ev = next(&mut events).await;
        (ev, events)
    });
    eventually(|| sim.watch_requests() > watches).await;
    api.create(&pp, &cm("c", json!({}), json!({})))
        .await
        .unwrap();
    let (ev, _events) = driver.await.unwrap();
    // Resumed, not relisted: the next event is the new object, not a new Init.
    assert!(matches!(ev, watcher::Event::Apply(o) if o.name_any() == "c"));
}

#[tokio::test]
async fn watch_from_expired_version_gets_410() {
    let sim = sim_with(KubeApiOptions {
        history_limit: 3,
        ..KubeApiOptions::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    let first = api
        .create(&PostParams::default(), &cm("x0", json!({}), json!({})))
        .await
        .unwrap();
    for i in 1..6 {
        api.create(
            &PostParams::default(),
            &cm(&format!("x{i}"), json!({}), json!({})),
        )
        .await
        .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv(&first).to_string())
        .await
        .unwrap()
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // Within the history: replayed in order.
    let recent = sim.resource_version() - 2;
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &recent.to_string())
        .await
        .unwrap()
        .boxed();
    for want in ["x4", "x5"] {
        match stream.next().await {
            Some(Ok(WatchEvent::Added(o))) => assert_eq!(o.name_any(), want),
            other => panic!("expected ADDED {want}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn recorder_publishes_and_patches_series() {
    let sim = sim().await;
    let c = client(&sim).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), NS);
    let obj = cms
        .create(&PostParams::default(), &cm("ev", json!({}), json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        c.clone(),
        Reporter {
            controller: "switchboard".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("all good".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = obj.object_ref(&());
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<K8sEvent> = Api::namespaced(c, NS);
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Reconciled"));
    assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("ev"));
    assert_eq!(e.series.as_ref().unwrap().count, 2);
}

#[tokio::test]
async fn unavailable_server_answers_503_and_clients_retry() {
    let sim = sim().await;
    let plain: Api<ConfigMap> = Api::namespaced(client_with_retry(&sim, false), NS);
    plain
        .create(&PostParams::default(), &cm("u", json!({}), json!({})))
        .await
        .unwrap();
    sim.set_available(false);
    assert_eq!(
        api_error(plain.get("u").await.unwrap_err()),
        (503, "ServiceUnavailable".into())
    );

    // kube's default client retries 503s: it gets through once the server is back.
    let retrying: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    let before = sim.requests();
    let get = tokio::spawn(async move { retrying.get("u").await });
    eventually(|| sim.requests() >= before + 2).await;
    sim.set_available(true);
    assert_eq!(get.await.unwrap().unwrap().name_any(), "u");
}

#[tokio::test]
async fn lease_manager_takes_over_a_released_lease() {
    use kube_lease_manager::LeaseManagerBuilder;
    let sim = sim().await;
    let c = client(&sim).await;
    let manager = |id: &str| {
        LeaseManagerBuilder::new(c.clone(), "switchboard-operator")
            .with_namespace(NS)
            .with_identity(id)
            .with_duration(2)
            .with_grace(1)
            .build()
    };
    let one = manager("one").await.unwrap();
    let two = manager("two").await.unwrap();
    assert!(
        one.changed().await.unwrap(),
        "the first manager acquires the free lease"
    );
    let leases: Api<Lease> = Api::namespaced(c.clone(), NS);
    let lease = leases.get("switchboard-operator").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("one"));

    one.release().await.unwrap();
    assert!(
        two.changed().await.unwrap(),
        "the second acquires it once released"
    );
    let lease = leases.get("switchboard-operator").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("two"));
}

#[tokio::test]
async fn streaming_list_and_metadata_watchers() {
    let sim = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    let pp = PostParams::default();
    api.create(&pp, &cm("a", json!({}), json!({})))
        .await
        .unwrap();

    // sendInitialEvents: the initial state comes as a watch, ended by a bookmark.
    let mut events: Events =
        watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    assert!(matches!(next(&mut events).await, watcher::Event::Init));
    assert!(matches!(next(&mut events).await, watcher::Event::InitApply(o) if o.name_any() == "a"));
    assert!(matches!(next(&mut events).await, watcher::Event::InitDone));

    // PartialObjectMetadata lists and watches.
    let meta_api: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client(&sim).await, NS);
    let mut meta = watcher(meta_api, watcher::Config::default()).boxed();
    let mut next_meta = async || {
        tokio::time::timeout(Duration::from_secs(10), meta.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    assert!(matches!(next_meta().await, watcher::Event::Init));
    assert!(matches!(next_meta().await, watcher::Event::InitApply(o) if o.name_any() == "a"));
    assert!(matches!(next_meta().await, watcher::Event::InitDone));

    api.create(&pp, &cm("b", json!({}), json!({})))
        .await
        .unwrap();
    assert!(matches!(next(&mut events).await, watcher::Event::Apply(o) if o.name_any() == "b"));
    assert!(matches!(next_meta().await, watcher::Event::Apply(o) if o.name_any() == "b"));
}

struct Ctx {
    secrets: Api<Secret>,
    runs: AtomicU64,
}

async fn reconcile_tenant(obj: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
    let name = format!("{}-db", obj.name_any());
    let db = obj
        .data
        .as_ref()
        .and_then(|d| d.get("db"))
        .cloned()
        .unwrap_or_default();
    let child = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "ownerReferences": [obj.controller_owner_ref(&()).unwrap()]},
        "stringData": {"db": db}});
    ctx.secrets
        .patch(
            &name,
            &PatchParams::apply("switchboard"),
            &Patch::Apply(&child),
        )
        .await?;
    ctx.runs.fetch_add(1, Ordering::SeqCst);
    Ok(Action::await_change())
}

fn retry_soon(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

#[tokio::test]
async fn controller_settles_and_its_reapplies_change_nothing() {
    let sim = sim().await;
    let c = client(&sim).await;
    let parents: Api<ConfigMap> = Api::namespaced(c.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(c.clone(), NS);
    parents
        .create(
            &PostParams::default(),
            &cm("tenant", json!({"role": "parent"}), json!({"db": "t1"})),
        )
        .await
        .unwrap();
    let ctx = Arc::new(Ctx {
        secrets: secrets.clone(),
        runs: AtomicU64::new(0),
    });
    let controller = Controller::new(
        parents.clone(),
        watcher::Config::default().labels("role=parent"),
    )
    .owns(secrets, watcher::Config::default())
    .run(reconcile_tenant, retry_soon, Arc::clone(&ctx))
    .for_each(|_| async {});
    let task = tokio::spawn(controller);
    let db = |sim: &KubeApiSim| {
        sim.get("v1", "secrets", NS, "tenant-db")
            .and_then(|s| s["data"]["db"].as_str().map(str::to_owned))
    };
    // The child's creation triggers another reconcile (owns): its apply is a no-op.
    eventually(|| ctx.runs.load(Ordering::SeqCst) >= 2).await;
    assert_eq!(
        db(&sim).as_deref(),
        Some("dDE="),
        "stringData is stored as base64 data"
    );

    sim.reset_counters();
    let runs = ctx.runs.load(Ordering::SeqCst);
    let change = json!({"data": {"db": "t2"}});
    parents
        .patch("tenant", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap();
    // The parent's change, then the child's (which triggers one more, idle, reconcile).
    eventually(|| ctx.runs.load(Ordering::SeqCst) >= runs + 2).await;
    assert_eq!(db(&sim).as_deref(), Some("dDI="));
    assert_eq!(sim.changes(), 2, "{:#?}", sim.write_log());
    assert!(!sim.write_log().last().unwrap().changed);
    task.abort();
}

#[tokio::test]
async fn hostile_requests_get_status_answers() {
    let sim = sim().await;
    let http = reqwest::Client::new();
    let base = format!("{}/api/v1/namespaces/{NS}/configmaps", sim.url());
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, NS);
    api.create(&PostParams::default(), &cm("x", json!({}), json!({})))
        .await
        .unwrap();
    sim.reset_counters();

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let x = format!("{base}/x");
    let apply = "application/apply-patch+yaml";
    let json_ct = "application/json";
    let jp = "application/json-patch+json";
    let cases: Vec<(&str, String, &str, Vec<u8>, u16)> = vec![
        ("POST", base.clone(), json_ct, b"{bad".to_vec(), 400),
        ("POST", base.clone(), json_ct, b"[1,2]".to_vec(), 400),
        ("POST", base.clone(), json_ct, vec![0xff, 0xfe, 0x00], 400),
        ("POST", base.clone(), json_ct, deep.into_bytes(), 400),
        (
            "POST",
            base.clone(),
            json_ct,
            br#"{"metadata": "x"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            base.clone(),
            json_ct,
            br#"{"metadata": {"name": 5}}"#.to_vec(),
            422,
        ),
        (
            "POST",
            base.clone(),
            json_ct,
            br#"{"metadata": {"name": "l", "labels": {"a": 5}}}"#.to_vec(),
            422,
        ),
        (
            "POST",
            base.clone(),
            json_ct,
            br#"{"apiVersion": "apps/v1", "metadata": {"name": "v"}}"#.to_vec(),
            400,
        ),
        ("PATCH", x.clone(), "text/plain", b"hi".to_vec(), 415),
        (
            "PATCH",
            x.clone(),
            apply,
            br#"{"apiVersion": "v1", "kind": "ConfigMap"}"#.to_vec(),
            400,
        ),
        (
            "PATCH",
            format!("{x}?fieldManager=m"),
            apply,
            b"not: [valid".to_vec(),
            400,
        ),
        (
            "PATCH",
            format!("{x}?fieldManager=m"),
            apply,
            br#"{"data": {}}"#.to_vec(),
            400,
        ),
        ("PATCH", x.clone(), jp, br#"{"op": "add"}"#.to_vec(), 400),
        (
            "PATCH",
            x.clone(),
            jp,
            br#"[{"op": "remove", "path": "/nope"}]"#.to_vec(),
            422,
        ),
        (
            "PATCH",
            x.clone(),
            "application/merge-patch+json",
            b"5".to_vec(),
            400,
        ),
        (
            "PATCH",
            format!("{x}/status"),
            "application/merge-patch+json",
            b"{}".to_vec(),
            404,
        ),
        (
            "PUT",
            x.clone(),
            json_ct,
            br#"{"metadata": {"name": "other"}}"#.to_vec(),
            400,
        ),
        ("DELETE", x.clone(), json_ct, b"garbage".to_vec(), 400),
        (
            "GET",
            format!("{base}?labelSelector=a%20b%20c"),
            json_ct,
            vec![],
            400,
        ),
        (
            "GET",
            format!("{base}?watch=1&resourceVersion=abc"),
            json_ct,
            vec![],
            400,
        ),
        ("GET", format!("{x}/log"), json_ct, vec![], 404),
        (
            "GET",
            format!("{}/nonsense", sim.url()),
            json_ct,
            vec![],
            404,
        ),
        (
            "GET",
            format!(
                "{}/apis/voice.switchboard.dev/v1alpha1/voicetenants?fieldSelector=spec.x%3D1",
                sim.url()
            ),
            json_ct,
            vec![],
            400,
        ),
    ];
    let mutating = cases.iter().filter(|c| c.0 != "GET").count() as u64;
    for (method, url, ct, body, want) in cases {
        let resp = http
            .request(method.parse().unwrap(), &url)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let status: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(
            (code, status["kind"].as_str(), status["code"].as_u64()),
            (want, Some("Status"), Some(u64::from(want))),
            "{method} {url}: {status}"
        );
    }
    // Still serving, nothing changed, every mutating attempt counted.
    assert!(api.get("x").await.unwrap().data.unwrap().is_empty());
    let stats: Value = serde_json::from_str(
        &http
            .get(format!("{}/_sim/stats", sim.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (stats["writes"].as_u64(), stats["changes"].as_u64()),
        (Some(mutating), Some(0))
    );
    assert_eq!(stats["objects"]["ConfigMap"], 1);
}

#[tokio::test]
async fn crds_get_established_and_serve_their_resources() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    use kube::runtime::wait::{await_condition, conditions};
    use switchboard_crds::VoiceTenant;

    let sim = sim().await;
    let c = client(&sim).await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    let crd = VoiceTenant::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("switchboard").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    let established = await_condition(crds, &name, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(10), established)
        .await
        .expect("the CRD becomes Established")
        .unwrap();

    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/tenants/demo.yaml"
    ))
    .unwrap();
    let demo = switchboard_crds::parse_tenant(&text).unwrap();
    let tenants: Api<VoiceTenant> = Api::namespaced(c, NS);
    let applied = tenants
        .patch(
            "demo",
            &PatchParams::apply("switchboard"),
            &Patch::Apply(&demo),
        )
        .await
        .unwrap();
    assert_eq!(applied.spec, demo.spec, "the tenant round-trips unchanged");
    let listed = tenants.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].spec, demo.spec);
}
