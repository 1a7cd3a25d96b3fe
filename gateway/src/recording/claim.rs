//! Claims on queue entries, so several uploaders on one queue directory (gateway pods
//! sharing a volume, or a restarted pod next to one still running) deliver each entry
//! exactly once.
//!
//! A claim is a file `<CallSid>.claim` created with `O_CREAT | O_EXCL` (atomic on local
//! file systems and NFS v3+/EFS): whoever creates it owns the entry. The owner writes its
//! id into it and touches it while it delivers (a heartbeat); an uploader that died
//! leaves a claim whose modification time stops moving, and after the stale timeout
//! another uploader takes it over: it renames the claim aside (only one rename of a path
//! succeeds), checks that what it moved was still stale (if the owner touched it in the
//! meantime the claim is put back with `link`, which never overwrites), and then creates
//! its own. The claim is removed last, after the entry's files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What an attempt to claim an entry found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claimed {
    /// This uploader owns the entry now.
    Mine,
    /// Another uploader holds a live claim.
    Held,
}

/// The claim file of `call_sid` in `dir`.
pub fn path(dir: &Path, call_sid: &str) -> PathBuf {
    dir.join(format!("{call_sid}.claim"))
}

/// Whether the file at `path` was modified within `stale` (a missing file is not).
fn fresh(path: &Path, stale: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() < stale)
}

/// Claims `call_sid`'s entry for `owner`, taking over a claim older than `stale`.
///
/// # Errors
/// An I/O error other than the claim existing.
pub fn claim(dir: &Path, call_sid: &str, owner: &str, stale: Duration) -> std::io::Result<Claimed> {
    let claim = path(dir, call_sid);
    // Two rounds: create; if a stale claim is in the way, move it aside and create again.
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&claim)
        {
            Ok(mut f) => {
                f.write_all(owner.as_bytes())?;
                return Ok(Claimed::Mine);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if fresh(&claim, stale) {
            return Ok(Claimed::Held);
        }
        let aside = dir.join(format!("{call_sid}.claim.{owner}.stale"));
        match std::fs::rename(&claim, &aside) {
            Ok(()) => {}
            // Someone else moved it first: try to create ours.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        if fresh(&aside, stale) {
            // Between the check and the rename its owner touched it, or another
            // uploader took it over: put it back (never over a claim created since).
            let _ = std::fs::hard_link(&aside, &claim);
            let _ = std::fs::remove_file(&aside);
            return Ok(Claimed::Held);
        }
        let previous = std::fs::read_to_string(&aside).unwrap_or_default();
        tracing::warn!(
            call_sid,
            previous_owner = previous.trim(),
            "taking over a stale recording upload claim"
        );
        let _ = std::fs::remove_file(&aside);
    }
    Ok(Claimed::Held)
}

/// Whether `owner` still holds `call_sid`'s claim.
pub fn holds(dir: &Path, call_sid: &str, owner: &str) -> bool {
    std::fs::read_to_string(path(dir, call_sid)).is_ok_and(|s| s == owner)
}

/// Touches `owner`'s claim (the heartbeat); false when the claim is no longer `owner`'s.
pub fn touch(dir: &Path, call_sid: &str, owner: &str) -> bool {
    if !holds(dir, call_sid, owner) {
        return false;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(path(dir, call_sid))
        .and_then(|f| f.set_modified(SystemTime::now()))
        .is_ok()
}

/// Removes `owner`'s claim (after the entry's files, or to let another uploader retry).
pub fn release(dir: &Path, call_sid: &str, owner: &str) {
    if holds(dir, call_sid, owner) {
        let _ = std::fs::remove_file(path(dir, call_sid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "CA0123456789abcdef0123456789abcdef";

    #[test]
    fn one_claim_per_entry_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let stale = Duration::from_secs(60);
        assert_eq!(claim(dir.path(), SID, "a", stale).unwrap(), Claimed::Mine);
        assert_eq!(claim(dir.path(), SID, "b", stale).unwrap(), Claimed::Held);
        assert!(touch(dir.path(), SID, "a"));
        assert!(!touch(dir.path(), SID, "b"));
        release(dir.path(), SID, "b");
        assert!(holds(dir.path(), SID, "a"), "only the owner releases");
        release(dir.path(), SID, "a");
        assert_eq!(claim(dir.path(), SID, "b", stale).unwrap(), Claimed::Mine);
    }

    #[test]
    fn a_stale_claim_is_taken_over_and_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let stale = Duration::from_secs(60);
        assert_eq!(
            claim(dir.path(), SID, "dead", stale).unwrap(),
            Claimed::Mine
        );
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::OpenOptions::new()
            .write(true)
            .open(path(dir.path(), SID))
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(claim(dir.path(), SID, "b", stale).unwrap(), Claimed::Mine);
        assert!(holds(dir.path(), SID, "b"));
        assert!(!touch(dir.path(), SID, "dead"), "the old owner lost it");
        assert_eq!(claim(dir.path(), SID, "c", stale).unwrap(), Claimed::Held);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "nothing left aside");
    }
}
