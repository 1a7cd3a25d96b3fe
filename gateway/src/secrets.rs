//! Secrets named in manifests (`env`, `file`, `secretKeyRef`, `awsSecretsManager`), read
//! where they live. Values are returned, never logged; errors say where, never what.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchboard_crds::SecretRef;

use crate::aws::Aws;

/// Where secrets named by `secretKeyRef` are mounted: `<dir>/<secret>/<key>` (the
/// operator mounts each referenced Secret there).
pub const DEFAULT_SECRETS_DIR: &str = "/var/run/secrets/switchboard";

/// Everything a secret reference may point at: the mounted Secrets directory and AWS
/// Secrets Manager.
#[derive(Debug, Clone)]
pub struct SecretSource {
    dir: PathBuf,
    aws: Arc<Aws>,
}

impl SecretSource {
    /// Secrets from `dir` (for `secretKeyRef`) and from Secrets Manager through `aws`.
    pub fn new(dir: PathBuf, aws: Arc<Aws>) -> Self {
        Self { dir, aws }
    }

    /// The mounted Secrets directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads a secret value from where `r` says it lives.
    ///
    /// # Errors
    /// A message naming the source and the problem, never the value.
    pub async fn resolve(&self, r: &SecretRef) -> Result<String, String> {
        if let Some(a) = &r.aws_secrets_manager {
            return self
                .aws
                .secrets_manager()
                .await
                .get(&a.secret_id, a.key.as_deref(), a.version_stage.as_deref())
                .await
                .map_err(|e| format!("{}: {}", a.describe(), e.message));
        }
        resolve_local(r, &self.dir)
    }
}

/// Reads a secret that lives on this machine (`env`, `file`, `secretKeyRef`).
///
/// # Errors
/// A message naming the source and the problem, never the value; a Secrets Manager
/// reference is an error here (it needs [`SecretSource::resolve`]).
pub fn resolve_local(r: &SecretRef, secrets_dir: &Path) -> Result<String, String> {
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
    } else if r.aws_secrets_manager.is_some() {
        return Err(format!("{} cannot be read here", r.describe()));
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
