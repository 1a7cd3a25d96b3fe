//! The real `gateway` binary at info level: a call's logs carry no full caller number,
//! unless the tenant opts in with `spec.logging.callerNumbers`.
#![allow(clippy::unwrap_used)] // test helper outside #[test]

use std::io::Read;
use std::process::Stdio;

use switchboard_sim::caller::twilio_signature;

mod support;
use support::{ACCOUNT, free_port, gateway, tenant_manifest, wait_ready};

const TOKEN: &str = "log-test-token";

/// Starts the gateway binary for a tenant with `spec_extra` (YAML lines under `spec`),
/// sends a signed webhook for the tenant's number and one for an unknown number, and
/// returns everything it logged at info level.
async fn logs_of_two_webhooks(spec_extra: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant_manifest(dir.path(), "    instructions: Be brief.\n", spec_extra);
    let port = free_port();
    let mut child = gateway(
        &tenant,
        port,
        "ws://127.0.0.1:1/v1/realtime",
        &dir.path().join("data"),
        TOKEN,
    )
    .arg("--no-preconnect")
    .env("RUST_LOG", "info")
    .env("NO_COLOR", "1")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let up = wait_ready(&base).await;
    let http = switchboard_sim::caller::http_client().unwrap();
    let url = format!("{base}/twilio/voice");
    for to in ["+15005550006", "+19998887766"] {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA0123456789abcdef0123456789abc777"),
            ("AccountSid", ACCOUNT),
            ("From", "+15551230000"),
            ("To", to),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sig = twilio_signature(TOKEN, &url, &params);
        let r = http
            .post(&url)
            .header("X-Twilio-Signature", sig)
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Stop the process this test started (by its own handle) and read what it logged.
    let _ = child.kill();
    let _ = child.wait();
    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(up, "gateway did not become ready: {logs}");
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_logs_of_a_call_carry_no_full_caller_number() {
    let logs = logs_of_two_webhooks("").await;
    assert!(logs.contains("answering call"), "{logs}");
    assert!(logs.contains("no tenant answers"), "{logs}");
    for full in ["5551230000", "5005550006", "9998887766"] {
        assert!(!logs.contains(full), "{full} in {logs}");
    }
    assert!(logs.contains("***00"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_opts_in_gets_full_caller_numbers_in_its_call_logs() {
    let logs = logs_of_two_webhooks("  logging:\n    callerNumbers: true\n").await;
    let answering = logs
        .lines()
        .find(|l| l.contains("answering call"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(answering.contains("+15551230000"), "{answering}");
    assert!(answering.contains("+15005550006"), "{answering}");
    // A number no tenant answers has no tenant to opt in: still masked.
    assert!(logs.contains("no tenant answers"), "{logs}");
    assert!(!logs.contains("9998887766"), "{logs}");
}
