//! The KnowledgeBase controller against a [`TestCluster`] (the simulated Kubernetes API
//! server by default, a real one with `SWITCHBOARD_TEST_CONTROLLERS=apiserver`; each test
//! in a namespace of its own), real PostgreSQL with pgvector and the real MiniLM model: a knowledge base of inline
//! documents and a ConfigMap is indexed into its tenant's schema and reports Ready; an
//! edit of the ConfigMap re-embeds only that document; an idle controller writes and
//! embeds nothing; a broken embedder is reported and retried until it works; deleting
//! under the tenant's Delete policy drops the table.
//!
//! Needs `SWITCHBOARD_TEST_PG` (`eval "$(scripts/postgres.sh start)"`) and
//! `SWITCHBOARD_MODEL_DIR` (`scripts/model.sh`), through the shared gate (skips locally,
//! fails under `CI=true`).
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ::kube::ResourceExt;
use ::kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use switchboard_crds::{KnowledgeBase, VoiceTenant};
use switchboard_operator::database::{
    AdminTarget, Ownership, TenantDatabase, URL_KEY, build_database_secret, generate_password,
};
use switchboard_operator::knowledge::{Decision, Engine, EngineConfig, KubeKnowledgeApi, sync};
use switchboard_operator::labels::USABLE_SECRET_LABEL;
use switchboard_tests::knowledge::{
    CONVERGE, condition, condition_message, controller_config, provisioned_tenant, ready, rows,
    serve_embeddings, start_controller, table_exists, tenant_manifest, unique, wait_for, wait_kb,
};
use switchboard_tests::kube::TestCluster;
use switchboard_tests::services;

fn env() -> Option<(String, PathBuf)> {
    match (services::postgres(), services::model_dir()) {
        (Some(pg), Some(model)) => Some((pg, model)),
        _ => None,
    }
}

fn kb_manifest(ns: &str, name: &str, tenant: &str, embedder: &str) -> KnowledgeBase {
    switchboard_crds::parse_knowledge_base(&format!(
        r#"apiVersion: voice.switchboard.dev/v1alpha1
kind: KnowledgeBase
metadata:
  name: {name}
  namespace: {ns}
spec:
  tenant: {tenant}
{embedder}  sources:
    - inline:
        documents:
          - title: Opening hours
            content: We are open Monday to Friday 8am to 6pm and Saturday 9am to 1pm. Closed on Sunday.
            category: hours
    - configMap:
        name: faq-docs
"#
    ))
    .unwrap()
}

