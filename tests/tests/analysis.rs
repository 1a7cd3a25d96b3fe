//! Post-call analysis over real sockets: a simulated call, a gateway whose tenant declares
//! `spec.analysis` against the Chat Completions simulator, the SQLite store, and the
//! admin API. The analysis appears on the call with the sentiment, summary and fields the
//! simulator derives from the transcript; a failing endpoint is retried; a call shorter
//! than `minTurns` gets none; an analysis cut short by a gateway stop runs after the next
//! start, once, even when two pods start together.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::header::AUTHORIZATION;
use serde_json::Value;
use switchboard_gateway::server::Gateway;
use switchboard_sim::caller::{Step, one_question, place_call};
use switchboard_sim::chat::{ChatSim, ChatSimConfig};
use switchboard_sim::realtime::{RealtimeConfig, Turn};
use switchboard_tests::{API_KEY, Env, EnvOptions, OPENAI_KEY_REF, metric};

const CALLER: &str =
    "Hi, my name is Ada Lovelace. I want to book a cleaning for 2 people, thanks, great!";

async fn chat_sim() -> ChatSim {
    ChatSim::start(ChatSimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        // The analysis names the tenant's OpenAI key (the harness's file) as its own:
        // lent implicitly it would go only to OpenAI's host, not to a simulator.
        api_key: "sk-test-e2e".into(),
    })
    .await
    .unwrap()
}

fn options(sim: &ChatSim, min_turns: u32) -> EnvOptions {
    EnvOptions {
        realtime: RealtimeConfig {
            script: vec![Turn::say(CALLER, "Of course, see you on Monday at nine.")],
            ..RealtimeConfig::default()
        },
        spec_extra: format!(
            "  analysis:
    model: gpt-4o-mini
    baseUrl: {base}
    apiKey: {key}
    successRubric: The caller booked an appointment.
    minTurns: {min_turns}
    fields:
      - name: name
        type: string
        description: The caller's name.
      - name: partySize
        type: number
        description: How many people the booking is for.
      - name: intent
        type: enum
        description: What the caller wanted.
        choices: [cleaning, emergency]
      - name: insured
        type: boolean
        description: Whether the caller said they are insured.
",
            base = sim.base_url(),
            key = OPENAI_KEY_REF,
        ),
        ..EnvOptions::default()
    }
}

fn script() -> Vec<Step> {
    one_question(1200)
}

