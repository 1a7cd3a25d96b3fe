//! Records and transcripts in both stores, and nothing lost while the store is down.
#![allow(clippy::unwrap_used)] // shared assertion helpers outside #[test] fns

use std::time::Duration;

use switchboard_gateway::server::Gateway;
use switchboard_sim::caller::{Step, one_question, place_call};
use switchboard_sim::realtime::{RealtimeConfig, Turn};
use switchboard_store::{self as store, Role};
use switchboard_tests::{Env, EnvOptions, GREETING, Proxy, metric, pg_url, via};

const QUESTION: &str = "do you take new patients";
const ANSWER: &str = "Yes, we welcome new patients every weekday.";

fn options(database_url: Option<String>) -> EnvOptions {
    EnvOptions {
        realtime: RealtimeConfig {
            script: vec![Turn::say(QUESTION, ANSWER)],
            ..RealtimeConfig::default()
        },
        database_url,
        ..EnvOptions::default()
    }
}

fn conversation() -> Vec<Step> {
    one_question(1200)
}

async fn assert_full_record(env: &Env, call_sid: &str) {
    let rec = env.record(call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
    assert_eq!(rec.to.as_deref(), Some(switchboard_tests::NUMBER));
    let texts: Vec<(Role, &str)> = rec
        .transcript
        .iter()
        .map(|e| (e.role, e.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        vec![
            (Role::Agent, GREETING),
            (Role::Caller, QUESTION),
            (Role::Agent, ANSWER)
        ]
    );
    assert!(rec.usage.responses >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_calls_and_transcripts() {
    let env = Env::start(options(None)).await.unwrap();
    let report = place_call(&env.call(conversation())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_full_record(&env, &report.call_sid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_calls_and_transcripts() {
    let Some(url) = pg_url("e2e") else { return };
    let env = Env::start(options(Some(url.clone()))).await.unwrap();
    let report = place_call(&env.call(conversation())).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_full_record(&env, &report.call_sid).await;
    // Read through a separate connection: the rows are really in Postgres.
    let other = store::open(&url).await.unwrap();
    let rec = other.get_call(&report.call_sid).await.unwrap().unwrap();
    assert_eq!(rec.transcript.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_mid_call_loses_nothing_even_across_a_restart() {
    let Some(url) = pg_url("down") else { return };
    let target = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|h| h.rsplit('@').next())
        .unwrap()
        .to_string();
    let proxy = Proxy::start(target).await.unwrap();
    let mut env = Env::start(options(Some(via(&url, proxy.addr))))
        .await
        .unwrap();

    // The store goes away while the call is live; the call does not notice.
    let call = env.call(conversation());
    let running = tokio::spawn(async move { place_call(&call).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut();
    let report = running.await.unwrap().unwrap();
    assert!(report.is_clean(), "{report:#?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let spooled = metric(&env.metrics().await, "switchboard_store_spooled_records");
    assert!(
        spooled >= 1.0,
        "the call's end was spooled to disk, got {spooled}"
    );
    let direct = store::open(&url).await.unwrap();
    assert!(
        direct
            .get_call(&report.call_sid)
            .await
            .unwrap()
            .and_then(|r| r.outcome)
            .is_none()
    );

    // The gateway restarts while the store is still down; the spool survives.
    env.stop_gateway().await;
    proxy.restore();
    env.gateway = Some(Gateway::start(&env.cli).await.unwrap());
    assert_full_record(&env, &report.call_sid).await;
    let rec = direct.get_call(&report.call_sid).await.unwrap().unwrap();
    assert_eq!(rec.transcript.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_all_complete_with_full_records() {
    let env = Env::start(options(None)).await.unwrap();
    let mut calls = Vec::new();
    for i in 0..50u64 {
        let cfg = env.call(conversation());
        calls.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 20)).await;
            place_call(&cfg).await
        }));
    }
    let mut sids = Vec::new();
    for c in calls {
        let report = c.await.unwrap().unwrap();
        assert!(report.is_clean(), "{report:#?}");
        sids.push(report.call_sid);
    }
    for sid in &sids {
        assert_full_record(&env, sid).await;
    }
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "switchboard_calls_total{outcome=\"caller_hangup\"}"),
        50.0
    );
    assert_eq!(metric(&m, "switchboard_active_calls"), 0.0);
}
