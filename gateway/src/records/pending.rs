//! Records sealed under a reserve key ([`super::reserve`]), waiting on disk for KMS to
//! re-wrap their key for their own call.
//!
//! One JSON file per call in `<data dir>/sealing/`: the record with its transcript and
//! tool calls already sealed (AES-256-GCM), the reserve key's id and its KMS-wrapped form.
//! Nothing in it is readable without KMS. Written to a temporary file, synced and renamed
//! (a crash leaves the whole file or none); removed only after the record, with its
//! re-wrapped key, is in the store or its durable spool. The files survive a restart and
//! are picked up at the next start.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use switchboard_store::CallEnd;

/// File format version.
const VERSION: u32 = 1;

/// A record waiting for its key to be re-wrapped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The tenant's KMS key (the re-wrapped key is wrapped under it).
    pub kms_key_id: String,
    /// The reserve key's id (its encryption context is `{tenant, reserve: id}`).
    pub reserve_id: String,
    /// The reserve key, wrapped by KMS, base64.
    pub reserve_wrapped: String,
    /// The record, its fields sealed; `data_key` is `None` until re-wrapped.
    pub end: CallEnd,
}

impl Pending {
    /// A pending record of `end` (sealed under the reserve key wrapped as `wrapped`).
    pub fn new(kms_key_id: &str, reserve_id: &str, wrapped: &[u8], mut end: CallEnd) -> Self {
        end.data_key = None;
        Self {
            version: VERSION,
            kms_key_id: kms_key_id.to_string(),
            reserve_id: reserve_id.to_string(),
            reserve_wrapped: STANDARD.encode(wrapped),
            end,
        }
    }

    /// The wrapped reserve key's bytes; `None` for text that is not base64.
    pub fn reserve_wrapped_bytes(&self) -> Option<Vec<u8>> {
        STANDARD.decode(&self.reserve_wrapped).ok()
    }
}

/// File of `call_sid`'s pending record in `dir`. CallSids are checked by the webhook
/// (`CA` + 32 hex) before a call exists, so the name is a plain file name.
fn path_of(dir: &Path, call_sid: &str) -> PathBuf {
    dir.join(format!("{call_sid}.json"))
}

/// Writes `pending` durably (temporary file, fsync, rename, fsync of the directory).
///
/// # Errors
/// The I/O error; nothing is left under the final name then.
pub fn write(dir: &Path, pending: &Pending) -> std::io::Result<PathBuf> {
    let sid = &pending.end.call_sid;
    // Checked where calls start; checked again because it becomes a file name.
    if sid.is_empty() || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a CallSid that is not a plain file name",
        ));
    }
    std::fs::create_dir_all(dir)?;
    let path = path_of(dir, sid);
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(pending).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// Every pending record in `dir` (a missing directory has none). A file that cannot be
/// read or parsed is logged and left where it is for a human: it may hold the only copy
/// of a record.
pub fn list(dir: &Path) -> Vec<(PathBuf, Pending)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Pending>(&b).map_err(|e| e.to_string()))
        {
            Ok(p) if p.version == VERSION => out.push((path, p)),
            Ok(p) => {
                tracing::error!(path = %path.display(), version = p.version, "pending sealed record of an unknown format version; left in place")
            }
            Err(error) => {
                tracing::error!(path = %path.display(), error, "unreadable pending sealed record; left in place")
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_record_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut end = crate::records::tests::end();
        end.data_key = Some("must-not-survive".into());
        let p = Pending::new("key-1", "r1", &[1, 2, 3], end);
        let path = write(dir.path(), &p).unwrap();
        std::fs::write(dir.path().join("junk.json"), b"{").unwrap();
        let listed = list(dir.path());
        assert_eq!(listed.len(), 1, "the unreadable file is skipped");
        assert_eq!(listed[0].0, path);
        assert_eq!(listed[0].1.reserve_wrapped_bytes().unwrap(), vec![1, 2, 3]);
        assert_eq!(listed[0].1.end.data_key, None);
        assert!(dir.path().join("junk.json").exists(), "left for a human");
    }
}
