//! Secrets from AWS Secrets Manager and per-tenant field encryption with KMS, against
//! moto's server (which enforces KMS encryption contexts) and the test Postgres.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard_gateway::server::Gateway;
use switchboard_sim::caller::{Step, place_call};
use switchboard_tests::{
    ACCOUNT_SID, AUTH_TOKEN, Env, EnvOptions, NUMBER, Proxy, init, metric, pg_url,
};

/// moto's server: the same one serves S3, Secrets Manager and KMS.
use switchboard_tests::services::{aws as moto, aws_options as options_for};

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn sdk(url: &str) -> aws_config::SdkConfig {
    switchboard_aws::load_config(&options_for(url)).await
}

async fn create_secret(url: &str, name: &str, value: &str) {
    aws_sdk_secretsmanager::Client::new(&sdk(url).await)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret");
}

async fn put_secret(url: &str, name: &str, value: &str) {
    aws_sdk_secretsmanager::Client::new(&sdk(url).await)
        .put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .expect("put secret value");
}

async fn create_key(url: &str) -> String {
    let out = aws_sdk_kms::Client::new(&sdk(url).await)
        .create_key()
        .send()
        .await
        .expect("create key");
    out.key_metadata().expect("metadata").key_id().to_string()
}

fn secrets_json(token: &str) -> String {
    serde_json::json!({ "twilioAuthToken": token, "openaiApiKey": "sk-from-secrets-manager" })
        .to_string()
}

fn secret_refs(secret_id: &str) -> (String, String) {
    (
        format!("{{ awsSecretsManager: {{ secretId: {secret_id}, key: twilioAuthToken }} }}"),
        format!("{{ awsSecretsManager: {{ secretId: {secret_id}, key: openaiApiKey }} }}"),
    )
}

fn talk() -> Vec<Step> {
    let hear_out = Step::WaitAgentDone {
        quiet_ms: 400,
        timeout_ms: 15_000,
    };
    vec![
        hear_out.clone(),
        Step::Silence { ms: 200 },
        Step::Say { ms: 1200 },
        hear_out,
        Step::Silence { ms: 200 },
        Step::Hangup,
    ]
}

