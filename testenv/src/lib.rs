//! The one gate every test uses for a service it needs from outside the process
//! (Postgres, moto's server, the MiniLM model, Helm, a real API server).
//!
//! `scripts/test.sh` installs and starts each service and exports a variable naming it.
//! A test that finds its variable unset skips with a notice on a developer's machine, but
//! under `CI=true` (or `SWITCHBOARD_REQUIRE_SERVICES=1`) it fails: a CI run whose
//! services did not start must never pass green by skipping.

use std::ffi::OsString;
use std::path::PathBuf;

/// Whether a missing service fails the test instead of skipping it.
pub fn services_required() -> bool {
    let set = |name: &str| {
        std::env::var(name)
            .map(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "True" | "yes"))
            .unwrap_or(false)
    };
    set("CI") || set("SWITCHBOARD_REQUIRE_SERVICES")
}

/// The value of `var` (non-empty), or `None` after printing why the test skips.
///
/// `how` tells a developer how to provide it (e.g. `eval "$(scripts/postgres.sh start)"`).
///
/// # Panics
/// When the variable is missing and [`services_required`] is true.
pub fn service(var: &str, how: &str) -> Option<String> {
    service_os(var, how).map(|v| v.to_string_lossy().into_owned())
}

/// [`service`] for a path (the model directory, a binary).
///
/// # Panics
/// When the variable is missing and [`services_required`] is true.
pub fn service_path(var: &str, how: &str) -> Option<PathBuf> {
    service_os(var, how).map(PathBuf::from)
}

/// The first of `vars` that is set, for tests that accept an older name too.
///
/// # Panics
/// When none is set and [`services_required`] is true.
pub fn service_any(vars: &[&str], how: &str) -> Option<String> {
    for var in vars {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return Some(v.to_string_lossy().into_owned());
        }
    }
    missing(&vars.join(" or "), how)
}

fn service_os(var: &str, how: &str) -> Option<OsString> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Some(v),
        _ => missing(var, how).map(OsString::from),
    }
}

fn missing(var: &str, how: &str) -> Option<String> {
    if services_required() {
        panic!("{var} is not set and CI=true: the service this test needs was not started ({how})");
    }
    eprintln!("SKIPPED: {var} is not set ({how}; scripts/test.sh does it)");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_skips_locally_and_fails_under_ci() {
        let var = "SWITCHBOARD_TESTENV_SELFTEST_UNSET";
        // Edition 2024 makes set_var unsafe: the child process gets its own environment.
        let exe = std::env::current_exe().expect("test binary path");
        let run = |ci: &str| {
            std::process::Command::new(&exe)
                .args(["--exact", "tests::child", "--nocapture"])
                .env("SWITCHBOARD_TESTENV_CHILD", var)
                .env("CI", ci)
                .env_remove("SWITCHBOARD_REQUIRE_SERVICES")
                .env_remove(var)
                .output()
                .expect("spawn child test")
        };
        let local = run("false");
        assert!(local.status.success(), "without CI a missing service skips");
        assert!(String::from_utf8_lossy(&local.stderr).contains("SKIPPED"));
        let ci = run("true");
        assert!(
            !ci.status.success(),
            "under CI=true a missing service fails"
        );
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&ci.stdout),
            String::from_utf8_lossy(&ci.stderr)
        );
        assert!(out.contains("was not started"), "{out}");
    }

    #[test]
    fn child() {
        if let Ok(var) = std::env::var("SWITCHBOARD_TESTENV_CHILD") {
            assert!(service(&var, "test").is_none());
        }
    }
}
