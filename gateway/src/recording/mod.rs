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
//! - [`salvage`]: at startup, the recordings of calls a killed gateway did not finish.
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
pub mod salvage;
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

/// Why a local recording key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalKeyError {
    /// Not a relative path of plain names ending in `.wav` (`..`, `/`, `.`, a drive).
    #[error("not a relative path of plain names ending in .wav")]
    NotPlain,
    /// Names one of the gateway's own working folders (live tracks, the upload queue).
    #[error("names a working folder of the gateway")]
    WorkingFolder,
    /// The file does not exist (or cannot be resolved).
    #[error("no such file")]
    Missing,
    /// Resolves (through a link) outside the recordings directory.
    #[error("resolves outside the recordings directory")]
    Outside,
}

/// `key` as a path under the recordings directory, when it is a local recording's key as
/// [`object_key`] makes them: a relative path of plain names ending in `.wav`, not in
/// the gateway's working folders. Keys come from records and queue manifests, which
/// others may write (a shared database, a queue volume shared by a tenant's pods).
pub fn check_local_key(key: &str) -> Result<&Path, LocalKeyError> {
    use std::path::Component;
    let rel = Path::new(key);
    let plain = !key.is_empty()
        && !key.contains('\\')
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(n) if n.to_str().is_some()))
        && rel.extension().is_some_and(|e| e == "wav");
    if !plain {
        return Err(LocalKeyError::NotPlain);
    }
    if matches!(
        rel.components().next(),
        Some(Component::Normal(first)) if first == "work" || first == "queue"
    ) {
        return Err(LocalKeyError::WorkingFolder);
    }
    Ok(rel)
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
        let salvaged = salvage::sort(&work);
        let qdir = dir.join("queue");
        let queue = UploadQueue::start(
            qdir.clone(),
            dir.clone(),
            s3.clone(),
            store.clone(),
            metrics.clone(),
        )
        .map_err(dir_err(&qdir))?;
        let writer = writer::Writer::start(work.clone(), queue.enqueue(), metrics.clone())
            .map_err(RecordingError::Writer)?;
        if !salvaged.is_empty() {
            let (enqueue, m) = (queue.enqueue(), metrics.clone());
            let dir = work.join(salvage::DIR);
            let job = move || salvage::make(&dir, &salvaged, &enqueue, &m);
            match tokio::runtime::Handle::try_current() {
                // In the background: the gateway serves meanwhile (a start after many
                // killed calls would otherwise outlast its startup probe).
                Ok(rt) => {
                    let files = queue.enqueue();
                    rt.spawn(async move {
                        if let Err(e) = files.wavs().run(job).await {
                            tracing::error!(error = %e, "salvaging recordings failed; their files stay for the next start");
                        }
                    });
                }
                Err(_) => {
                    job();
                }
            }
        }
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

        // Tracks with no manifest (a crash after a finished call's manifest went), a
        // staging file, and a file that is not a call's.
        let orphan = "CAdddddddddddddddddddddddddddddddd";
        std::fs::write(file(orphan, writer::AGENT_SUFFIX), [1u8; 160]).expect("agent");
        std::fs::write(file(orphan, writer::STAGING_SUFFIX), [1u8; 160]).expect("staging");
        std::fs::write(work.join("notes.txt"), b"not ours").expect("notes");

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
        // Sorted out before the start returned.
        let salvage = work.join(salvage::DIR);
        assert!(!file(orphan, writer::AGENT_SUFFIX).exists());
        assert!(!file(orphan, writer::STAGING_SUFFIX).exists());
        assert!(work.join("notes.txt").exists());

        let delivered = data.path().join("recordings").join(&key);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !delivered.exists() {
            assert!(std::time::Instant::now() < deadline, "no WAV delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(recordings.metrics.salvaged.get(), 1);
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
            assert!(!salvage.join(format!("{SID}{suffix}")).exists(), "{suffix}");
        }
        // Not provably the call's own: kept aside for a person to look at.
        for sid in [other, cut] {
            for suffix in [writer::CALLER_SUFFIX, writer::CALL_SUFFIX] {
                assert!(
                    salvage.join(format!("{sid}{suffix}")).exists(),
                    "{sid}{suffix}"
                );
            }
        }
        recordings.drain(tokio::time::Instant::now()).await;
    }
}