/// An incoming-call webhook signed with `token`; the HTTP status.
async fn webhook_signed(env: &Env, token: &str, call_sid: &str) -> u16 {
    let url = format!("{}/twilio/voice", env.base);
    let params: Vec<(String, String)> = [
        ("CallSid", call_sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", "+15551230000"),
        ("To", NUMBER),
        ("CallStatus", "ringing"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sig = switchboard_sim::caller::twilio_signature(token, &url, &params);
    switchboard_sim::caller::http_client()
        .unwrap()
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn sid(n: u32) -> String {
    format!("CA{n:032x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_secrets_in_secrets_manager_serve_a_call() {
    let Some(url) = moto() else { return };
    init();
    let secret = unique("tenants/demo");
    create_secret(&url, &secret, &secrets_json(AUTH_TOKEN)).await;
    let env = Env::start(EnvOptions {
        secret_refs: Some(secret_refs(&secret)),
        aws: options_for(&url),
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let creds = env
        .gw()
        .state
        .tenants
        .by_name("demo")
        .unwrap()
        .credentials();
    assert_eq!(creds.api_key, "sk-from-secrets-manager");
    let report = place_call(&env.call(talk())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
    assert!(!rec.transcript.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_stops_the_gateway_with_a_clear_error() {
    let Some(url) = moto() else { return };
    init();
    let err = Env::start(EnvOptions {
        secret_refs: Some(secret_refs(&unique("tenants/absent"))),
        aws: options_for(&url),
        ..EnvOptions::default()
    })
    .await
    .err()
    .expect("a tenant whose secret does not exist must not load")
    .to_string();
    assert!(
        err.contains("spec.twilio.authToken") && err.contains("ResourceNotFoundException"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_twilio_token_is_used_at_once_and_the_old_one_during_the_grace() {
    let Some(url) = moto() else { return };
    init();
    let secret = unique("tenants/rotating");
    create_secret(&url, &secret, &secrets_json("old-token-0123")).await;
    let env = Env::start(EnvOptions {
        secret_refs: Some(secret_refs(&secret)),
        aws: options_for(&url),
        // Only a signature failure re-reads here: the schedule is tested below.
        secrets_refresh_seconds: 3600,
        secret_rotation_grace_seconds: 3,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(webhook_signed(&env, "old-token-0123", &sid(1)).await, 200);

    // Rotated in Secrets Manager: the next webhook signed with the new token fails the
    // check once, the gateway re-reads and accepts it.
    put_secret(&url, &secret, &secrets_json("new-token-4567")).await;
    assert_eq!(webhook_signed(&env, "new-token-4567", &sid(3)).await, 200);
    // Twilio may still sign with the old token for a while: accepted during the grace.
    assert_eq!(webhook_signed(&env, "old-token-0123", &sid(4)).await, 200);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(webhook_signed(&env, "old-token-0123", &sid(5)).await, 403);
    assert_eq!(webhook_signed(&env, "new-token-4567", &sid(6)).await, 200);
    assert_eq!(webhook_signed(&env, "forged", &sid(7)).await, 403);
    // Within 10 s of the last re-read a failed signature re-reads nothing (a forger cannot
    // make the gateway call Secrets Manager on every request): a rotation now is only
    // seen by the schedule or after the rate limit.
    put_secret(&url, &secret, &secrets_json("third-token-89")).await;
    assert_eq!(webhook_signed(&env, "third-token-89", &sid(8)).await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_re_read_on_a_schedule() {
    let Some(url) = moto() else { return };
    init();
    let secret = unique("tenants/scheduled");
    create_secret(&url, &secret, &secrets_json("first-token")).await;
    let env = Env::start(EnvOptions {
        secret_refs: Some(secret_refs(&secret)),
        aws: options_for(&url),
        secrets_refresh_seconds: 1,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    put_secret(&url, &secret, &secrets_json("second-token")).await;
    let tenant = env.gw().state.tenants.by_name("demo").unwrap().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tenant.credentials().auth_token != "second-token" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not re-read within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metric(
            &env.metrics().await,
            "switchboard_secret_refreshes_total{result=\"changed\"}"
        ) >= 1.0
    );
    // No signature failure was needed: the first webhook with the new token passes.
    assert_eq!(webhook_signed(&env, "second-token", &sid(1)).await, 200);
    assert_eq!(
        metric(
            &env.metrics().await,
            "switchboard_signature_failures_total{route=\"voice\"}"
        ),
        0.0
    );
}

/// Reads `GET /api/v1/calls/{sid}` with the tenant's API key; status and body.
async fn api_get(env: &Env, call_sid: &str) -> (u16, String) {
    let resp = switchboard_sim::caller::http_client()
        .unwrap()
        .get(format!("{}/api/v1/calls/{call_sid}", env.base))
        .bearer_auth(switchboard_tests::API_KEY)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn encrypted_env(url: &str, aws_url: &str, db: &str, seal_retry: u64) -> Env {
    let key = create_key(url).await;
    Env::start(EnvOptions {
        database_url: Some(db.to_string()),
        aws: options_for(aws_url),
        spec_extra: format!("  encryption:\n    kmsKeyId: {key}\n"),
        seal_retry_seconds: seal_retry,
        ..EnvOptions::default()
    })
    .await
    .unwrap()
}

async fn transcript_rows(pool: &sqlx::PgPool, call_sid: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT text FROM transcript_entries WHERE call_sid = $1 ORDER BY seq")
        .bind(call_sid)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_are_ciphertext_in_postgres_and_plain_through_the_api() {
    let Some(url) = moto() else { return };
    let Some(db) = pg_url("enc") else { return };
    init();
    let env = encrypted_env(&url, &url, &db, 600).await;
    let report = place_call(&env.call(talk())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let call_sid = report.call_sid.clone();
    env.record(&call_sid).await.unwrap();

    // The API opens the record.
    let (status, body) = api_get(&env, &call_sid).await;
    assert_eq!(status, 200, "{body}");
    let rec: serde_json::Value = serde_json::from_str(&body).unwrap();
    let transcript = rec["transcript"].as_array().expect("a transcript");
    assert!(transcript.len() >= 2, "{rec:#}");
    assert!(
        !body.contains("data_key"),
        "the wrapped key is not part of the answer"
    );
    for t in transcript {
        let text = t["text"].as_str().unwrap_or_default();
        assert!(!text.is_empty() && !text.starts_with("sb1:"), "{t}");
    }

    // The table holds ciphertext only, and the wrapped key.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let stored = transcript_rows(&pool, &call_sid).await;
    assert_eq!(stored.len(), transcript.len());
    for (cipher, clear) in stored.iter().zip(transcript) {
        let clear = clear["text"].as_str().unwrap_or_default();
        assert!(cipher.starts_with("sb1:"), "{cipher}");
        assert!(!cipher.contains(clear), "{cipher}");
    }
    let data_key: Option<String> =
        sqlx::query_scalar("SELECT data_key FROM calls WHERE call_sid = $1")
            .bind(&call_sid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(data_key.is_some());

    // The same row under another CallSid: KMS refuses the key for that context.
    let moved = sid(0xdead);
    sqlx::query(
        "INSERT INTO calls (call_sid, tenant, outcome, data_key) \
         SELECT $2, tenant, outcome, data_key FROM calls WHERE call_sid = $1",
    )
    .bind(&call_sid)
    .bind(&moved)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO transcript_entries (call_sid, seq, role, text, start_ms, end_ms, interrupted, heard_ms) \
         SELECT $2, seq, role, text, start_ms, end_ms, interrupted, heard_ms FROM transcript_entries WHERE call_sid = $1",
    )
    .bind(&call_sid)
    .bind(&moved)
    .execute(&pool)
    .await
    .unwrap();
    let (status, body) = api_get(&env, &moved).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("cannot be decrypted"), "{body}");

    // Two entries of the real call swapped: each fails its tag.
    sqlx::query(
        "UPDATE transcript_entries SET text = CASE seq WHEN 0 THEN $2 ELSE $3 END \
         WHERE call_sid = $1 AND seq IN (0, 1)",
    )
    .bind(&call_sid)
    .bind(&stored[1])
    .bind(&stored[0])
    .execute(&pool)
    .await
    .unwrap();
    let (status, body) = api_get(&env, &call_sid).await;
    assert_eq!(status, 500, "{body}");
    assert!(!body.contains("sb1:"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_down_at_the_end_of_a_call_keeps_plaintext_out_of_the_database() {
    let Some(url) = moto() else { return };
    let Some(db) = pg_url("kmsdown") else { return };
    init();
    let target = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let proxy = Proxy::start(target).await.unwrap();
    // KMS unreachable since the gateway started: it holds no reserve key, so the record
    // can only wait in memory.
    proxy.cut();
    let env = encrypted_env(&url, &format!("http://{}", proxy.addr), &db, 600).await;
    let report = place_call(&env.call(talk())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let call_sid = report.call_sid.clone();

    // The call is over and KMS unreachable: the start row is there, nothing of what was
    // said is, in the database or in the spool.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(
        &env.metrics().await,
        "switchboard_record_seal_failures_total{result=\"retrying\"}",
    ) < 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sealing never failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(transcript_rows(&pool, &call_sid).await.is_empty());
    let outcome: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM calls WHERE call_sid = $1")
            .bind(&call_sid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(outcome, None, "no end record before it is sealed");
    let spool = env.data_dir().join("spool");
    if let Ok(entries) = std::fs::read_dir(&spool) {
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            assert!(
                !text.contains("\"transcript\":[{"),
                "clear transcript spooled: {text}"
            );
        }
    }

    // KMS back: the record is sealed from memory and arrives, readable.
    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = transcript_rows(&pool, &call_sid).await;
        if !rows.is_empty() {
            assert!(rows.iter().all(|t| t.starts_with("sb1:")), "{rows:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sealed record never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = api_get(&env, &call_sid).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("sb1:"), "{body}");
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_waiting_for_kms_survives_a_restart_and_is_never_plaintext_at_rest() {
    let Some(url) = moto() else { return };
    let Some(db) = pg_url("kmsrestart") else {
        return;
    };
    init();
    let target = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let proxy = Proxy::start(target).await.unwrap();
    let mut env = encrypted_env(&url, &format!("http://{}", proxy.addr), &db, 600).await;
    let tenant = env.gw().state.tenants.all().next().unwrap().clone();
    let key_id = tenant.spec.encryption.as_ref().unwrap().kms_key_id.clone();
    // KMS answers at start: the gateway fetches the tenant's reserve key.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !env.gw().state.sealing.reserves.ready(&tenant.name, &key_id) {
        assert!(tokio::time::Instant::now() < deadline, "no reserve key");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // KMS goes away; a call ends: its record is sealed under the reserve key and waits
    // on disk.
    proxy.cut();
    let report = place_call(&env.call(talk())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let call_sid = report.call_sid.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metric(&env.metrics().await, "switchboard_records_awaiting_kms") < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing waits on disk"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pending = env
        .data_dir()
        .join("sealing")
        .join(format!("{call_sid}.json"));
    let text = std::fs::read_to_string(&pending).unwrap();
    assert!(!text.contains("\"data_key\""), "no call key yet: {text}");
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    assert!(transcript_rows(&pool, &call_sid).await.is_empty());

    // The gateway restarts while KMS is still down: the record is still only on disk,
    // sealed.
    env.stop_gateway().await;
    assert!(
        pending.exists(),
        "the pending record must outlive the gateway"
    );
    env.gateway = Some(Gateway::start(&env.cli).await.unwrap());
    env.base = format!("http://{}", env.gw().addr);
    assert_eq!(
        metric(&env.metrics().await, "switchboard_records_awaiting_kms"),
        1.0
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(transcript_rows(&pool, &call_sid).await.is_empty());

    // KMS is back: the key is re-wrapped for the call, the record arrives sealed, the
    // file goes, and the API opens it.
    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows = transcript_rows(&pool, &call_sid).await;
        if !rows.is_empty() {
            assert!(rows.iter().all(|t| t.starts_with("sb1:")), "{rows:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sealed record never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pending.exists() {
        assert!(tokio::time::Instant::now() < deadline, "the file stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = api_get(&env, &call_sid).await;
    assert_eq!(status, 200, "{body}");
    let rec: serde_json::Value = serde_json::from_str(&body).unwrap();
    let said: Vec<String> = rec["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["text"].as_str().map(str::to_string))
        .filter(|t| t.len() >= 8)
        .collect();
    assert!(!said.is_empty(), "{body}");

    // Nothing of what was said is readable anywhere under the data directory (spool,
    // sealing directory, recordings) or in the database.
    env.stop_gateway().await;
    for path in files_under(&env.data_dir()) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for s in &said {
            assert!(!text.contains(s.as_str()), "{} holds {s:?}", path.display());
        }
    }
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT text FROM transcript_entries WHERE call_sid = $1 UNION ALL SELECT COALESCE(detail, '') FROM calls WHERE call_sid = $1",
    )
    .bind(&call_sid)
    .fetch_all(&pool)
    .await
    .unwrap();
    for s in &said {
        assert!(
            stored.iter().all(|v| !v.contains(s.as_str())),
            "{s:?} in the database"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reads_its_database_admin_url_from_secrets_manager() {
    use clap::Parser;
    use switchboard_operator::cli::{Cli, Command};
    use switchboard_operator::database::Provisioner;

    let Some(url) = moto() else { return };
    let Some(admin) = switchboard_tests::services::postgres() else {
        return;
    };
    init();
    let secret = unique("switchboard/operator");
    create_secret(
        &url,
        &secret,
        &serde_json::json!({ "adminUrl": admin, "note": "rds" }).to_string(),
    )
    .await;
    let cli = Cli::try_parse_from([
        "operator",
        "run",
        "--database-admin-url-secret-id",
        &secret,
        "--database-admin-url-secret-key",
        "adminUrl",
    ])
    .unwrap();
    let Command::Run(args) = cli.command else {
        panic!("run expected")
    };
    let mut config = args.config();
    assert_eq!(config.database_admin_url, None);
    config.aws = options_for(&url);
    config.resolve_database_admin_url().await.unwrap();
    assert_eq!(config.database_admin_url.as_deref(), Some(admin.as_str()));
    // The URL read is the one the provisioner works with.
    let provisioner = Provisioner::new(config.database_admin_url.as_deref().unwrap()).unwrap();
    provisioner.ping().await.unwrap();
    provisioner.close().await;

    // A field that is not there: a clear error naming the secret, never its content.
    config.database_admin_url = None;
    config.database_admin_secret.as_mut().unwrap().key = Some("missing".into());
    let err = config
        .resolve_database_admin_url()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&secret) && err.contains("missing"), "{err}");
    assert!(!err.contains(&admin), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knowledge_base_reads_its_embedder_and_pinecone_keys_from_secrets_manager() {
    use ::kube::api::{Api, PostParams};
    use switchboard_crds::{KnowledgeBase, VoiceTenant};
    use switchboard_operator::knowledge::access::{SecretsAccess, parse_secret_grant};
    use switchboard_operator::knowledge::{
        Cleanup, Decision, Engine, EngineConfig, KubeKnowledgeApi, Outcome, SecretsManagerSettings,
        cleanup, sync,
    };
    use switchboard_tests::knowledge::{serve_embeddings, tenant_manifest};
    const NS: &str = "kb-test";

    let Some(url) = moto() else { return };
    init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pinecone = switchboard_sim::pinecone::PineconeSim::start(
        switchboard_sim::pinecone::PineconeSimConfig::default(),
    )
    .await
    .unwrap();
    let embed_key = "sk-embedder-from-secrets-manager";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let embed_url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(serve_embeddings(listener, Some(embed_key.to_string())));

    // One JSON secret holds both keys, under the path granted to the namespace.
    let secret_id = unique(&format!("switchboard/{NS}/kb"));
    create_secret(
        &url,
        &secret_id,
        &serde_json::json!({ "pinecone": pinecone.api_key(), "embedder": embed_key }).to_string(),
    )
    .await;

    let sim = switchboard_sim::kubeapi::KubeApiSim::start().await.unwrap();
    let c = switchboard_tests::kube::client(&sim).await;
    let tenant = unique("t");
    Api::<VoiceTenant>::namespaced(c.clone(), NS)
        .create(&PostParams::default(), &tenant_manifest(NS, &tenant))
        .await
        .unwrap();
    let kb: KnowledgeBase = switchboard_crds::parse_knowledge_base(&format!(
        r#"apiVersion: voice.switchboard.dev/v1alpha1
kind: KnowledgeBase
metadata:
  name: faq
  namespace: {NS}
spec:
  tenant: {tenant}
  embedder:
    type: openai
    openai:
      baseUrl: {embed_url}
      model: test-embed
      dimensions: 384
      apiKey: {{ awsSecretsManager: {{ secretId: {secret_id}, key: embedder }} }}
  backend:
    type: pinecone
    pinecone:
      index: kb-aws
      cloud: aws
      region: us-east-1
      namespace: acme-faq
      apiUrl: {pinecone_url}
      apiKey: {{ awsSecretsManager: {{ secretId: {secret_id}, key: pinecone }} }}
  sources:
    - inline:
        documents:
          - title: Opening hours
            content: We are open Monday to Friday 8am to 6pm and Saturday 9am to 1pm.
          - title: Parking
            content: Free parking behind the building.
"#,
        pinecone_url = pinecone.url(),
    ))
    .unwrap();
    let kb = Api::<KnowledgeBase>::namespaced(c.clone(), NS)
        .create(&PostParams::default(), &kb)
        .await
        .unwrap();
    let api = KubeKnowledgeApi::new(c.clone());
    let engine_with = |grants: &[&str]| {
        Engine::new(EngineConfig {
            model_dir: None,
            embed_concurrency: 1,
            openai_retries: Some(0),
        })
        .with_secrets_manager(SecretsManagerSettings {
            access: SecretsAccess::new(grants.iter().map(|g| parse_secret_grant(g).unwrap())),
            aws: options_for(&url),
        })
        .with_endpoints(switchboard_tests::knowledge::loopback_endpoints())
    };

    // Not granted to the namespace (only another namespace's path is): refused before
    // anything is read, with the reason and the flag that grants it.
    let refused = engine_with(&[&format!("other=switchboard/{NS}/")]);
    let Decision::Report(Outcome::Failed(f)) = sync(&kb, &api, &refused).await else {
        panic!("an ungranted secret must fail the sync")
    };
    assert_eq!(f.reason, "SecretNotGranted", "{f:?}");
    assert!(f.message.contains("--secrets-manager-allow"), "{f:?}");

    // A field that is not in the secret: a clear reason, never the secret's content.
    let mut wrong_field = kb.clone();
    if let Some(o) = wrong_field.spec.embedder.openai.as_mut() {
        o.api_key.aws_secrets_manager.as_mut().unwrap().key = Some("missing".into());
    }
    let engine = engine_with(&[&format!("{NS}=switchboard/{NS}/")]);
    let Decision::Report(Outcome::Failed(f)) = sync(&wrong_field, &api, &engine).await else {
        panic!("a missing field must fail the sync")
    };
    assert_eq!(f.reason, "SecretMissing", "{f:?}");
    assert!(
        f.message.contains("missing") && !f.message.contains(embed_key),
        "{f:?}"
    );

    // Granted: both keys come from Secrets Manager; the embedder (which answers 401 to
    // any other key) and Pinecone (likewise) accept them, and the namespace fills.
    let Decision::Report(Outcome::Synced { chunks, .. }) = sync(&kb, &api, &engine).await else {
        panic!("the knowledge base should sync with keys from Secrets Manager")
    };
    assert!(chunks >= 2, "{chunks}");
    let mut config =
        switchboard_knowledge::store::PineconeConfig::new(pinecone.api_key(), "kb-aws");
    config.control_url = pinecone.url();
    let store = switchboard_knowledge::store::PineconeStore::connect(config)
        .await
        .unwrap();
    let count = |stats: switchboard_knowledge::store::pinecone::IndexStats| {
        stats.namespaces.get("acme-faq").copied().unwrap_or(0)
    };
    assert_eq!(count(store.stats().await.unwrap()), u64::from(chunks));

    // The finalizer's cleanup reads the Pinecone key the same way (policy Delete).
    assert_eq!(cleanup(&kb, &api, &engine).await.unwrap(), Cleanup::Removed);
    assert_eq!(count(store.stats().await.unwrap()), 0);
}

/// Rotation of the call store's URL in Secrets Manager, the "alternating users" way RDS
/// rotates: a second role with the same grants, the URL switched to it, the first role's
/// login revoked and its sessions ended. The next call's record must land through the
/// new role without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_database_url_carries_the_next_calls_record_without_a_restart() {
    let Some(url) = moto() else { return };
    let Some(admin) = switchboard_tests::services::postgres() else {
        return;
    };
    init();
    let n = unique("r").replace('-', "_");
    let n = &n[n.len() - 10..];
    let (schema, role_a, role_b) = (
        format!("t_rot_{n}"),
        format!("rot_a_{n}"),
        format!("rot_b_{n}"),
    );
    let with_path = |u: &str| format!("{u}?options=-c%20search_path%3D{schema}");
    let as_role = |role: &str| {
        let rest = admin.split_once('@').unwrap().1;
        with_path(&format!("postgres://{role}:pw-{role}@{rest}"))
    };
    // The schema and its tables as the operator provisions them (here: as the admin),
    // both roles granted what a tenant's role has.
    let store = switchboard_store::postgres::PgStore::open(&with_path(&admin))
        .await
        .unwrap();
    let pool = store.pool().clone();
    for sql in [
        format!("CREATE ROLE {role_a} LOGIN PASSWORD 'pw-{role_a}'"),
        format!("CREATE ROLE {role_b} LOGIN PASSWORD 'pw-{role_b}'"),
        format!("GRANT USAGE, CREATE ON SCHEMA {schema} TO {role_a}, {role_b}"),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {role_a}, {role_b}"),
        format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {role_a}, {role_b}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    let secret = unique("tenants/db");
    create_secret(&url, &secret, &as_role(&role_a)).await;
    let mut env = Env::start(EnvOptions {
        aws: options_for(&url),
        secrets_refresh_seconds: 1,
        spec_extra: format!(
            "  database:\n    url: {{ awsSecretsManager: {{ secretId: {secret} }} }}\n"
        ),
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let landed = |sid: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT outcome FROM calls WHERE call_sid = $1 AND outcome IS NOT NULL",
            )
            .bind(sid)
            .fetch_optional(&pool)
            .await
            .unwrap()
        }
    };
    let report = place_call(&env.call(talk())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    env.record(&report.call_sid).await.unwrap();
    assert!(landed(report.call_sid.clone()).await.is_some());

    // Rotated: the secret names role B; role A can no longer log in, its sessions end.
    put_secret(&url, &secret, &as_role(&role_b)).await;
    for sql in [
        format!("ALTER ROLE {role_a} NOLOGIN"),
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role_a}'"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    let report = place_call(&env.call(talk())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while landed(report.call_sid.clone()).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record of the call after the rotation did not land within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Through role B: the gateway's connections are B's now.
    let sessions: Vec<String> =
        sqlx::query_scalar("SELECT usename::text FROM pg_stat_activity WHERE usename = ANY($1)")
            .bind(vec![role_a.clone(), role_b.clone()])
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(sessions.contains(&role_b), "{sessions:?}");
    assert!(!sessions.contains(&role_a), "{sessions:?}");
    assert!(
        metric(
            &env.metrics().await,
            "switchboard_secret_refreshes_total{result=\"changed\"}"
        ) >= 1.0
    );
    // Roles are server-wide: leave none behind.
    env.stop_gateway().await;
    drop(store);
    for sql in [
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN ('{role_a}', '{role_b}')"
        ),
        format!("DROP SCHEMA {schema} CASCADE"),
        format!("DROP OWNED BY {role_a}, {role_b}"),
        format!("DROP ROLE {role_a}, {role_b}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
}

/// The embedder's and Pinecone's keys rotated at the provider and in Secrets Manager: the
/// gateway's next knowledge lookup sends the new ones, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_embedder_and_pinecone_keys_serve_the_next_lookup() {
    use switchboard_knowledge::store::{PineconeConfig, PineconeStore};
    use switchboard_knowledge::{ChunkingConfig, Document, OpenAiConfig, OpenAiEmbedder};
    use switchboard_tests::knowledge::{EmbedKey, serve_embeddings_with};

    let Some(url) = moto() else { return };
    init();
    let pinecone = switchboard_sim::pinecone::PineconeSim::start(
        switchboard_sim::pinecone::PineconeSimConfig::default(),
    )
    .await
    .unwrap();
    let embed_key: EmbedKey = std::sync::Arc::new(std::sync::Mutex::new(Some("sk-embed-1".into())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let embed_url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(serve_embeddings_with(listener, embed_key.clone()));

    // The namespace as the operator leaves it after indexing.
    let mut embed_config = OpenAiConfig::new(embed_url.clone(), "test-embed");
    embed_config.api_key = Some("sk-embed-1".into());
    embed_config.dimensions = Some(384);
    let embedder = OpenAiEmbedder::new(embed_config).unwrap();
    let mut config = PineconeConfig::new(pinecone.api_key(), "kb-rot");
    config.control_url = pinecone.url();
    let store = PineconeStore::ensure_index(config, 384).await.unwrap();
    let docs = [Document {
        id: "inline/hours".into(),
        title: "Opening hours".into(),
        content: "We are open Monday to Friday 8am to 6pm.".into(),
        category: None,
    }];
    switchboard_knowledge::ingest(
        "faq-ns",
        &docs,
        &ChunkingConfig::default(),
        &embedder,
        &store,
    )
    .await
    .unwrap();

    let secret = unique("kb/keys");
    let keys = |embedder: &str, pinecone: &str| {
        serde_json::json!({ "embedder": embedder, "pinecone": pinecone }).to_string()
    };
    create_secret(&url, &secret, &keys("sk-embed-1", &pinecone.api_key())).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("faq.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"apiVersion: voice.switchboard.dev/v1alpha1
kind: KnowledgeBase
metadata:
  name: faq
spec:
  tenant: demo
  embedder:
    type: openai
    openai:
      baseUrl: {embed_url}
      model: test-embed
      dimensions: 384
      apiKey: {{ awsSecretsManager: {{ secretId: {secret}, key: embedder }} }}
  backend:
    type: pinecone
    pinecone:
      index: kb-rot
      cloud: aws
      region: us-east-1
      namespace: faq-ns
      apiUrl: {pinecone_url}
      apiKey: {{ awsSecretsManager: {{ secretId: {secret}, key: pinecone }} }}
  sources:
    - inline:
        documents:
          - title: Opening hours
            content: We are open Monday to Friday 8am to 6pm.
"#,
            pinecone_url = pinecone.url(),
        ),
    )
    .unwrap();
    let env = Env::start(EnvOptions {
        aws: options_for(&url),
        secrets_refresh_seconds: 1,
        agent_extra: "    knowledgeBases: [faq]\n".into(),
        knowledge: vec![manifest],
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let spec = env.gw().state.tenants.by_name("demo").unwrap().spec.clone();
    let lookup = || {
        env.gw().state.tools.run(
            "demo",
            &spec,
            "search_knowledge_base",
            r#"{"query":"when are you open"}"#,
        )
    };
    let answered = |out: &str| {
        let v: serde_json::Value = serde_json::from_str(out).unwrap();
        v.get("error").is_none() && v.get("passages").is_some()
    };
    let out = lookup().await;
    assert!(answered(&out), "{out}");

    // Both providers switch to new keys (the old ones are refused from now on); until
    // Secrets Manager has them too, lookups fail.
    *embed_key.lock().unwrap() = Some("sk-embed-2".into());
    pinecone.rotate_api_key("pcsk-rotated");
    let out = lookup().await;
    assert!(!answered(&out), "{out}");
    put_secret(&url, &secret, &keys("sk-embed-2", "pcsk-rotated")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let out = lookup().await;
        if answered(&out) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lookups still fail 15 s after the keys were rotated: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
