//! When OpenAI fails or closes, the call ends cleanly: the caller is released and the
//! record says why.

use std::time::Duration;

use switchboard_sim::caller::{Step, place_call};
use switchboard_sim::realtime::RealtimeConfig;
use switchboard_tests::{Env, EnvOptions, metric};

fn long_call() -> Vec<Step> {
    vec![
        Step::WaitAgentDone {
            quiet_ms: 300,
            timeout_ms: 10_000,
        },
        Step::Silence { ms: 8_000 },
        Step::Hangup,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_and_close_end_the_call_with_a_record() {
    let env = Env::start(EnvOptions {
        realtime: RealtimeConfig {
            fail_after_ms: Some(3_000),
            ..RealtimeConfig::default()
        },
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let report = place_call(&env.call(long_call())).await.unwrap();
    assert!(report.ended_by_gateway, "{report:#?}");
    assert!(report.stream_ms < 6_000, "released promptly: {report:#?}");
    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("openai_error"), "{rec:#?}");
    assert!(!rec.transcript.is_empty(), "the greeting is kept");
    assert!(
        metric(
            &env.metrics().await,
            "switchboard_openai_errors_total{code=\"server_error\"}"
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_ends_the_call_with_its_code() {
    let env = Env::start(EnvOptions {
        realtime: RealtimeConfig {
            session_max_ms: Some(3_000),
            ..RealtimeConfig::default()
        },
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let report = place_call(&env.call(long_call())).await.unwrap();
    assert!(report.ended_by_gateway, "{report:#?}");
    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("openai_error"));
    assert_eq!(rec.detail.as_deref(), Some("session_expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_hangup_closes_the_openai_session_at_once() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let report = place_call(&env.call(vec![
        Step::WaitAgentDone {
            quiet_ms: 300,
            timeout_ms: 10_000,
        },
        Step::Hangup,
    ]))
    .await
    .unwrap();
    assert!(report.is_clean());
    assert!(
        env.realtime
            .wait_sessions_closed(1, Duration::from_millis(1500))
            .await,
        "Realtime session still open after hang-up"
    );
    let s = &env.realtime.sessions()[0];
    assert!(
        s.close_reason.as_deref().unwrap_or("").contains("client"),
        "{:?}",
        s.close_reason
    );
}
