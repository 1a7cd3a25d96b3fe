//! Cluster mode end to end: the operator's knowledge-base code indexes the demo FAQ into
//! the tenant's own schema on real Postgres (as the tenant's role); a gateway whose call
//! store is that tenant's Postgres URL searches the table in place (it ingests nothing)
//! and answers a simulated call's `search_knowledge_base` call with the right passage.
//!
//! Needs `SWITCHBOARD_TEST_PG` (`eval "$(scripts/postgres.sh start)"`) and
//! `SWITCHBOARD_MODEL_DIR` (`scripts/model.sh`), through the shared gate (skips locally,
//! fails under `CI=true`).
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::json;
use switchboard_crds::{KnowledgeBase, VoiceTenant};
use switchboard_operator::database::Ownership;
use switchboard_operator::database::{
    Provisioner, TenantDatabase, URL_KEY, build_database_secret, generate_password,
};
use switchboard_operator::knowledge::{
    Decision, Engine, EngineConfig, KnowledgeApi, Outcome, sync,
};
use switchboard_sim::caller::{CallReport, Step, one_question, place_call};
use switchboard_sim::realtime::{RealtimeConfig, Turn};
use switchboard_tests::{Env, EnvOptions, services};

/// What the operator would read from the cluster: the tenant (with its database in
/// status) and its database Secret.
struct Cluster {
    tenant: VoiceTenant,
    /// The Secrets of the namespace.
    secrets: Vec<Secret>,
}

impl KnowledgeApi for Cluster {
    fn tenant<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<VoiceTenant>, kube::Error>> {
        let found =
            (self.tenant.metadata.name.as_deref() == Some(name)).then(|| self.tenant.clone());
        Box::pin(async move { Ok(found) })
    }

    fn config_map<'a>(
        &'a self,
        _namespace: &'a str,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigMap>, kube::Error>> {
        Box::pin(async { Ok(None) })
    }

    fn secret<'a>(
        &'a self,
        _namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Secret>, kube::Error>> {
        let found = self
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .cloned();
        Box::pin(async move { Ok(found) })
    }
}