async fn api(env: &Env, path: &str) -> Value {
    let body = reqwest::Client::new()
        .get(format!("{}{path}", env.base))
        .header(AUTHORIZATION, format!("Bearer {API_KEY}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

async fn call_json(env: &Env, sid: &str) -> Value {
    api(env, &format!("/api/v1/calls/{sid}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analysis_of_a_call_is_retried_stored_and_served() {
    let sim = chat_sim().await;
    // The endpoint fails twice: the gateway backs off and the third attempt answers.
    sim.fail_next(2, 500);
    let env = Env::start(options(&sim, 2)).await.unwrap();
    let report = place_call(&env.call(script())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let sid = report.call_sid.clone();
    let rec = env.record(&sid).await.unwrap();
    assert!(rec.transcript.len() >= 2, "{rec:#?}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let call = loop {
        let call = call_json(&env, &sid).await;
        if !call["analysis"]["document"].is_null() {
            break call;
        }
        assert!(Instant::now() < deadline, "no analysis: {call}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let a = &call["analysis"];
    assert_eq!(a["sentiment"], "positive", "{a}");
    assert_eq!(a["success"], true, "{a}");
    assert_eq!(a["summary"], CALLER, "{a}");
    assert_eq!(a["model"], "gpt-4o-mini", "{a}");
    assert_eq!(a["fields"]["name"], "Ada Lovelace", "{a}");
    assert_eq!(a["fields"]["partySize"], 2.0, "{a}");
    assert_eq!(a["fields"]["intent"], "cleaning", "{a}");
    assert_eq!(a["fields"]["insured"], false, "{a}");
    // The list filters on the stored sentiment.
    let list = api(&env, "/api/v1/calls?sentiment=positive").await;
    assert_eq!(list["calls"].as_array().unwrap().len(), 1, "{list}");

    // Three requests (two failed), each the strict structured-output request.
    let requests = sim.requests();
    assert_eq!(requests.len(), 3);
    let req = &requests[2];
    assert_eq!(req["model"], "gpt-4o-mini");
    assert_eq!(req["response_format"]["type"], "json_schema");
    assert_eq!(req["response_format"]["json_schema"]["strict"], true);
    let transcript = req["messages"][1]["content"].as_str().unwrap();
    assert!(
        transcript.contains(&format!("Caller: {CALLER}")),
        "{transcript}"
    );
    assert!(
        req["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("The caller booked an appointment."),
        "{req}"
    );

    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"switchboard_analyses_total{result="stored",tenant="demo"}"#
        ),
        1.0,
        "{m}"
    );
    assert!(metric(&m, r#"switchboard_analysis_seconds_count{tenant="demo"}"#) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_shorter_than_min_turns_is_not_analysed() {
    let sim = chat_sim().await;
    let env = Env::start(options(&sim, 50)).await.unwrap();
    let report = place_call(&env.call(script())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let sid = report.call_sid.clone();
    env.record(&sid).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = env.metrics().await;
        if metric(
            &m,
            r#"switchboard_analyses_total{result="skipped",tenant="demo"}"#,
        ) == 1.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "not counted as skipped: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let call = call_json(&env, &sid).await;
    assert!(call["analysis"]["document"].is_null(), "{call}");
    assert!(call["analysis"]["sentiment"].is_null(), "{call}");
    assert!(sim.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypting_tenants_analysis_is_ciphertext_in_postgres_and_plain_through_the_api() {
    // moto's server: KMS with encryption contexts enforced.
    let Some(aws_url) = switchboard_tests::services::aws() else {
        return;
    };
    let Some(db) = switchboard_tests::pg_url("analysis_enc") else {
        return;
    };
    switchboard_tests::init();
    let aws = switchboard_tests::services::aws_options(&aws_url);
    let key = aws_sdk_kms::Client::new(&switchboard_aws::load_config(&aws).await)
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let sim = chat_sim().await;
    let mut opts = options(&sim, 2);
    opts.spec_extra
        .push_str(&format!("  encryption:\n    kmsKeyId: {key}\n"));
    opts.database_url = Some(db.clone());
    opts.aws = aws;
    let env = Env::start(opts).await.unwrap();
    let report = place_call(&env.call(script())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let sid = report.call_sid.clone();
    env.record(&sid).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let call = loop {
        let call = call_json(&env, &sid).await;
        if !call["analysis"]["document"].is_null() {
            break call;
        }
        assert!(Instant::now() < deadline, "no analysis: {call}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(call["analysis"]["summary"], CALLER, "{call}");
    assert_eq!(call["analysis"]["fields"]["name"], "Ada Lovelace", "{call}");

    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let (stored, sentiment): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT analysis, analysis_sentiment FROM calls WHERE call_sid = $1")
            .bind(&sid)
            .fetch_one(&pool)
            .await
            .unwrap();
    let stored = stored.unwrap();
    assert!(stored.starts_with("sb1:"), "{stored}");
    assert!(!stored.contains("Ada"), "{stored}");
    // Sentiment stays clear: the list filters on it.
    assert_eq!(sentiment.as_deref(), Some("positive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_not_retried_and_stores_nothing() {
    let sim = chat_sim().await;
    // A 4xx other than 429 is the request's fault: retrying cannot fix it.
    sim.fail_next(1, 400);
    let env = Env::start(options(&sim, 2)).await.unwrap();
    let report = place_call(&env.call(script())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let sid = report.call_sid.clone();
    env.record(&sid).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = env.metrics().await;
        if metric(
            &m,
            r#"switchboard_analysis_failures_total{reason="refused",tenant="demo"}"#,
        ) == 1.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "no refused failure counted: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sim.requests().len(), 1);
    let call = call_json(&env, &sid).await;
    assert!(call["analysis"]["document"].is_null(), "{call}");
}

/// The tenant's OpenAI key is lent to the analysis only for OpenAI's own host: a manifest
/// whose analysis points elsewhere without a key of its own does not start (on a laptop
/// too), and nothing is sent; naming the key explicitly is what makes it start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_key_is_not_lent_to_another_analysis_host() {
    let sim = chat_sim().await;
    let mut opts = options(&sim, 2);
    opts.spec_extra = opts
        .spec_extra
        .replace(&format!("    apiKey: {OPENAI_KEY_REF}\n"), "");
    assert!(!opts.spec_extra.contains("apiKey"), "{}", opts.spec_extra);
    let err = match Env::start(opts).await {
        Ok(_) => panic!(
            "a gateway started with the OpenAI key lent to {}",
            sim.base_url()
        ),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("spec.analysis.apiKey"), "{err}");
    assert!(err.contains(&sim.base_url()), "{err}");
    assert!(sim.requests().is_empty());
}

/// Waits (30 s at most) until the call's analysis is on its record, read through `base`.
async fn analysed(base: &str, sid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = reqwest::Client::new()
            .get(format!("{base}/api/v1/calls/{sid}"))
            .header(AUTHORIZATION, format!("Bearer {API_KEY}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let call: Value = serde_json::from_str(&body).unwrap();
        if !call["analysis"]["document"].is_null() {
            return call;
        }
        assert!(Instant::now() < deadline, "no analysis: {call}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A call ends while the analysis endpoint is down; the gateway stops before it answers.
/// Nothing is lost: the next gateway to start finds the call still waiting for its
/// analysis and runs it once the endpoint is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_cut_short_by_a_gateway_stop_runs_after_the_next_start() {
    let sim = chat_sim().await;
    // Every request fails: the gateway is still retrying when it is stopped.
    sim.fail_next(u32::MAX, 503);
    let mut env = Env::start(options(&sim, 2)).await.unwrap();
    let report = place_call(&env.call(script())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let sid = report.call_sid.clone();
    env.record(&sid).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while sim.requests().is_empty() {
        assert!(Instant::now() < deadline, "the analysis never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.stop_gateway().await;
    // A request sent just before the stop is logged by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tried = sim.requests().len();
    let stored = env.cli.store_url();
    let before = switchboard_store::open(&stored)
        .await
        .unwrap()
        .get_call(&sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.analysis.document, None, "{before:#?}");

    // The endpoint is back; a new gateway starts on the same store.
    sim.fail_next(0, 200);
    env.gateway = Some(Gateway::start(&env.cli).await.unwrap());
    let base = format!("http://{}", env.gw().addr);
    let call = analysed(&base, &sid).await;
    let a = &call["analysis"];
    assert_eq!(a["summary"], CALLER, "{a}");
    assert_eq!(a["fields"]["name"], "Ada Lovelace", "{a}");
    assert_eq!(a["sentiment"], "positive", "{a}");
    // One more request, the one that answered.
    assert_eq!(sim.requests().len(), tried + 1);
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"switchboard_analyses_total{result="stored",tenant="demo"}"#
        ),
        1.0,
        "{m}"
    );
}

/// Two gateway pods of one tenant start on the same Postgres store while a call still
/// waits for its analysis: both look for it at start, one claims it, the endpoint is
/// asked once and the analysis is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pods_starting_together_analyse_a_waiting_call_once() {
    let Some(db) = switchboard_tests::pg_url("analysis_pods") else {
        return;
    };
    let sim = chat_sim().await;
    sim.fail_next(u32::MAX, 503);
    let mut opts = options(&sim, 2);
    opts.database_url = Some(db);
    let mut env = Env::start(opts).await.unwrap();
    let report = place_call(&env.call(script())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let sid = report.call_sid.clone();
    env.record(&sid).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while sim.requests().is_empty() {
        assert!(Instant::now() < deadline, "the analysis never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.stop_gateway().await;
    // A request sent just before the stop is logged by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tried = sim.requests().len();

    sim.fail_next(0, 200);
    let (a, b) = tokio::join!(env.start_replica(|_| {}), env.start_replica(|_| {}));
    let (a, b) = (a.unwrap(), b.unwrap());
    let call = analysed(&a.base, &sid).await;
    assert_eq!(call["analysis"]["summary"], CALLER, "{call}");
    // Give the other pod's sweep every chance to run too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sim.requests().len(), tried + 1, "asked more than once");
    let stored = |m: &str| {
        metric(
            m,
            r#"switchboard_analyses_total{result="stored",tenant="demo"}"#,
        )
    };
    assert_eq!(stored(&a.metrics()) + stored(&b.metrics()), 1.0);
}
