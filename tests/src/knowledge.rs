//! Harness of the KnowledgeBase controller tests: the controller in-process against a
//! [`crate::kube::TestCluster`] (the simulated Kubernetes API server, or a real one), a
//! tenant whose database is provisioned on real Postgres, and waits on knowledge-base
//! conditions and the rows of its pgvector table. Every helper takes the test's
//! namespace.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, Patch, PatchParams, PostParams};
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;
use sqlx::PgConnection;
use switchboard_crds::{KnowledgeBase, VoiceTenant};
use switchboard_knowledge::PgVectorStore;
use switchboard_operator::database::{
    AdminTarget, Ownership, Provisioner, TenantDatabase, build_database_secret, generate_password,
};
use switchboard_operator::endpoints::EndpointPolicy;
use switchboard_operator::knowledge::{EngineConfig, KnowledgeControllerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// How long a wait may take before the test fails (the waits poll and return as soon as
/// the condition holds; the first local-model load and embedding are slow in debug).
pub const CONVERGE: Duration = Duration::from_secs(120);

/// Polls `check` every 50 ms until it gives `Some`; fails the test after [`CONVERGE`].
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    crate::operator::wait_within(what, CONVERGE, check).await
}

/// 8 random lowercase characters (names that never collide between runs).
pub fn unique() -> String {
    generate_password()[..8].to_ascii_lowercase()
}

/// A tenant `name` of namespace `ns` with `deletionPolicy: Delete` that lists knowledge
/// base `faq`.
pub fn tenant_manifest(ns: &str, name: &str) -> VoiceTenant {
    switchboard_crds::parse_tenant(&format!(
        r#"apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata:
  name: {name}
  namespace: {ns}
spec:
  displayName: Knowledge test
  phoneNumbers: ["+15005550006"]
  agent:
    knowledgeBases: [faq]
  twilio:
    accountSid: ACe5b9b91d74144c1eab5502f239bd8ed9
    authToken: {{ secretKeyRef: {{ name: keys, key: twilio }} }}
  openai:
    apiKey: {{ secretKeyRef: {{ name: keys, key: openai }} }}
  deletionPolicy: Delete
"#
    ))
    .expect("the test tenant parses")
}

/// A tenant in namespace `ns` with a database provisioned on real Postgres (through the
/// operator's Provisioner) and reported in its status, as the tenant controller leaves
/// it.
pub async fn provisioned_tenant(
    c: &Client,
    ns: &str,
    admin_url: &str,
    name: &str,
) -> (VoiceTenant, TenantDatabase, Provisioner) {
    let tenants: Api<VoiceTenant> = Api::namespaced(c.clone(), ns);
    let vt = tenants
        .create(&PostParams::default(), &tenant_manifest(ns, name))
        .await
        .expect("create the tenant");
    let p = Provisioner::new(admin_url).expect("a provisioner");
    let db = TenantDatabase::for_tenant(&vt).expect("database names");
    let password = generate_password();
    let owner = Ownership::of(&vt).expect("tenant ownership");
    p.ensure(&db, &owner, &password)
        .await
        .expect("provision the database");
    let secret =
        build_database_secret(&vt, &db, &password, p.target()).expect("the database Secret");
    Api::<Secret>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the database Secret");
    let status = json!({
        "apiVersion": "voice.switchboard.dev/v1alpha1",
        "kind": "VoiceTenant",
        "status": { "database": db.to_status() },
    });
    let vt = tenants
        .patch_status(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(status),
        )
        .await
        .expect("report the database in the tenant's status");
    (vt, db, p)
}

/// The default host lists, plus plain `http://` to `127.0.0.1` for OpenAI-compatible and
/// Pinecone URLs: the simulators of these tests listen there (in a test cluster the
/// operator's `--openai-insecure-hosts` and `--pinecone-insecure-hosts` do the same).
pub fn loopback_endpoints() -> EndpointPolicy {
    let mut p = EndpointPolicy::default();
    p.openai.insecure = vec!["127.0.0.1".into()];
    p.pinecone.insecure = vec!["127.0.0.1".into()];
    p
}

/// The controller's test configuration: watching namespace `ns` only, the local model in
/// `model`, no OpenAI retries, short backoff, simulators on loopback allowed
/// ([`loopback_endpoints`]).
pub fn controller_config(ns: &str, model: PathBuf) -> KnowledgeControllerConfig {
    KnowledgeControllerConfig {
        namespace: Some(ns.into()),
        engine: EngineConfig {
            model_dir: Some(model),
            embed_concurrency: 1,
            openai_retries: Some(0),
        },
        first_backoff: Some(Duration::from_millis(200)),
        // The server the tests provision tenant databases on (`provisioned_tenant`).
        database_target: crate::services::postgres()
            .and_then(|url| AdminTarget::from_admin_url(&url).ok()),
        endpoints: loopback_endpoints(),
        ..KnowledgeControllerConfig::default()
    }
}

