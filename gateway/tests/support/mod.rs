//! What the tests of the `gateway` binary share: a free port, a tenant manifest, waiting
//! for readiness.
#![allow(dead_code)] // each test file uses a part of it
#![allow(clippy::unwrap_used)] // test helpers outside #[test]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The tenant's Twilio account.
pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
/// The tenant's number.
pub const NUMBER: &str = "+15005550006";
/// Environment variable holding the tenant's Twilio auth token.
pub const TOKEN_ENV: &str = "GW_TEST_TWILIO_TOKEN";
/// Environment variable holding the tenant's OpenAI key.
pub const KEY_ENV: &str = "GW_TEST_OPENAI_KEY";

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes the manifest of tenant `demo` (number [`NUMBER`], secrets from [`TOKEN_ENV`] and
/// [`KEY_ENV`]) into `dir`; `agent` and `spec_extra` are YAML lines under `spec.agent` and
/// `spec`, indented.
pub fn tenant_manifest(dir: &Path, agent: &str, spec_extra: &str) -> PathBuf {
    let path = dir.join("t.yaml");
    let agent = if agent.is_empty() {
        String::new()
    } else {
        format!("  agent:\n{agent}")
    };
    std::fs::write(
        &path,
        format!(
            "apiVersion: voice.switchboard.dev/v1alpha1\nkind: VoiceTenant\nmetadata:\n  name: demo\nspec:\n  displayName: Demo\n  phoneNumbers: [\"{NUMBER}\"]\n{agent}  twilio:\n    accountSid: {ACCOUNT}\n    authToken:\n      env: {TOKEN_ENV}\n  openai:\n    apiKey:\n      env: {KEY_ENV}\n{spec_extra}"
        ),
    )
    .unwrap();
    path
}

/// Waits up to 10 s for `base`'s `/readyz` to answer 200.
pub async fn wait_ready(base: &str) -> bool {
    let http = switchboard_sim::caller::http_client().unwrap();
    for _ in 0..200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The `gateway` binary serving tenant manifest `tenant` on `127.0.0.1:{port}` with
/// `realtime_url` and data directory `data`, its secrets in the environment (`token` as
/// the Twilio auth token); callers add flags, environment and stdio.
pub fn gateway(tenant: &Path, port: u16, realtime_url: &str, data: &Path, token: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .args([
            "--tenant",
            tenant.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--realtime-url",
            realtime_url,
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .env(TOKEN_ENV, token)
        .env(KEY_ENV, "sk-test");
    command
}
