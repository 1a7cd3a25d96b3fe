//! Pre-connecting to OpenAI on the webhook: adopted by the stream, or closed when no
//! stream comes.

use std::time::Duration;

use switchboard_sim::caller::{Step, new_sid, place_call};
use switchboard_tests::{Env, EnvOptions, metric};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_session_nobody_adopts_is_closed_after_its_ttl() {
    let env = Env::start(EnvOptions {
        preconnect_ttl_seconds: 1,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let (status, _) = env.webhook(&new_sid("CA")).await.unwrap();
    assert_eq!(status, 200);
    // The webhook opened a session right away…
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.realtime.sessions().len(), 1);
    // …and with no stream it is closed after the TTL.
    assert!(
        env.realtime
            .wait_sessions_closed(1, Duration::from_secs(5))
            .await
    );
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "switchboard_preconnect_total{result=\"expired\"}"),
        1.0
    );
    assert_eq!(env.gw().state.parking.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_preconnect_the_stream_connects_fresh() {
    let env = Env::start(EnvOptions {
        no_preconnect: true,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let report = place_call(&env.call(vec![
        Step::WaitAgentDone {
            quiet_ms: 300,
            timeout_ms: 10_000,
        },
        Step::Hangup,
    ]))
    .await
    .unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert!(!report.turns.is_empty());
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "switchboard_preconnect_total{result=\"fresh\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "switchboard_preconnect_total{result=\"adopted\"}"),
        0.0
    );
}