fn faq_docs(ns: &str, parking: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("faq-docs".into());
    cm.metadata.namespace = Some(ns.into());
    cm.data = Some(BTreeMap::from([
        ("parking.md".to_string(), parking.to_string()),
        (
            "insurance.md".to_string(),
            "# Insurance\n\nWe accept Delta Dental, Aetna and Cigna. Bring your card to the first visit."
                .to_string(),
        ),
    ]));
    cm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knowledge_base_is_indexed_kept_in_sync_and_dropped() {
    let Some((admin_url, model)) = env() else {
        return;
    };
    let Some(cluster) = TestCluster::start("kb-sync").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let tenant = format!("t-{}", unique());
    let (vt, db, provisioner) = provisioned_tenant(&c, ns, &admin_url, &tenant).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
    cms.create(
        &PostParams::default(),
        &faq_docs(ns, "Free parking behind the building."),
    )
    .await
    .unwrap();
    let kbs: Api<KnowledgeBase> = Api::namespaced(c.clone(), ns);
    kbs.create(&PostParams::default(), &kb_manifest(ns, "faq", &tenant, ""))
        .await
        .unwrap();
    let (stop, task) = start_controller(&c, controller_config(ns, model.clone()));

    // Indexed: Ready with the counts, rows in the tenant's schema.
    let kb = wait_kb(&c, ns, "faq", "faq Ready", ready).await;
    let status = kb.status.clone().unwrap();
    assert_eq!(status.documents, 3, "1 inline document + 2 ConfigMap keys");
    assert!(status.chunks >= 3, "{status:?}");
    assert!(status.last_sync.is_some() && status.content_hash.is_some());
    assert_eq!(
        condition(&kb, "Degraded").unwrap(),
        ("False".into(), "AsExpected".into())
    );
    assert!(
        kb.finalizers()
            .iter()
            .any(|f| f == "voice.switchboard.dev/cleanup")
    );
    let mut pg = PgConnection::connect(&admin_url).await.unwrap();
    let before = rows(&mut pg, &db.schema, "faq").await;
    assert_eq!(before.len(), status.chunks as usize);
    let docs: std::collections::BTreeSet<&str> = before.values().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        docs.into_iter().collect::<Vec<_>>(),
        [
            "configmap/faq-docs/insurance.md",
            "configmap/faq-docs/parking.md",
            "inline/Opening hours"
        ]
    );

    // Idle: a reconcile of the synced knowledge base decides there is nothing to do (no
    // embedding, no write), and the running controller writes nothing.
    let engine = Engine::new(EngineConfig {
        model_dir: Some(model.clone()),
        embed_concurrency: 1,
        openai_retries: Some(0),
    });
    let api = KubeKnowledgeApi::new(c.clone());
    assert_eq!(sync(&kb, &api, &engine).await, Decision::UpToDate);
    if let Some(sim) = &cluster.sim {
        sim.reset_counters();
    }
    // Metadata-only edits wake the controller without changing the spec.
    let test_manager = PatchParams {
        field_manager: Some("test".into()),
        ..PatchParams::default()
    };
    let touched = kbs
        .patch(
            "faq",
            &test_manager,
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Nothing changed it since (any server); nothing was even sent (the simulator's log).
    assert_eq!(
        kbs.get("faq").await.unwrap().metadata.resource_version,
        touched.metadata.resource_version,
        "an idle controller changed the knowledge base"
    );
    if let Some(sim) = &cluster.sim {
        let writes: Vec<_> = sim
            .write_log()
            .into_iter()
            .filter(|w| w.field_manager != "test")
            .collect();
        assert!(
            writes.is_empty(),
            "an idle controller writes nothing: {writes:#?}"
        );
    }
    assert_eq!(
        rows(&mut pg, &db.schema, "faq").await,
        before,
        "nothing re-embedded"
    );

    // Edit one ConfigMap key: only that document's chunks are re-embedded.
    let previous_hash = status.content_hash.clone();
    cms.patch(
        "faq-docs",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"parking.md": "Parking is free in the garage on Elm Street, level 2."}})),
    )
    .await
    .unwrap();
    let kb = wait_kb(&c, ns, "faq", "faq re-synced", |kb| {
        ready(kb) && kb.status.as_ref().unwrap().content_hash != previous_hash
    })
    .await;
    assert_eq!(kb.status.as_ref().unwrap().documents, 3);
    let after = rows(&mut pg, &db.schema, "faq").await;
    for (chunk, (doc, updated)) in &after {
        let unchanged = before.get(chunk).is_some_and(|(_, u)| u == updated);
        if doc == "configmap/faq-docs/parking.md" {
            assert!(
                !unchanged,
                "the edited document's chunk {chunk} was re-embedded"
            );
        } else {
            assert!(unchanged, "chunk {chunk} of {doc} was not touched");
        }
    }

    // A broken embedder (OpenAI-compatible, nothing listening): Degraded EmbedderFailed,
    // retried with backoff until the endpoint answers.
    let keys = Secret {
        metadata: ::kube::api::ObjectMeta {
            name: Some("embedder-key".into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "key".to_string(),
            ByteString(b"sk-test".to_vec()),
        )])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &keys)
        .await
        .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let openai = format!(
        "  embedder:\n    type: openai\n    openai:\n      model: test-embed\n      dimensions: 384\n      baseUrl: http://127.0.0.1:{port}/v1\n      apiKey: {{ secretKeyRef: {{ name: embedder-key, key: key }} }}\n"
    );
    kbs.create(
        &PostParams::default(),
        &kb_manifest(ns, "remote", &tenant, &openai),
    )
    .await
    .unwrap();
    // The key's Secret is not labelled usable yet: refused, as on the VoiceTenant path.
    let kb = wait_kb(
        &c,
        ns,
        "remote",
        "remote refused an unlabelled Secret",
        |kb| condition(kb, "Degraded").is_some_and(|(s, r)| s == "True" && r == "SecretNotUsable"),
    )
    .await;
    assert_eq!(condition(&kb, "Ready").unwrap().0, "False");
    let message = condition_message(&kb, "Degraded");
    assert!(
        message.contains("voice.switchboard.dev/usable=true"),
        "{message}"
    );
    Api::<Secret>::namespaced(c.clone(), ns)
        .patch(
            "embedder-key",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {USABLE_SECRET_LABEL: "true"}}})),
        )
        .await
        .unwrap();
    let kb = wait_kb(&c, ns, "remote", "remote Degraded", |kb| {
        condition(kb, "Degraded").is_some_and(|(s, r)| s == "True" && r == "EmbedderFailed")
    })
    .await;
    assert_eq!(
        condition(&kb, "Degraded").unwrap(),
        ("True".into(), "EmbedderFailed".into()),
        "{:?}",
        kb.status
    );
    assert_eq!(condition(&kb, "Ready").unwrap().0, "False");
    // The endpoint comes up: the next retry indexes.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(serve_embeddings(listener, None));
    let kb = wait_kb(
        &c,
        ns,
        "remote",
        "remote Ready after the endpoint came up",
        ready,
    )
    .await;
    assert_eq!(kb.status.as_ref().unwrap().documents, 3);
    assert_eq!(condition(&kb, "Degraded").unwrap().0, "False");

    // A tenant without its database yet: Progressing, and indexed as soon as the
    // tenant's status names the database (the tenant's change triggers the reconcile).
    let late = format!("t-{}", unique());
    let tenants: Api<VoiceTenant> = Api::namespaced(c.clone(), ns);
    tenants
        .create(&PostParams::default(), &tenant_manifest(ns, &late))
        .await
        .unwrap();
    kbs.create(&PostParams::default(), &kb_manifest(ns, "later", &late, ""))
        .await
        .unwrap();
    let kb = wait_kb(&c, ns, "later", "later Progressing", |kb| {
        condition(kb, "Progressing").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(
        condition(&kb, "Progressing").unwrap().1,
        "TenantDatabasePending"
    );
    assert_eq!(condition(&kb, "Degraded").unwrap().0, "False");
    // Whoever may patch the tenant's status writes another tenant's database there: the
    // knowledge base must not be indexed into it (nor use that tenant's credentials).
    let forge = |status: switchboard_crds::DatabaseStatus| {
        json!({
            "apiVersion": "voice.switchboard.dev/v1alpha1",
            "kind": "VoiceTenant",
            "status": { "database": status },
        })
    };
    tenants
        .patch_status(
            &late,
            &PatchParams::apply("test").force(),
            &Patch::Apply(forge(db.to_status())),
        )
        .await
        .unwrap();
    let kb = wait_kb(
        &c,
        ns,
        "later",
        "later refuses a forged status.database",
        |kb| {
            condition(kb, "Degraded")
                .is_some_and(|(s, r)| s == "True" && r == "TenantDatabaseNotProven")
        },
    )
    .await;
    assert_eq!(condition(&kb, "Ready").unwrap().0, "False");
    let mut conn = PgConnection::connect(&admin_url).await.unwrap();
    let stray: Option<String> =
        sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE '%later%'")
            .bind(&db.schema)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
    assert_eq!(stray, None, "indexed into the other tenant's schema");
    // Its own database, provisioned under the names derived for it: indexed.
    let late_vt = tenants.get(&late).await.unwrap();
    let late_db = TenantDatabase::for_tenant(&late_vt).unwrap();
    let password = generate_password();
    provisioner
        .ensure(&late_db, &Ownership::of(&late_vt).unwrap(), &password)
        .await
        .unwrap();
    let late_secret =
        build_database_secret(&late_vt, &late_db, &password, provisioner.target()).unwrap();
    Api::<Secret>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &late_secret)
        .await
        .unwrap();
    tenants
        .patch_status(
            &late,
            &PatchParams::apply("test").force(),
            &Patch::Apply(forge(late_db.to_status())),
        )
        .await
        .unwrap();
    wait_kb(
        &c,
        ns,
        "later",
        "later Ready once the database exists",
        ready,
    )
    .await;

    // A knowledge base of a tenant that does not exist.
    kbs.create(
        &PostParams::default(),
        &kb_manifest(ns, "orphan", "nobody", ""),
    )
    .await
    .unwrap();
    let kb = wait_kb(&c, ns, "orphan", "orphan Degraded", |kb| {
        condition(kb, "Degraded").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(condition(&kb, "Degraded").unwrap().1, "TenantNotFound");

    // Delete under the tenant's Delete policy: the table goes, then the object.
    assert!(table_exists(&mut pg, &db.schema, "faq").await);
    kbs.delete("faq", &DeleteParams::default()).await.unwrap();
    wait_for("faq gone", || {
        let kbs = kbs.clone();
        async move { kbs.get_opt("faq").await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert!(
        !table_exists(&mut pg, &db.schema, "faq").await,
        "the table was dropped"
    );
    assert!(
        table_exists(&mut pg, &db.schema, "remote").await,
        "other tables stay"
    );

    let _ = stop.send(true);
    let _ = tokio::time::timeout(CONVERGE, task).await;
    provisioner
        .drop(&db, &Ownership::of(&vt).unwrap())
        .await
        .unwrap();
    provisioner
        .drop(&late_db, &Ownership::of(&late_vt).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinecone_knowledge_base_is_indexed_in_its_namespace_and_deleted_with_it() {
    // Pinecone needs no Postgres: only the model.
    let Some(model) = services::model_dir() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pinecone = switchboard_sim::pinecone::PineconeSim::start(
        switchboard_sim::pinecone::PineconeSimConfig::default(),
    )
    .await
    .unwrap();
    let Some(cluster) = TestCluster::start("kb-pinecone").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    // Pinecone needs no tenant database.
    let tenant = format!("t-{}", unique());
    Api::<VoiceTenant>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &tenant_manifest(ns, &tenant))
        .await
        .unwrap();
    let key = Secret {
        metadata: ::kube::api::ObjectMeta {
            name: Some("pinecone".into()),
            namespace: Some(ns.into()),
            labels: Some(BTreeMap::from([(
                USABLE_SECRET_LABEL.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "api-key".to_string(),
            ByteString(pinecone.api_key().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &key)
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &faq_docs(ns, "Free parking."))
        .await
        .unwrap();
    let mut kb = kb_manifest(ns, "prices", &tenant, "");
    kb.spec.backend = serde_json::from_value(json!({
        "type": "pinecone",
        "pinecone": {
            "index": "kb-test",
            "cloud": "aws",
            "region": "us-east-1",
            "namespace": "acme-prices",
            "apiUrl": pinecone.url(),
            "apiKey": {"secretKeyRef": {"name": "pinecone", "key": "api-key"}},
        }
    }))
    .unwrap();
    let kbs: Api<KnowledgeBase> = Api::namespaced(c.clone(), ns);
    kbs.create(&PostParams::default(), &kb).await.unwrap();
    let (stop, task) = start_controller(&c, controller_config(ns, model));

    let kb = wait_kb(&c, ns, "prices", "prices Ready", ready).await;
    let chunks = kb.status.as_ref().unwrap().chunks;
    assert_eq!(kb.status.as_ref().unwrap().documents, 3);
    let mut config =
        switchboard_knowledge::store::PineconeConfig::new(pinecone.api_key(), "kb-test");
    config.control_url = pinecone.url();
    let store = switchboard_knowledge::store::PineconeStore::connect(config)
        .await
        .unwrap();
    let count = |stats: switchboard_knowledge::store::pinecone::IndexStats| {
        stats.namespaces.get("acme-prices").copied().unwrap_or(0)
    };
    assert_eq!(store.dimensions(), 384);
    assert_eq!(count(store.stats().await.unwrap()), u64::from(chunks));

    // The tenant's policy is Delete: the namespace is emptied before the object goes.
    kbs.delete("prices", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("prices gone", || {
        let kbs = kbs.clone();
        async move { kbs.get_opt("prices").await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert_eq!(count(store.stats().await.unwrap()), 0);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(CONVERGE, task).await;
}

/// A tenant's editor may create Secrets, and an owner reference is a field like any other:
/// a Secret under the name of the tenant's database Secret, with a controller reference
/// to the tenant, whose URL is not the one the operator writes (here the test server's
/// superuser, on the tenant's schema), is refused (`ForeignSecret`) before any
/// connection is made with it, and nothing is created in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_database_secret_with_the_tenants_owner_reference_is_refused() {
    let Some((admin_url, model)) = env() else {
        return;
    };
    let Some(cluster) = TestCluster::start("kb-forged").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let tenant = format!("t-{}", unique());
    let tenants: Api<VoiceTenant> = Api::namespaced(c.clone(), ns);
    let vt = tenants
        .create(&PostParams::default(), &tenant_manifest(ns, &tenant))
        .await
        .unwrap();
    let db = TenantDatabase::for_tenant(&vt).unwrap();
    let target = AdminTarget::from_admin_url(&admin_url).unwrap();
    // What the operator would create (name, controller reference), with the editor's URL.
    let mut forged = build_database_secret(&vt, &db, "guess", &target).unwrap();
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    let superuser = format!("{admin_url}{sep}options=-c%20search_path%3D{}", db.schema);
    forged
        .data
        .as_mut()
        .unwrap()
        .insert(URL_KEY.into(), ByteString(superuser.into_bytes()));
    Api::<Secret>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &forged)
        .await
        .unwrap();
    // status.database names exactly the derived objects (anyone with status access can).
    tenants
        .patch_status(
            &tenant,
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({
                "apiVersion": "voice.switchboard.dev/v1alpha1",
                "kind": "VoiceTenant",
                "status": { "database": db.to_status() },
            })),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &faq_docs(ns, "Free parking."))
        .await
        .unwrap();
    let kbs: Api<KnowledgeBase> = Api::namespaced(c.clone(), ns);
    kbs.create(
        &PostParams::default(),
        &kb_manifest(ns, "forged", &tenant, ""),
    )
    .await
    .unwrap();
    let (stop, task) = start_controller(&c, controller_config(ns, model));
    let kb = wait_kb(&c, ns, "forged", "forged Degraded", |kb| {
        condition(kb, "Degraded").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(
        condition(&kb, "Degraded").unwrap().1,
        "ForeignSecret",
        "{kb:?}"
    );
    assert_eq!(condition(&kb, "Ready").unwrap().0, "False");
    let mut pg = PgConnection::connect(&admin_url).await.unwrap();
    let schema: Option<String> = sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(&db.schema)
    .fetch_optional(&mut pg)
    .await
    .unwrap();
    assert_eq!(schema, None, "the forged URL was used");
    let _ = stop.send(true);
    let _ = tokio::time::timeout(CONVERGE, task).await;
}

/// Issue 12 §1 (b): an embedder's `baseUrl` outside the operator's `--openai-hosts` is
/// refused before its key is read or anything is sent, whatever else the knowledge base
/// waits for (here its tenant's database). Before this change nothing refused it: it
/// waited for the database and then posted the labelled key with the documents to
/// whatever host the editor wrote, so the wait below for the refusal failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedder_outside_the_allowed_hosts_gets_no_key() {
    let Some(cluster) = TestCluster::start("kbhosts").await else {
        return;
    };
    let (c, ns) = (cluster.client.clone(), cluster.namespace.as_str());
    let tenant = format!("t-{}", unique());
    Api::<VoiceTenant>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &tenant_manifest(ns, &tenant))
        .await
        .unwrap();
    let mut key = Secret::default();
    key.metadata.name = Some("collector-key".into());
    key.metadata.namespace = Some(ns.into());
    key.metadata.labels = Some(BTreeMap::from([(
        USABLE_SECRET_LABEL.to_string(),
        "true".to_string(),
    )]));
    key.data = Some(BTreeMap::from([(
        "key".to_string(),
        ByteString(b"sk-victim".to_vec()),
    )]));
    Api::<Secret>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &key)
        .await
        .unwrap();
    // The editor's "collector": counts connections.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((_sock, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let embedder = format!(
        "  embedder:\n    type: openai\n    openai:\n      model: test-embed\n      dimensions: 384\n      baseUrl: http://127.0.0.1:{port}/v1\n      apiKey: {{ secretKeyRef: {{ name: collector-key, key: key }} }}\n"
    );
    let kbs: Api<KnowledgeBase> = Api::namespaced(c.clone(), ns);
    kbs.create(
        &PostParams::default(),
        &kb_manifest(ns, "collected", &tenant, &embedder),
    )
    .await
    .unwrap();
    // The operator's defaults: OpenAI's host with TLS, nothing on loopback.
    let mut config = controller_config(ns, PathBuf::from("/nonexistent-model"));
    config.endpoints = Default::default();
    let (stop, task) = start_controller(&c, config);
    let kb = wait_kb(&c, ns, "collected", "the embedder's host refused", |kb| {
        condition(kb, "Degraded").is_some_and(|(s, r)| s == "True" && r == "EmbedderHostNotAllowed")
    })
    .await;
    assert_eq!(condition(&kb, "Ready").unwrap().0, "False");
    let message = condition_message(&kb, "Degraded");
    assert!(
        message.contains(&format!("http://127.0.0.1:{port}/v1"))
            && message.contains("--openai-hosts"),
        "{message}"
    );
    // Retries (backoff 200 ms) do not send anything either.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the key's request reached the editor's host"
    );
    let _ = stop.send(true);
    let _ = task.await;
}