/// How the gateway learns the tenant's database URL.
enum UrlFrom {
    /// `--database-url` (the operator's `SWITCHBOARD_DATABASE_URL` from the tenant's Secret).
    Flag,
    /// `spec.database.url` naming a secret of AWS Secrets Manager (moto's server here).
    SecretsManager(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_postgres_answers_from_the_operators_pgvector_index() {
    let (Some(admin_url), Some(model)) = (services::postgres(), services::model_dir()) else {
        return;
    };
    answers_from_pgvector(admin_url, model, UrlFrom::Flag).await;
}

/// The same with the URL only in Secrets Manager: the gateway reads it before it opens
/// the knowledge bases, so it searches the operator's table in place there too. Before,
/// the knowledge bases opened with no database URL, ingested the FAQ locally (a
/// `knowledge.db` in the data directory) and never read the tenant's index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_url_from_secrets_manager_is_where_the_index_is_searched() {
    let (Some(admin_url), Some(model), Some(aws)) =
        (services::postgres(), services::model_dir(), services::aws())
    else {
        return;
    };
    answers_from_pgvector(admin_url, model, UrlFrom::SecretsManager(aws)).await;
}

async fn answers_from_pgvector(admin_url: String, model: PathBuf, from: UrlFrom) {
    // The tenant "demo" (the name the test gateway serves) with its own role and schema.
    let uid = generate_password()[..12].to_ascii_lowercase();
    let mut vt = switchboard_crds::parse_tenant(&format!(
        r#"apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata: {{ name: demo, namespace: kb-cluster-{uid}, uid: {uid} }}
spec:
  displayName: Demo Dental
  phoneNumbers: ["+15005550006"]
  agent: {{ knowledgeBases: [demo-faq] }}
  twilio:
    accountSid: ACe5b9b91d74144c1eab5502f239bd8ed9
    authToken: {{ secretKeyRef: {{ name: keys, key: twilio }} }}
  openai:
    apiKey: {{ secretKeyRef: {{ name: keys, key: openai }} }}
"#
    ))
    .unwrap();
    let provisioner = Provisioner::new(&admin_url).unwrap();
    let db = TenantDatabase::for_tenant(&vt).unwrap();
    let password = generate_password();
    let owner = Ownership::of(&vt).unwrap();
    provisioner.ensure(&db, &owner, &password).await.unwrap();
    let secret = build_database_secret(&vt, &db, &password, provisioner.target()).unwrap();
    let tenant_url = String::from_utf8(secret.data.clone().unwrap()[URL_KEY].0.clone()).unwrap();
    vt.status = Some(switchboard_crds::VoiceTenantStatus {
        database: Some(db.to_status()),
        ..Default::default()
    });

    // The operator's reconcile indexes the demo FAQ.
    let manifest =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/knowledge/demo.yaml");
    let mut kb: KnowledgeBase =
        switchboard_crds::parse_knowledge_base(&std::fs::read_to_string(&manifest).unwrap())
            .unwrap();
    kb.metadata.namespace = vt.metadata.namespace.clone();
    kb.metadata.generation = Some(1);
    let cluster = Cluster {
        tenant: vt,
        secrets: vec![secret],
    };
    let engine = Engine::new(EngineConfig {
        model_dir: Some(model),
        embed_concurrency: 1,
        openai_retries: Some(0),
    })
    .with_database_target(Some(provisioner.target().clone()));
    let decision = sync(&kb, &cluster, &engine).await;
    let Decision::Report(Outcome::Synced { chunks, .. }) = decision else {
        panic!("the operator did not index: {decision:?}");
    };
    assert!(chunks > 5, "{chunks} chunks");

    // The gateway on the tenant's Postgres, with the same manifest as the operator
    // renders into the tenant's ConfigMap.
    let (realtime, script) = question();
    let mut options = EnvOptions {
        realtime,
        agent_extra: "    knowledgeBases: [demo-faq]\n".into(),
        knowledge: vec![manifest],
        ..EnvOptions::default()
    };
    let mut rotate = None;
    match from {
        UrlFrom::Flag => options.database_url = Some(tenant_url.clone()),
        UrlFrom::SecretsManager(aws) => {
            let secret = format!("tenants/{uid}/database");
            options.aws = services::aws_options(&aws);
            let sdk = switchboard_aws::load_config(&options.aws).await;
            let sm = aws_sdk_secretsmanager::Client::new(&sdk);
            sm.create_secret()
                .name(&secret)
                .secret_string(&tenant_url)
                .send()
                .await
                .expect("create the database URL's secret");
            options.spec_extra = format!(
                "  database:\n    url: {{ awsSecretsManager: {{ secretId: {secret} }} }}\n"
            );
            options.secrets_refresh_seconds = 1;
            rotate = Some((sm, secret));
        }
    }
    let env = Env::start(options).await.unwrap();
    let report = answered_from_demo_faq(
        &env,
        script.clone(),
        "the gateway searched in place and ingested nothing",
    )
    .await;
    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.tool_calls.len(), 1);
    assert!(
        rec.tool_calls[0]
            .output
            .contains("demo-faq/inline/opening-hours#")
    );

    if let Some((sm, secret)) = rotate {
        // Secrets Manager rotates to a second user ("alternating users"): the new URL in
        // the secret, the first user's login disabled and its sessions ended (the lookup
        // pool's included). The next lookup connects again, and only as the new user.
        // (The test server trusts loopback logins, so the user, not a password, is what
        // it can refuse.)
        let mut url = reqwest::Url::parse(&tenant_url).unwrap();
        let role = url.username().to_string();
        let schema = db.schema.clone();
        let second = format!("{role}_b");
        url.set_username(&second).unwrap();
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
        for sql in [
            format!("CREATE ROLE \"{second}\" LOGIN"),
            format!("GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO \"{second}\""),
            format!("GRANT ALL ON ALL TABLES IN SCHEMA \"{schema}\" TO \"{second}\""),
            format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA \"{schema}\" TO \"{second}\""),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&admin)
                .await
                .unwrap();
        }
        sm.put_secret_value()
            .secret_id(&secret)
            .secret_string(url.as_str())
            .send()
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while switchboard_tests::metric(
            &env.metrics().await,
            "switchboard_secret_refreshes_total{result=\"changed\"}",
        ) < 1.0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the rotated URL was not read"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        for sql in [
            format!("ALTER ROLE \"{role}\" NOLOGIN"),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&admin)
                .await
                .unwrap();
        }
        answered_from_demo_faq(&env, script, "searched in place after the rotation").await;
        // The roles are server-wide: leave the second one behind nowhere.
        drop(env);
        for sql in [
            format!("ALTER ROLE \"{role}\" LOGIN"),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{second}'"
            ),
            format!("DROP OWNED BY \"{second}\""),
            format!("DROP ROLE \"{second}\""),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&admin)
                .await
                .unwrap();
        }
        admin.close().await;
    } else {
        drop(env);
    }
    provisioner.drop(&db, &owner).await.unwrap();
}

