//! Call recordings made by the gateway: two channels, the caller as received and the
//! agent as the caller heard it.
//!
//! - [`agent`]: when the caller heard the agent's audio (mark echoes), cut at a clear.
//! - [`batch`]: a call's events on their way to the writer, encoded in one buffer.
//! - [`wav`]: the track files during a call and the WAV (16-bit PCM, 8 kHz, stereo).
//! - [`writer`]: a call's [`Recorder`] (fed by the call task, never waits for the disk)
//!   and the writer thread shared by all calls.
//! - [`queue`]: the durable upload queue (files + manifests; survives restarts).
//! - [`files`]: the small thread pools the WAVs and the queue's file work run on.
//! - [`claim`]: which uploader delivers a queued recording (claim files).
//! - [`s3`]: uploads, listing and deletes in S3.
//! - [`retention`]: the sweeper that deletes expired recordings and clears their keys.
//!
//! Directories: `<data dir>/recordings/work` (track files of live calls, on the pod's own
//! disk), and in the recordings directory (`--recordings-dir`, by default
//! `<data dir>/recordings`; in a cluster a volume the tenant's pods share, that outlives
//! them) `queue/` (finished WAVs waiting for their destination) and
//! `<tenant>/yyyy/mm/dd/<CallSid>.wav` for tenants without a bucket.

pub mod agent;
pub mod batch;
pub mod claim;
pub mod files;
pub mod metrics;
pub mod queue;
pub mod retention;
pub mod s3;
pub mod wav;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use switchboard_crds::RecordingSpec;
use switchboard_store::WriteBehind;

pub use metrics::RecordingMetrics;
pub use queue::{Destination, QueueOptions, UploadQueue};
pub use s3::S3;
pub use writer::{CallInfo, Recorded, Recorder};

/// Removes the staging files a previous run left in `work` (a crash or a kill mid-call):
/// they hold agent audio of calls that are over and are of no use. Only files named
/// `<CallSid>.agent.staging` are touched, and the directory is this process's alone: the
/// data directory's spool is locked before the recordings start (see `server.rs`).
fn remove_staging_files(work: &Path) {
    let Ok(entries) = std::fs::read_dir(work) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(sid) = name
            .to_str()
            .and_then(|n| n.strip_suffix(writer::STAGING_SUFFIX))
        else {
            continue;
        };
        if is_call_sid(sid)
            && let Err(err) = std::fs::remove_file(e.path())
        {
            tracing::warn!(path = %e.path().display(), error = %err, "could not remove a staging file left by a previous run");
        }
    }
}

