//! A whole load run in-process: callers → the floor relay → the responder and back.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::floor::{Floor, FloorConfig};

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn config(gateway: String, realtime: SocketAddr, calls: usize) -> LoadConfig {
    LoadConfig {
        gateway,
        to: "+15005550006".into(),
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        auth_token: "bench-token".into(),
        realtime_listen: realtime,
        calls,
        duration: Duration::from_millis(1500),
        ramp: Some(Duration::from_millis(200)),
        gateway_pid: Some(std::process::id()),
        realtime_delay: Duration::ZERO,
        stream_delay: Duration::ZERO,
        talk_on_session_updated: false,
        lead: Duration::ZERO,
        connect_timeout: Duration::from_secs(5),
        label: Some("loopback".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_the_floor_are_measured_both_ways() {
    let realtime = free_port();
    let floor = Floor::start(FloorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        realtime_url: format!("ws://{realtime}/v1/realtime"),
        model: "gpt-realtime".into(),
        api_key: "sk-test".into(),
        tuned: true,
    })
    .await
    .unwrap();
    let calls = 4;
    let r = run_load(config(format!("http://{}", floor.addr()), realtime, calls))
        .await
        .unwrap();
    assert_eq!(r.failed, 0, "{}", r.table());
    assert_eq!(r.completed, calls);
    assert_eq!(r.responder_sessions, calls as u64);
    // 1.5 s of 20 ms frames per call, every one tagged and relayed.
    assert_eq!(r.inbound.frames_sent, 75 * calls as u64);
    assert!(
        r.inbound.frames_received >= 70 * calls as u64,
        "{}",
        r.table()
    );
    assert!(
        r.outbound.frames_received >= 60 * calls as u64,
        "{}",
        r.table()
    );
    assert_eq!(r.inbound.unmatched + r.outbound.unmatched, 0);
    assert_eq!(r.protocol_errors, 0);
    let p50_in = r.inbound.p50_ms.unwrap();
    let p50_out = r.outbound.p50_ms.unwrap();
    assert!(p50_in > 0.0 && p50_in < 100.0, "{p50_in}");
    assert!(p50_out > 0.0 && p50_out < 100.0, "{p50_out}");
    assert!(r.setup_ms.p50.is_some());
    let g = r.gateway.clone().unwrap();
    // Too short a run for a steady CPU window; memory is sampled from the start.
    assert!(
        g.rss_before_kib.is_some() && g.rss_peak_kib.is_some(),
        "{}",
        r.table()
    );
    let json: serde_json::Value = serde_json::from_str(&r.json_line()).unwrap();
    assert_eq!(json["label"], "loopback");
}

#[tokio::test]
async fn refused_and_unreachable_calls_are_failures_with_reasons() {
    // A relay that answers every webhook with a busy signal.
    let app = axum::Router::new().route(
        "/twilio/voice",
        axum::routing::post(|| async { "<Response><Reject reason=\"busy\"/></Response>" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let busy = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let r = run_load(config(format!("http://{busy}"), free_port(), 2))
        .await
        .unwrap();
    assert_eq!(r.failed, 2);
    assert_eq!(r.failures.get("busy"), Some(&2));
    server.abort();

    let nobody = free_port();
    let r = run_load(config(format!("http://{nobody}"), free_port(), 1))
        .await
        .unwrap();
    assert_eq!(r.failures.get("webhook_error"), Some(&1), "{}", r.table());
}

#[test]
fn settings_are_checked_and_the_default_ramp_is_bounded() {
    let mut c = config("http://127.0.0.1:1".into(), free_port(), 0);
    assert!(validate(&c).is_err());
    c.calls = 1;
    c.gateway = "ftp://x".into();
    assert!(validate(&c).is_err());
    c.gateway = "http://x".into();
    c.duration = Duration::from_millis(5);
    assert!(validate(&c).is_err());
    c.ramp = None;
    c.calls = 100;
    assert_eq!(c.effective_ramp(), Duration::from_secs(2));
    c.calls = 5000;
    assert_eq!(c.effective_ramp(), Duration::from_secs(10));
}
