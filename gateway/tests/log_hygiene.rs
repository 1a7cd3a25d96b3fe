//! The real `gateway` binary at info level: a call's logs carry no full caller number,
//! unless the tenant opts in with `spec.logging.callerNumbers`.
#![allow(clippy::unwrap_used)] // test helper outside #[test]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use switchboard_sim::caller::twilio_signature;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "log-test-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the gateway binary for a tenant with `spec_extra` (YAML lines under `spec`),
/// sends a signed webhook for the tenant's number and one for an unknown number, and
/// returns everything it logged at info level.
async fn logs_of_two_webhooks(spec_extra: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let tenant = dir.path().join("t.yaml");
    std::fs::write(
        &tenant,
        format!(
            "apiVersion: voice.switchboard.dev/v1alpha1\nkind: VoiceTenant\nmetadata:\n  name: demo\nspec:\n  displayName: Demo\n  phoneNumbers: [\"+15005550006\"]\n  agent:\n    instructions: Be brief.\n  twilio:\n    accountSid: {ACCOUNT}\n    authToken:\n      env: LOG_TEST_TOKEN\n  openai:\n    apiKey:\n      env: LOG_TEST_KEY\n{spec_extra}"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args([
            "--tenant",
            tenant.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--realtime-url",
            "ws://127.0.0.1:1/v1/realtime",
            "--no-preconnect",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ])
        .env("LOG_TEST_TOKEN", TOKEN)
        .env("LOG_TEST_KEY", "sk-test")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = switchboard_sim::caller::http_client().unwrap();
    let mut up = false;
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