/// Places the question's call and checks that the opening-hours passage answered it, from
/// the backend rather than a local ingest (`why` says which); returns the call's report.
async fn answered_from_demo_faq(env: &Env, script: Vec<Step>, why: &str) -> CallReport {
    let before = env.realtime.sessions().len();
    let report = place_call(&env.call(script)).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert!(
        env.realtime
            .wait_sessions_closed(before + 1, std::time::Duration::from_secs(5))
            .await
    );
    let s = &env.realtime.sessions()[before];
    assert_eq!(s.function_outputs.len(), 1, "{:#?}", s.events);
    let output: serde_json::Value = serde_json::from_str(&s.function_outputs[0].1).unwrap();
    let first = &output["passages"][0];
    assert!(
        first["text"].as_str().unwrap().contains("Saturday"),
        "top passage: {output:#}"
    );
    assert!(
        first["source"]
            .as_str()
            .unwrap()
            .starts_with("demo-faq/inline/opening-hours#"),
        "{output:#}"
    );
    assert!(!env.dir.path().join("data/knowledge.db").exists(), "{why}");
    report
}

/// The script of one knowledge question, answered with the tool's output.
fn question() -> (RealtimeConfig, Vec<Step>) {
    (
        RealtimeConfig {
            script: vec![Turn::call(
                "are you open on saturday",
                "search_knowledge_base",
                json!({"query": "opening hours on Saturday"}),
                "Here is what I found: {output}",
            )],
            ..RealtimeConfig::default()
        },
        one_question(1200),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_answers_from_the_operators_pinecone_namespace() {
    let Some(model) = services::model_dir() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pinecone = switchboard_sim::pinecone::PineconeSim::start(
        switchboard_sim::pinecone::PineconeSimConfig::default(),
    )
    .await
    .unwrap();
    let backend = |api_key: &str| {
        format!(
            "  backend:\n    type: pinecone\n    pinecone:\n      index: demo\n      cloud: aws\n      region: us-east-1\n      apiUrl: {}\n      apiKey: {api_key}\n",
            pinecone.url()
        )
    };
    let demo = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/knowledge/demo.yaml"),
    )
    .unwrap();
    let with_backend = |api_key: &str| {
        demo.replacen(
            "  sources:\n",
            &format!("{}  sources:\n", backend(api_key)),
            1,
        )
    };

    // The operator indexes with the key from its Secret.
    let mut kb = switchboard_crds::parse_knowledge_base(&with_backend(
        "{ secretKeyRef: { name: pinecone, key: api-key } }",
    ))
    .unwrap();
    kb.metadata.namespace = Some("kb-cluster".into());
    kb.metadata.generation = Some(1);
    let vt = switchboard_crds::parse_tenant(
        r#"apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata: { name: demo, namespace: kb-cluster }
spec:
  displayName: Demo Dental
  phoneNumbers: ["+15005550006"]
  twilio:
    accountSid: ACe5b9b91d74144c1eab5502f239bd8ed9
    authToken: { secretKeyRef: { name: keys, key: twilio } }
  openai:
    apiKey: { secretKeyRef: { name: keys, key: openai } }
"#,
    )
    .unwrap();
    let cluster = Cluster {
        tenant: vt,
        secrets: vec![Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("pinecone".into()),
                labels: Some(
                    [(
                        switchboard_operator::labels::USABLE_SECRET_LABEL.to_string(),
                        "true".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            string_data: Some([("api-key".to_string(), pinecone.api_key().to_string())].into()),
            ..Secret::default()
        }],
    };
    let engine = Engine::new(EngineConfig {
        model_dir: Some(model),
        embed_concurrency: 1,
        openai_retries: Some(0),
    })
    .with_endpoints(switchboard_tests::knowledge::loopback_endpoints());
    let decision = sync(&kb, &cluster, &engine).await;
    assert!(
        matches!(decision, Decision::Report(Outcome::Synced { .. })),
        "{decision:?}"
    );

    // The gateway (SQLite call store) reads the same manifest, its key from a file.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pinecone-key");
    std::fs::write(&key_file, pinecone.api_key()).unwrap();
    let manifest = dir.path().join("demo-faq.yaml");
    std::fs::write(
        &manifest,
        with_backend(&format!("{{ file: {} }}", key_file.display())),
    )
    .unwrap();
    let (realtime, script) = question();
    let env = Env::start(EnvOptions {
        realtime,
        agent_extra: "    knowledgeBases: [demo-faq]\n".into(),
        knowledge: vec![manifest],
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    answered_from_demo_faq(
        &env,
        script,
        "the gateway searched Pinecone and ingested nothing",
    )
    .await;
}
