//! Retention: recordings older than their tenant's `retentionDays` are deleted and their
//! key cleared from the call record.
//!
//! A sweeper in the gateway, not an S3 lifecycle rule: a lifecycle configuration is
//! bucket-wide (setting one replaces every rule of a bucket the tenant may share with
//! other data), it needs `s3:PutLifecycleConfiguration`, and it could not clear the call
//! records anyway. The sweeper lists only the tenant's own prefix and deletes only keys
//! of the form it writes (`…/<tenant>/yyyy/mm/dd/CA<32 hex>.wav`).

use std::path::Path;
use std::sync::Arc;

use switchboard_crds::RecordingSpec;
use switchboard_store::{RecordingGone, StoreOp, WriteBehind};

use super::metrics::RecordingMetrics;
use super::s3::{S3, S3Error};

/// How often the sweeper runs.
pub const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The CallSid of a key this gateway wrote under `tenant_prefix`
/// (`<tenant_prefix>yyyy/mm/dd/<CallSid>.wav`), else `None`.
pub fn call_sid_of<'k>(tenant_prefix: &str, key: &'k str) -> Option<&'k str> {
    let rest = key.strip_prefix(tenant_prefix)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [y, m, d, file] = parts.as_slice() else {
        return None;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return None;
    }
    let sid = file.strip_suffix(".wav")?;
    super::is_call_sid(sid).then_some(sid)
}

/// The sweeper of one gateway.
pub struct Sweeper {
    /// S3 client.
    pub s3: Arc<S3>,
    /// Local recordings directory.
    pub recordings_dir: std::path::PathBuf,
    /// Record updates.
    pub store: WriteBehind,
    /// Metrics.
    pub metrics: RecordingMetrics,
}

impl Sweeper {
    /// One sweep of `tenant`'s recordings as of `now_s` (Unix seconds): returns how many
    /// were deleted.
    pub async fn sweep(
        &self,
        tenant: &str,
        spec: &RecordingSpec,
        now_s: i64,
    ) -> Result<u64, S3Error> {
        if spec.retention_days == 0 {
            return Ok(0);
        }
        let cutoff = now_s - i64::from(spec.retention_days) * 86_400;
        let prefix = super::tenant_prefix(spec.prefix.as_deref(), tenant);
        let mut deleted = 0;
        match &spec.bucket {
            Some(bucket) => {
                for o in self.s3.list(bucket, &prefix).await? {
                    let Some(sid) = call_sid_of(&prefix, &o.key) else {
                        continue;
                    };
                    if o.modified_s >= cutoff {
                        continue;
                    }
                    self.s3.delete(bucket, &o.key).await?;
                    self.gone(sid, &o.key).await;
                    deleted += 1;
                }
            }
            None => {
                let root = self.recordings_dir.clone();
                let found = tokio::task::spawn_blocking(move || local_files(&root, &prefix))
                    .await
                    .unwrap_or_default();
                for (key, modified_s) in found {
                    if modified_s >= cutoff {
                        continue;
                    }
                    let Some(sid) =
                        call_sid_of(&super::tenant_prefix(spec.prefix.as_deref(), tenant), &key)
                    else {
                        continue;
                    };
                    if tokio::fs::remove_file(self.recordings_dir.join(&key))
                        .await
                        .is_ok()
                    {
                        self.gone(sid, &key).await;
                        deleted += 1;
                    }
                }
            }
        }
        Ok(deleted)
    }

    async fn gone(&self, sid: &str, key: &str) {
        self.metrics.expired.inc();
        self.store
            .submit(StoreOp::RecordingGone(RecordingGone {
                call_sid: sid.to_string(),
                key: key.to_string(),
            }))
            .await;
    }
}

/// Files under `root/prefix` (four levels: yyyy/mm/dd/file) as (key, mtime seconds).
fn local_files(root: &Path, prefix: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![(root.join(prefix), prefix.to_string(), 0)];
    while let Some((dir, key, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() && depth < 3 {
                stack.push((e.path(), format!("{key}{name}/"), depth + 1));
            } else if meta.is_file() && depth == 3 {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                out.push((format!("{key}{name}"), modified));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_we_write_are_ours() {
        let p = "calls/acme/";
        let sid = "CA0123456789abcdef0123456789abcdef";
        assert_eq!(
            call_sid_of(p, &format!("calls/acme/2026/12/07/{sid}.wav")),
            Some(sid)
        );
        for other in [
            format!("calls/acme/2026/12/07/{sid}.mp3"),
            format!("calls/acme/2026/12/{sid}.wav"),
            format!("calls/acme/x/2026/12/07/{sid}.wav"),
            format!("calls/acme-2/2026/12/07/{sid}.wav"),
            "calls/acme/2026/12/07/notes.wav".to_string(),
            format!("calls/acme/2026/12/07/{sid}.wav/x"),
        ] {
            assert_eq!(call_sid_of(p, &other), None, "{other}");
        }
    }
}