/// Makes the WAVs of calls a previous run did not finish (killed mid-call, or its WAV
/// failed) from what their track files hold, and queues them: each such call left its
/// manifest, `<CallSid>.call.json`, next to its tracks. The recording ends where the
/// longer track ends. Done at startup, before the writer starts, in `work`, which is this
/// process's alone (see [`remove_staging_files`]); only files named by a CallSid whose
/// manifest names the same CallSid are read or removed. What fails stays for the next
/// start. Returns how many were queued.
fn salvage(work: &Path, queue: &queue::Enqueue, metrics: &RecordingMetrics) -> usize {
    let Ok(entries) = std::fs::read_dir(work) else {
        return 0;
    };
    let sids: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let sid = name.strip_suffix(writer::CALL_SUFFIX)?;
            is_call_sid(sid).then(|| sid.to_string())
        })
        .collect();
    let mut queued = 0;
    for sid in sids {
        match salvage_one(work, &sid, queue) {
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

/// [`salvage`] of one call: `None` when there was nothing to make (no audio written, or
/// a manifest that is not this call's).
fn salvage_one(
    work: &Path,
    sid: &str,
    queue: &queue::Enqueue,
) -> std::io::Result<Option<queue::Manifest>> {
    let call_file = work.join(format!("{sid}{}", writer::CALL_SUFFIX));
    let caller = work.join(format!("{sid}{}", writer::CALLER_SUFFIX));
    let agent = work.join(format!("{sid}{}", writer::AGENT_SUFFIX));
    let json = std::fs::read(&call_file)?;
    let manifest: queue::Manifest = match serde_json::from_slice(&json) {
        Ok(m) => m,
        Err(e) => {
            // Cut short by the kill (it is not synced): the call's destination is not
            // known, so its tracks cannot go anywhere.
            tracing::warn!(call_sid = sid, error = %e, "a recording's manifest is unreadable: its track files stay in the work directory");
            return Ok(None);
        }
    };
    if manifest.call_sid != sid {
        tracing::warn!(
            call_sid = sid,
            "a recording's manifest names another call: left alone"
        );
        return Ok(None);
    }
    let len = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    };
    let samples = len(&caller)?.max(len(&agent)?);
    let made = if samples == 0 {
        None
    } else {
        let wav_path = work.join(format!("{sid}.wav"));
        let bytes = wav::finalise(&caller, &agent, &wav_path, samples)?;
        let manifest = queue::Manifest {
            duration_ms: samples / agent::SAMPLES_PER_MS,
            bytes,
            ..manifest
        };
        queue.put(&manifest, &wav_path)?;
        Some(manifest)
    };
    for p in [&caller, &agent, &call_file] {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(made)
}

/// Whether `s` is a Twilio CallSid (`CA` + 32 hex digits): safe as a file name and key.
pub fn is_call_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("CA") && s.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

/// `<prefix>/<tenant>/` (the prefix's leading and trailing `/` ignored; no prefix:
/// `<tenant>/`).
pub fn tenant_prefix(prefix: Option<&str>, tenant: &str) -> String {
    match prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        Some(p) => format!("{p}/{tenant}/"),
        None => format!("{tenant}/"),
    }
}

/// The object key (or local path) of a call's recording:
/// `<prefix>/<tenant>/<yyyy>/<mm>/<dd>/<CallSid>.wav`, dated by the call's start (UTC).
pub fn object_key(
    prefix: Option<&str>,
    tenant: &str,
    started_unix_ms: i64,
    call_sid: &str,
) -> String {
    let date = jiff::Timestamp::from_millisecond(started_unix_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y/%m/%d");
    format!("{}{date}/{call_sid}.wav", tenant_prefix(prefix, tenant))
}

/// Why recordings could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// A directory could not be created or read.
    #[error("recordings directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("recording writer thread: {0}")]
    Writer(std::io::Error),
    /// Metrics registration.
    #[error("recording metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The gateway's recordings: where they are written and the queue that delivers them.
pub struct Recordings {
    dir: PathBuf,
    queue: std::sync::Mutex<Option<UploadQueue>>,
    writer: writer::Writer,
    metrics: RecordingMetrics,
    s3: Arc<S3>,
    store: WriteBehind,
}

impl Recordings {
    /// Sets up `<data_dir>/recordings` and starts the upload queue (which picks up what a
    /// previous run left).
    pub fn start(
        data_dir: &Path,
        s3: Arc<S3>,
        store: WriteBehind,
        registry: &prometheus::Registry,
    ) -> Result<Recordings, RecordingError> {
        Self::start_with_dir(data_dir, &data_dir.join("recordings"), s3, store, registry)
    }

    /// [`Recordings::start`] with the queue (`<dir>/queue`) and the local recordings in
    /// `dir`, which may be a volume of its own shared with other gateways; the track files
    /// of live calls stay in `<data_dir>/recordings/work`.
    pub fn start_with_dir(
        data_dir: &Path,
        dir: &Path,
        s3: Arc<S3>,
        store: WriteBehind,
        registry: &prometheus::Registry,
    ) -> Result<Recordings, RecordingError> {
        let metrics = RecordingMetrics::register(registry)?;
        let dir = dir.to_path_buf();
        // Written at every frame's pace: on the pod's own disk, never a network volume.
        let work = data_dir.join("recordings").join("work");
        let dir_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RecordingError::Dir { path, source }
        };
        std::fs::create_dir_all(&work).map_err(dir_err(&work))?;
        remove_staging_files(&work);
        let qdir = dir.join("queue");
        let queue = UploadQueue::start(
            qdir.clone(),
            dir.clone(),
            s3.clone(),
            store.clone(),
            metrics.clone(),
        )
        .map_err(dir_err(&qdir))?;
        salvage(&work, &queue.enqueue(), &metrics);
        let writer = writer::Writer::start(work.clone(), queue.enqueue(), metrics.clone())
            .map_err(RecordingError::Writer)?;
        Ok(Recordings {
            writer,
            queue: std::sync::Mutex::new(Some(queue)),
            dir,
            metrics,
            s3,
            store,
        })
    }

    /// The recorder of a call, if its tenant records calls. `origin` is when the media
    /// stream started (the recording's time zero).
    pub fn begin(
        &self,
        spec: Option<&RecordingSpec>,
        tenant: &str,
        call_sid: &str,
        started_unix_ms: i64,
        max_call_ms: u64,
        origin: Instant,
    ) -> Option<Recorder> {
        let spec = spec.filter(|s| s.enabled)?;
        if !is_call_sid(call_sid) {
            tracing::warn!(
                call_sid,
                "not recording a call whose CallSid is not CA + 32 hex"
            );
            return None;
        }
        let key = object_key(spec.prefix.as_deref(), tenant, started_unix_ms, call_sid);
        let destination = match &spec.bucket {
            Some(bucket) => Destination::S3 {
                bucket: bucket.clone(),
                key,
                kms_key_id: spec.kms_key_id.clone(),
            },
            None => Destination::Local { key },
        };
        Some(self.writer.recorder(
            CallInfo {
                call_sid: call_sid.to_string(),
                tenant: tenant.to_string(),
                destination,
                max_call_ms,
            },
            origin,
        ))
    }

    /// The local recordings directory (recordings of tenants without a bucket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The S3 client of recordings (uploads, presigned download links).
    pub fn s3(&self) -> &S3 {
        &self.s3
    }

    /// The retention sweeper.
    pub fn sweeper(&self) -> retention::Sweeper {
        retention::Sweeper {
            s3: self.s3.clone(),
            recordings_dir: self.dir.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Shutdown: uploads go on until the queue is empty or `until`; the rest stays on
    /// disk for the next start. Returns how many are left.
    pub async fn drain(&self, until: tokio::time::Instant) -> usize {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match queue {
            Some(q) => q.drain(until).await,
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use switchboard_store::queue::QueueMetrics;
    use switchboard_store::{WriteBehind, WriteBehindConfig};

    use super::queue::Manifest;
    use super::*;

    const SID: &str = "CA0123456789abcdef0123456789abcdef";

    fn manifest(sid: &str, key: &str) -> Vec<u8> {
        serde_json::to_vec(&Manifest {
            call_sid: sid.into(),
            tenant: "demo".into(),
            destination: Destination::Local { key: key.into() },
            duration_ms: 0,
            bytes: 0,
        })
        .expect("json")
    }

    /// A gateway killed mid-call left the call's track files and manifest: the next start
    /// makes the WAV of what they hold and delivers it; what is not provably a call's own
    /// is left alone.
    #[tokio::test]
    async fn a_call_the_previous_run_did_not_finish_is_recorded_at_the_next_start() {
        let data = tempfile::tempdir().expect("data dir");
        let work = data.path().join("recordings/work");
        std::fs::create_dir_all(&work).expect("work dir");
        let file = |sid: &str, suffix: &str| work.join(format!("{sid}{suffix}"));
        // 200 ms of caller audio, 100 ms of agent audio, as the writer stores them.
        std::fs::write(
            file(SID, writer::CALLER_SUFFIX),
            vec![wav::to_track(0x22); 1600],
        )
        .expect("caller");
        std::fs::write(
            file(SID, writer::AGENT_SUFFIX),
            vec![wav::to_track(0x33); 800],
        )
        .expect("agent");
        let key = format!("demo/2026/12/07/{SID}.wav");
        std::fs::write(file(SID, writer::CALL_SUFFIX), manifest(SID, &key)).expect("manifest");
        // A manifest that names another call, and one cut short by the kill.
        let other = "CAffffffffffffffffffffffffffffffff";
        std::fs::write(file(other, writer::CALLER_SUFFIX), [1u8; 160]).expect("caller");
        std::fs::write(file(other, writer::CALL_SUFFIX), manifest(SID, "x.wav")).expect("json");
        let cut = "CAeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
        std::fs::write(file(cut, writer::CALLER_SUFFIX), [1u8; 160]).expect("caller");
        std::fs::write(
            file(cut, writer::CALL_SUFFIX),
            &manifest(cut, "y.wav")[..20],
        )
        .expect("json");

        let metrics = crate::metrics::Metrics::new().expect("metrics");
        let store = switchboard_store::open(&format!(
            "sqlite:{}",
            data.path().join("calls.db").display()
        ))
        .await
        .expect("store");
        let (store, _task) = WriteBehind::start(
            store,
            WriteBehindConfig {
                capacity: 16,
                spool_dir: data.path().join("spool"),
                retry_interval: Duration::from_secs(60),
            },
            QueueMetrics {
                depth: metrics.store_queue_depth.clone(),
                spooled: metrics.store_spooled.clone(),
                rejected: metrics.store_rejected.clone(),
            },
        )
        .expect("write-behind");
        let recordings = Recordings::start(
            data.path(),
            Arc::new(S3::new(Default::default())),
            store,
            metrics.registry(),
        )
        .expect("recordings");
        assert_eq!(recordings.metrics.salvaged.get(), 1);

        let delivered = data.path().join("recordings").join(&key);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !delivered.exists() {
            assert!(std::time::Instant::now() < deadline, "no WAV delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let body = std::fs::read(&delivered).expect("wav");
        assert_eq!(body.len() as u64, wav::wav_bytes(1600));
        assert_eq!(&body[..44], &wav::header(1600));
        let frame = |i: usize| -> (i16, i16) {
            let b = &body[44 + 4 * i..48 + 4 * i];
            (
                i16::from_le_bytes([b[0], b[1]]),
                i16::from_le_bytes([b[2], b[3]]),
            )
        };
        let (caller, agent) = (wav::ulaw_to_pcm(0x22), wav::ulaw_to_pcm(0x33));
        assert_eq!(frame(0), (caller, agent));
        assert_eq!(frame(799), (caller, agent));
        assert_eq!(frame(800), (caller, 0), "the agent's track ended: silence");
        assert_eq!(frame(1599), (caller, 0));
        for suffix in [
            writer::CALLER_SUFFIX,
            writer::AGENT_SUFFIX,
            writer::CALL_SUFFIX,
        ] {
            assert!(!file(SID, suffix).exists(), "{suffix}");
        }
        for sid in [other, cut] {
            assert!(file(sid, writer::CALLER_SUFFIX).exists(), "{sid}");
            assert!(file(sid, writer::CALL_SUFFIX).exists(), "{sid}");
        }
        recordings.drain(tokio::time::Instant::now()).await;
    }
}
