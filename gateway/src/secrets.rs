//! Secrets named in manifests (`env`, `file`, `secretKeyRef`), read where the operator
//! mounts them. Values are returned, never logged; errors say where, never what.

use std::path::{Path, PathBuf};

use switchboard_crds::SecretRef;

/// Where secrets named by `secretKeyRef` are mounted: `<dir>/<secret>/<key>` (the
/// operator mounts each referenced Secret there).
pub const DEFAULT_SECRETS_DIR: &str = "/var/run/secrets/switchboard";

/// Reads a secret value from where `r` says it lives.
pub fn resolve_secret(r: &SecretRef, secrets_dir: &Path) -> Result<String, String> {
    if let Some(name) = &r.env {
        return match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Ok(_) => Err(format!("environment variable {name} is empty")),
            Err(_) => Err(format!("environment variable {name} is not set")),
        };
    }
    let path = if let Some(f) = &r.file {
        PathBuf::from(f)
    } else if let Some(s) = &r.secret_key_ref {
        secrets_dir.join(&s.name).join(&s.key)
    } else {
        return Err("no source set".into());
    };
    match std::fs::read_to_string(&path) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Ok(_) => Err(format!("{} is empty", path.display())),
        Err(e) => Err(format!(
            "reading {} ({}): {e}",
            path.display(),
            r.describe()
        )),
    }
}
