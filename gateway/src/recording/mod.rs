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
