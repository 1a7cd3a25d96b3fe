//! What the real `gateway` binary prints for a user's mistake: one message naming it
//! (each cause once) and a failing exit status, without a stack backtrace even when
//! `RUST_BACKTRACE` asks for them (those are for panics, which are bugs).
#![allow(clippy::unwrap_used)] // test setup

use std::path::Path;
use std::process::Command;

#[test]
fn a_misspelt_manifest_is_reported_once_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tenants/demo.yaml");
    let text = std::fs::read_to_string(example).unwrap();
    assert!(
        text.contains("\n  phoneNumbers:"),
        "the example still has the field"
    );
    let tenant = dir.path().join("demo.yaml");
    std::fs::write(
        &tenant,
        text.replace("\n  phoneNumbers:", "\n  phoneNumber:"),
    )
    .unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--tenant")
        .arg(&tenant)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("did you mean `phoneNumbers`?").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("not a valid VoiceTenant manifest").count(),
        1,
        "{stderr}"
    );
    for noise in ["stack backtrace", "Stack backtrace", "Caused by"] {
        assert!(!stderr.contains(noise), "{noise}: {stderr}");
    }
}
