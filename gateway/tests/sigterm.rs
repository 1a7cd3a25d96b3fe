//! SIGTERM to the real `gateway` binary during live calls: readiness drops at once, no
//! call is cut, the process exits cleanly once they end, and every record is kept.
#![allow(clippy::unwrap_used)] // test helper outside #[test]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use switchboard_sim::caller::{CallConfig, SignatureMode, Step, place_call};
use switchboard_sim::realtime::{RealtimeConfig, RealtimeSim};

mod support;
use support::{ACCOUNT, free_port, gateway, tenant_manifest, wait_ready};

const TOKEN: &str = "sigterm-test-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_live_calls_cuts_none() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let sim = RealtimeSim::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        RealtimeConfig::default(),
    )
    .await
    .unwrap();
    let tenant = tenant_manifest(dir.path(), "    greeting:\n      text: Hello there.\n", "");
    let port = free_port();
    let data = dir.path().join("data");
    let mut child = gateway(&tenant, port, &sim.url(), &data, TOKEN)
        .args(["--drain-min-seconds", "1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    assert!(wait_ready(&base).await, "gateway did not become ready");
    let http = switchboard_sim::caller::http_client().unwrap();

    let mut calls = Vec::new();
    for _ in 0..3 {
        let cfg = CallConfig {
            gateway: base.clone(),
            account_sid: ACCOUNT.into(),
            auth_token: TOKEN.into(),
            script: vec![
                Step::WaitAgentDone {
                    quiet_ms: 300,
                    timeout_ms: 10_000,
                },
                Step::Say { ms: 800 },
                Step::Silence { ms: 2500 },
                Step::Hangup,
            ],
            signature: SignatureMode::Valid,
            ..CallConfig::default()
        };
        calls.push(tokio::spawn(async move { place_call(&cfg).await }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "readiness drops at once");

    let mut sids = Vec::new();
    for c in calls {
        let r = c.await.unwrap().unwrap();
        assert!(r.is_clean() && !r.ended_by_gateway, "call was cut: {r:#?}");
        sids.push(r.call_sid);
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "gateway exit status {status:?}");

    let store =
        switchboard_store::open(&format!("sqlite:{}", data.join("switchboard.db").display()))
            .await
            .unwrap();
    for sid in sids {
        let rec = store.get_call(&sid).await.unwrap().expect("record kept");
        assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
    }
}

/// With no call at all, SIGTERM still leaves the server answering for
/// `--drain-min-seconds` with readiness false (load balancers are still sending here
/// until the endpoint removal reaches them); then the process exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_without_calls_keeps_serving_for_the_minimum_window() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant_manifest(dir.path(), "", "");
    let port = free_port();
    let mut child = gateway(
        &tenant,
        port,
        "ws://127.0.0.1:1/v1/realtime",
        &dir.path().join("data"),
        TOKEN,
    )
    .args(["--drain-min-seconds", "3"])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    assert!(wait_ready(&base).await, "gateway did not become ready");
    let http = switchboard_sim::caller::http_client().unwrap();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Before: the process exited at once and these requests found nothing listening.
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "readiness is false during the window");
    let live = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200, "the server still answers");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "gateway exit status {status:?}");
}
