//! What a previous run left in the work directory: a gateway killed mid-call (or whose
//! WAV failed at hang-up) left each recorded call's track files and its manifest,
//! `<CallSid>.call.json` (written when the recording began: where the WAV goes).
//!
//! At startup, before the writer starts, [`sort`] moves each such call into
//! `work/salvage/` (renames), removes staging files, and removes track files and WAVs
//! with no manifest (they cannot go anywhere: a crash after the manifest's removal, at
//! the end of a finished call). Then [`make`] makes each moved call's WAV from what its
//! tracks hold and queues it, in the background on the recordings' file threads, so the
//! gateway serves meanwhile and a new call with the same CallSid cannot meet these files.
//! What fails stays in `work/salvage/` for the next start.
//!
//! Only files named by a CallSid are touched, in a directory that is this process's
//! alone (the data directory's spool is locked before the recordings start, see
//! `server.rs`); a manifest must name its own file's CallSid, and only regular files
//! are read (no symlinks followed).

use std::io;
use std::path::{Path, PathBuf};

use super::files::remove_if_present as remove;
use super::queue::{Enqueue, Manifest};
use super::writer::{AGENT_SUFFIX, CALL_SUFFIX, CALLER_SUFFIX, STAGING_SUFFIX};
use super::{RecordingMetrics, agent, is_call_sid, wav};

/// The folder of `work` that calls waiting to be salvaged are moved into.
pub const DIR: &str = "salvage";

/// The files of `work` named `<CallSid><suffix>`, as (CallSid, suffix, path); only
/// regular files.
fn call_files(dir: &Path) -> Vec<(String, &'static str, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let suffixes = [
        CALL_SUFFIX,
        CALLER_SUFFIX,
        AGENT_SUFFIX,
        STAGING_SUFFIX,
        ".wav",
    ];
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            suffixes.iter().find_map(|&suffix| {
                let sid = name.strip_suffix(suffix)?;
                is_call_sid(sid).then(|| (sid.to_string(), suffix, e.path()))
            })
        })
        .collect()
}

/// Sorts out what a previous run left in `work` (see the module's documentation) and
/// returns the CallSids waiting in `work/salvage/`. Synchronous: renames and removals.
pub fn sort(work: &Path) -> Vec<String> {
    let salvage = work.join(DIR);
    let files = call_files(work);
    let manifested: std::collections::HashSet<&str> = files
        .iter()
        .filter(|(_, suffix, _)| *suffix == CALL_SUFFIX)
        .map(|(sid, _, _)| sid.as_str())
        .collect();
    if !manifested.is_empty()
        && let Err(e) = std::fs::create_dir_all(&salvage)
    {
        tracing::error!(path = %salvage.display(), error = %e, "cannot make the folder for recordings to salvage; they stay for the next start");
        return Vec::new();
    }
    let mut removed = 0;
    // The manifest last: a crash in between leaves it in `work`, and the next start moves
    // the rest.
    let mut moves: Vec<_> = files.iter().collect();
    moves.sort_by_key(|(_, suffix, _)| *suffix == CALL_SUFFIX);
    for (sid, suffix, path) in moves {
        let result = if *suffix == STAGING_SUFFIX {
            remove(path)
        } else if manifested.contains(sid.as_str()) {
            std::fs::rename(path, salvage.join(format!("{sid}{suffix}")))
        } else {
            removed += 1;
            remove(path)
        };
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not sort out a file a previous run left");
        }
    }
    if removed > 0 {
        tracing::warn!(
            files = removed,
            "removed recording files a previous run left without a manifest (nowhere to send them)"
        );
    }
    // What a previous start could not make stays here: and tracks a crash left without
    // their manifest here cannot go anywhere either.
    let waiting = call_files(&salvage);
    let sids: std::collections::BTreeSet<String> = waiting
        .iter()
        .filter(|(_, suffix, _)| *suffix == CALL_SUFFIX)
        .map(|(sid, _, _)| sid.clone())
        .collect();
    for (sid, _, path) in &waiting {
        if !sids.contains(sid)
            && let Err(e) = remove(path)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a recording file with no manifest");
        }
    }
    sids.into_iter().collect()
}

/// Makes and queues the WAV of each call `sort` returned, from `dir` (`work/salvage/`).
/// Blocking: run it on the recordings' file threads. Returns how many were queued.
pub fn make(dir: &Path, sids: &[String], queue: &Enqueue, metrics: &RecordingMetrics) -> usize {
    let mut queued = 0;
    for sid in sids {
        match make_one(dir, sid, queue) {
            Ok(Some(m)) => {
                tracing::warn!(
                    call_sid = sid,
                    tenant = m.tenant,
                    duration_ms = m.duration_ms,
                    "recording of a call the previous run did not finish: made from its track files and queued"
                );
                metrics.salvaged.inc();
                metrics.disk_bytes.inc_by(m.bytes);
                queue.wake(m);
                queued += 1;
            }
            Ok(None) => {}
            Err(e) => {
                metrics.write_errors.inc();
                tracing::error!(call_sid = sid, error = %e, "could not make the recording of a call the previous run did not finish; its files stay for the next start");
            }
        }
    }
    queued
}

/// One call of [`make`]: `None` when there was nothing to queue.
fn make_one(dir: &Path, sid: &str, queue: &Enqueue) -> io::Result<Option<Manifest>> {
    let call_file = dir.join(format!("{sid}{CALL_SUFFIX}"));
    let caller = dir.join(format!("{sid}{CALLER_SUFFIX}"));
    let agent = dir.join(format!("{sid}{AGENT_SUFFIX}"));
    let json = std::fs::read(&call_file)?;
    let manifest: Manifest = match serde_json::from_slice(&json) {
        Ok(m) => m,
        Err(e) => {
            // Cut short by the kill (it is not synced): where the call goes is not known.
            tracing::warn!(call_sid = sid, error = %e, "a recording's manifest is unreadable: its files stay in the salvage folder");
            return Ok(None);
        }
    };
    if manifest.call_sid != sid {
        tracing::warn!(
            call_sid = sid,
            "a recording's manifest names another call: its files stay in the salvage folder"
        );
        return Ok(None);
    }
    // Regular files only (a symlink is not ours to follow); a missing track is silence.
    let len = |p: &Path| match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_file() => Ok(m.len()),
        Ok(_) => Err(io::Error::other(format!(
            "{} is not a regular file",
            p.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    };
    let samples = len(&caller)?.max(len(&agent)?);
    let made = if samples == 0 || queue.holds(sid) {
        // Nothing was recorded; or the crash came after the WAV was queued at hang-up:
        // the queue delivers that one (made to the call's end, not the tracks').
        None
    } else {
        let wav_path = dir.join(format!("{sid}.wav"));
        let bytes = wav::finalise(&caller, &agent, &wav_path, samples)?;
        let manifest = Manifest {
            duration_ms: samples / agent::SAMPLES_PER_MS,
            bytes,
            ..manifest
        };
        queue.put(&manifest, &wav_path)?;
        Some(manifest)
    };
    // The manifest first: without it the tracks are never made into a WAV again (a crash
    // here leaves tracks that the next start removes, not a WAV of one track that would
    // replace the one just queued).
    for p in [&call_file, &caller, &agent, &dir.join(format!("{sid}.wav"))] {
        remove(p)?;
    }
    Ok(made)
}
