//! The `gateway` process killed (SIGKILL) mid-call (issue 13 §7): the media stream
//! breaks with nothing to say why, no gateway is left to answer any request, and the
//! caller still hears the tenant's fallback, because Twilio already holds it: it follows
//! `</Connect>` in the TwiML that started the stream. Real process, real sockets; the
//! simulated caller does what Twilio does when a stream ends.
#![allow(clippy::unwrap_used)] // test helper outside #[test]

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use switchboard_sim::caller::scenario::{Kill, Scenario};
use switchboard_sim::caller::{CallConfig, SignatureMode};
use switchboard_sim::realtime::RealtimeSim;

mod support;
use support::{ACCOUNT, free_port, gateway, tenant_manifest, wait_ready};

const TOKEN: &str = "killed-test-token";
const APOLOGY: &str = "Sorry, our assistant just went away. Let me put you through.";
const FRONT_DESK: &str = "+15551239999";

fn start_gateway(dir: &std::path::Path, realtime_url: &str) -> (Child, String) {
    let tenant = tenant_manifest(
        dir,
        &format!(
            "    greeting:\n      text: Hello, this is Demo, how can I help?\n    fallback:\n      apology: {APOLOGY:?}\n      action: dial\n      number: \"{FRONT_DESK}\"\n"
        ),
        "",
    );
    let port = free_port();
    let child = gateway(&tenant, port, realtime_url, &dir.join("data"), TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_mid_call_the_caller_hears_the_fallback() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::GatewayKilled;
    let sim = RealtimeSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), scenario.realtime())
        .await
        .unwrap();
    let (child, base) = start_gateway(dir.path(), &sim.url());
    let child = Arc::new(Mutex::new(child));
    if !wait_ready(&base).await {
        let _ = child.lock().unwrap().kill();
        panic!("gateway did not become ready");
    }
    let victim = child.clone();
    // `Child::kill` is SIGKILL on Unix: no drain, no close frames, no last words.
    let kill: Kill = Box::new(move || {
        victim
            .lock()
            .map_err(|e| e.to_string())?
            .kill()
            .map_err(|e| e.to_string())
    });
    let cfg = CallConfig {
        gateway: base.clone(),
        account_sid: ACCOUNT.into(),
        auth_token: TOKEN.into(),
        signature: SignatureMode::Valid,
        ..CallConfig::default()
    };
    let run = scenario.run_killing(cfg, None, Some(kill)).await.unwrap();
    let status = child.lock().unwrap().wait().unwrap();
    assert!(!status.success(), "killed, not exited: {status:?}");
    assert!(run.passed(), "{:#?}\n{:#?}", run.failed, run.report);
    let report = &run.report;
    // Mid-call: the greeting had been heard when the process died.
    assert!(!report.turns.is_empty(), "{report:#?}");
    // The tenant's own fallback, straight from the TwiML Twilio already had: the apology,
    // then the front desk dialled. Nothing was fetched from a gateway (none is left).
    assert_eq!(report.heard_after_stream, [APOLOGY], "{report:#?}");
    assert_eq!(report.dials.len(), 1, "{report:#?}");
    assert_eq!(report.dials[0].to, FRONT_DESK);
    assert!(report.hangup_after_stream, "{report:#?}");
    assert!(
        http_refused(&base).await,
        "the gateway is really gone: nothing could have answered an action"
    );
}

/// Whether nothing answers at `base` any more.
async fn http_refused(base: &str) -> bool {
    let http = switchboard_sim::caller::http_client().unwrap();
    http.get(format!("{base}/healthz")).send().await.is_err()
}