/// Runs the KnowledgeBase controller until the returned sender sends `true`.
pub fn start_controller(
    c: &Client,
    config: KnowledgeControllerConfig,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, mut rx) = watch::channel(false);
    let task = tokio::spawn(switchboard_operator::knowledge::run(
        c.clone(),
        config,
        async move {
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    (stop, task)
}

/// `(status, reason)` of condition `type_`.
pub fn condition(kb: &KnowledgeBase, type_: &str) -> Option<(String, String)> {
    kb.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// The message of condition `type_` (empty when there is none).
pub fn condition_message(kb: &KnowledgeBase, type_: &str) -> String {
    kb.status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == type_)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Waits until knowledge base `name` of namespace `ns` satisfies `pred`; returns it.
pub async fn wait_kb<F>(c: &Client, ns: &str, name: &str, what: &str, pred: F) -> KnowledgeBase
where
    F: Fn(&KnowledgeBase) -> bool,
{
    let kbs: Api<KnowledgeBase> = Api::namespaced(c.clone(), ns);
    wait_for(what, || {
        let kbs = kbs.clone();
        let pred = &pred;
        async move {
            kbs.get_opt(name)
                .await
                .expect("read the knowledge base")
                .filter(|kb| pred(kb))
        }
    })
    .await
}

/// Ready for its current generation.
pub fn ready(kb: &KnowledgeBase) -> bool {
    condition(kb, "Ready").is_some_and(|(s, _)| s == "True")
        && kb.status.as_ref().and_then(|s| s.observed_generation) == kb.metadata.generation
}

/// `chunk_id → (doc_id, updated_at)` of knowledge base `kb`'s table in `schema`.
pub async fn rows(
    pg: &mut PgConnection,
    schema: &str,
    kb: &str,
) -> BTreeMap<String, (String, String)> {
    let table = PgVectorStore::kb_table(kb);
    let rows: Vec<(String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT chunk_id, doc_id, updated_at::text FROM \"{schema}\".{table} WHERE kb = $1"
    )))
    .bind(kb)
    .fetch_all(pg)
    .await
    .expect("read the knowledge base's rows");
    rows.into_iter().map(|(c, d, u)| (c, (d, u))).collect()
}

/// Whether knowledge base `kb`'s table exists in `schema`.
pub async fn table_exists(pg: &mut PgConnection, schema: &str, kb: &str) -> bool {
    let name = format!("\"{schema}\".{}", PgVectorStore::kb_table(kb));
    sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(pg)
        .await
        .expect("look the table up")
}

/// The key an embeddings server ([`serve_embeddings_with`]) accepts, replaceable while it
/// runs (a key rotated at the provider: the old one is refused from then on).
pub type EmbedKey = std::sync::Arc<std::sync::Mutex<Option<String>>>;

/// A minimal OpenAI-compatible `POST /v1/embeddings`: deterministic 384-dimension
/// vectors, one HTTP/1.1 request per connection. With `api_key`, a request without
/// `Authorization: Bearer <api_key>` is answered 401 as OpenAI does.
pub async fn serve_embeddings(listener: tokio::net::TcpListener, api_key: Option<String>) {
    serve_embeddings_with(
        listener,
        std::sync::Arc::new(std::sync::Mutex::new(api_key)),
    )
    .await;
}

/// [`serve_embeddings`] accepting the key `api_key` holds at each request.
pub async fn serve_embeddings_with(listener: tokio::net::TcpListener, api_key: EmbedKey) {
    while let Ok((mut sock, _)) = listener.accept().await {
        let api_key = api_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let body = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break buf[end + 4..end + 4 + len].to_vec();
                    }
                }
            };
            let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
            if let Some(key) = &api_key
                && !head.contains(&format!(
                    "authorization: bearer {}",
                    key.to_ascii_lowercase()
                ))
            {
                let out = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
                let response = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                    out.len()
                );
                let _ = sock.write_all(response.as_bytes()).await;
                return;
            }
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let inputs = request["input"].as_array().cloned().unwrap_or_default();
            let data: Vec<_> = inputs
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let seed = text.as_str().unwrap_or_default().len() as f32;
                    let v: Vec<f32> = (0..384).map(|d| ((d as f32 + seed) * 0.37).sin()).collect();
                    json!({"object": "embedding", "index": i, "embedding": v})
                })
                .collect();
            let out = json!({"object": "list", "data": data, "model": "test-embed"}).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                out.len()
            );
            let _ = sock.write_all(response.as_bytes()).await;
        });
    }
}
