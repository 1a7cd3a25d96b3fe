//! The durable upload queue: finished recordings wait on disk until their destination
//! confirmed them.
//!
//! An entry is two files in the queue directory: `<CallSid>.wav` and its manifest
//! `<CallSid>.json` (where it goes, for which tenant), written after the WAV and renamed
//! into place, so a manifest always names a complete WAV. A worker delivers entries
//! (S3, or a move into the local recordings directory), stores where the recording is
//! on the call record, and only then deletes the files. A failed delivery is retried
//! with backoff (1 s doubling to 5 min), other entries go on meanwhile. A restart finds
//! the entries again: the directory must outlive the process (and, in a cluster, the
//! pod).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_store::{CallRecording, RecordingRef, StoreOp, WriteBehind};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::metrics::RecordingMetrics;
use super::s3::{S3, S3Error, Upload};

/// Deliveries at once.
const CONCURRENCY: usize = 4;
/// First retry delay; doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Where a finished recording goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Destination {
    /// An S3 object.
    S3 {
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
        /// SSE-KMS key, if any.
        kms_key_id: Option<String>,
    },
    /// A file under the gateway's recordings directory (laptop mode).
    Local {
        /// Path relative to the recordings directory.
        key: String,
    },
}

/// A queue entry's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// CallSid (also the entry's file names).
    pub call_sid: String,
    /// Tenant.
    pub tenant: String,
    /// Where it goes.
    pub destination: Destination,
    /// Length, ms.
    pub duration_ms: u64,
    /// WAV size, bytes.
    pub bytes: u64,
}

/// Hands finished recordings to the queue (clones share the queue).
#[derive(Clone)]
pub struct Enqueue {
    dir: PathBuf,
    tx: mpsc::UnboundedSender<Manifest>,
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl Enqueue {
    /// Moves `wav` into the queue with its manifest (both synced to disk) and wakes the
    /// worker.
    pub async fn enqueue(&self, m: Manifest, wav: PathBuf) -> std::io::Result<()> {
        let dir = self.dir.clone();
        let json = serde_json::to_vec(&m).map_err(std::io::Error::other)?;
        let sid = m.call_sid.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::rename(&wav, dir.join(format!("{sid}.wav")))?;
            let part = dir.join(format!("{sid}.json.part"));
            write_synced(&part, &json)?;
            std::fs::rename(&part, dir.join(format!("{sid}.json")))?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))?;
        // The worker is gone only during shutdown: the entry waits on disk for the next
        // start.
        let _ = self.tx.send(m);
        Ok(())
    }
}

enum Ctl {
    Drain {
        until: Instant,
        done: oneshot::Sender<usize>,
    },
}

/// The queue's worker.
pub struct UploadQueue {
    enqueue: Enqueue,
    ctl: mpsc::UnboundedSender<Ctl>,
    task: JoinHandle<()>,
}

struct Entry {
    manifest: Manifest,
    attempts: u32,
    due: Instant,
    busy: bool,
}

struct Worker {
    dir: PathBuf,
    recordings_dir: PathBuf,
    s3: Arc<S3>,
    store: WriteBehind,
    metrics: RecordingMetrics,
    entries: HashMap<String, Entry>,
}

impl UploadQueue {
    /// Opens the queue in `dir` (entries a previous run left are found again) and starts
    /// its worker. `recordings_dir` is where local recordings go.
    pub fn start(
        dir: PathBuf,
        recordings_dir: PathBuf,
        s3: Arc<S3>,
        store: WriteBehind,
        metrics: RecordingMetrics,
    ) -> std::io::Result<UploadQueue> {
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let mut worker = Worker {
            dir: dir.clone(),
            recordings_dir,
            s3,
            store,
            metrics,
            entries: HashMap::new(),
        };
        worker.scan()?;
        let task = tokio::spawn(worker.run(rx, ctl_rx));
        Ok(UploadQueue {
            enqueue: Enqueue { dir, tx },
            ctl,
            task,
        })
    }

    /// The handle writers enqueue through.
    pub fn enqueue(&self) -> Enqueue {
        self.enqueue.clone()
    }

    /// Shutdown: keeps delivering until the queue is empty or `until`, then stops (what
    /// is left stays on disk for the next start). Returns the entries left.
    pub async fn drain(self, until: Instant) -> usize {
        let (done, rx) = oneshot::channel();
        if self.ctl.send(Ctl::Drain { until, done }).is_err() {
            return 0;
        }
        let left = rx.await.unwrap_or(0);
        let _ = self.task.await;
        left
    }
}

impl Worker {
    /// Finds the entries on disk.
    fn scan(&mut self) -> std::io::Result<()> {
        for e in std::fs::read_dir(&self.dir)? {
            let path = e?.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let manifest = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|e| e.to_string()));
            match manifest {
                Ok(m) if super::is_call_sid(&m.call_sid) => self.add(m),
                Ok(_) | Err(_) => {
                    tracing::error!(path = %path.display(), "unreadable recording manifest left in the queue");
                }
            }
        }
        if !self.entries.is_empty() {
            tracing::info!(
                entries = self.entries.len(),
                "recordings left by a previous run are queued for upload"
            );
        }
        Ok(())
    }

    fn add(&mut self, m: Manifest) {
        self.entries.entry(m.call_sid.clone()).or_insert(Entry {
            manifest: m,
            attempts: 0,
            due: Instant::now(),
            busy: false,
        });
        self.metrics.queue_depth.set(self.entries.len() as i64);
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Manifest>,
        mut ctl: mpsc::UnboundedReceiver<Ctl>,
    ) {
        let mut running: JoinSet<(String, Result<(), S3Error>, Duration)> = JoinSet::new();
        let mut drain: Option<(Instant, oneshot::Sender<usize>)> = None;
        loop {
            if let Some((until, _)) = &drain
                && (self.entries.is_empty() || Instant::now() >= *until)
            {
                break;
            }
            let can_start = drain.as_ref().is_none_or(|(u, _)| Instant::now() < *u);
            if can_start {
                let now = Instant::now();
                let due: Vec<String> = self
                    .entries
                    .iter()
                    .filter(|(_, e)| !e.busy && e.due <= now)
                    .map(|(k, _)| k.clone())
                    .take(CONCURRENCY.saturating_sub(running.len()))
                    .collect();
                for sid in due {
                    if let Some(e) = self.entries.get_mut(&sid) {
                        e.busy = true;
                        running.spawn(deliver(
                            e.manifest.clone(),
                            self.dir.clone(),
                            self.recordings_dir.clone(),
                            self.s3.clone(),
                        ));
                    }
                }
            }
            let next_due = self
                .entries
                .values()
                .filter(|e| !e.busy)
                .map(|e| e.due)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let wake = match &drain {
                Some((until, _)) => next_due.min(*until),
                None => next_due,
            };
            tokio::select! {
                Some(m) = rx.recv() => self.add(m),
                Some(Ctl::Drain { until, done }) = ctl.recv() => drain = Some((until, done)),
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    if let Ok((sid, result, took)) = joined {
                        self.finished(sid, result, took).await;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        // Deliveries still running at the deadline are abandoned: their files stay.
        running.abort_all();
        let left = self.entries.len();
        if left > 0 {
            tracing::warn!(
                entries = left,
                "recordings not uploaded before the drain deadline stay queued on disk for the next start"
            );
        }
        if let Some((_, done)) = drain {
            let _ = done.send(left);
        }
    }

    async fn finished(&mut self, sid: String, result: Result<(), S3Error>, took: Duration) {
        let Some(e) = self.entries.get_mut(&sid) else {
            return;
        };
        e.busy = false;
        match result {
            Ok(()) => {
                let m = e.manifest.clone();
                self.metrics.upload_seconds.observe(took.as_secs_f64());
                self.metrics.upload_bytes.inc_by(m.bytes);
                let (bucket, key) = match &m.destination {
                    Destination::S3 { bucket, key, .. } => (Some(bucket.clone()), key.clone()),
                    Destination::Local { key } => (None, key.clone()),
                };
                // The record op goes through the write-behind queue, which never drops
                // it (store down: spooled to disk).
                self.store
                    .submit(StoreOp::Recording(CallRecording {
                        call_sid: m.call_sid.clone(),
                        tenant: m.tenant.clone(),
                        recording: RecordingRef {
                            bucket,
                            key,
                            duration_ms: m.duration_ms,
                            bytes: m.bytes,
                        },
                    }))
                    .await;
                // Confirmed: now the local copy may go (the manifest last, so a crash in
                // between leaves a manifest whose retry finds the object re-uploadable
                // or the WAV gone, never a WAV without a manifest).
                let dir = self.dir.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = std::fs::remove_file(dir.join(format!("{sid}.wav")));
                    let _ = std::fs::remove_file(dir.join(format!("{sid}.json")));
                })
                .await;
                self.entries.remove(&m.call_sid);
                self.metrics.queue_depth.set(self.entries.len() as i64);
            }
            Err(err) => {
                e.attempts += 1;
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << e.attempts.min(16).saturating_sub(1))
                    .min(MAX_BACKOFF);
                e.due = Instant::now() + backoff;
                self.metrics
                    .upload_failures
                    .with_label_values(&[err.kind])
                    .inc();
                if e.attempts <= 3 || e.attempts.is_power_of_two() {
                    tracing::warn!(call_sid = sid, tenant = e.manifest.tenant, attempts = e.attempts, retry_in_s = backoff.as_secs(), error = %err, "recording upload failed; will retry");
                }
            }
        }
    }
}

/// Delivers one entry: S3 upload, or a move into the recordings directory.
async fn deliver(
    m: Manifest,
    dir: PathBuf,
    recordings_dir: PathBuf,
    s3: Arc<S3>,
) -> (String, Result<(), S3Error>, Duration) {
    let t0 = Instant::now();
    let wav = dir.join(format!("{}.wav", m.call_sid));
    let result = match &m.destination {
        Destination::S3 {
            bucket,
            key,
            kms_key_id,
        } => {
            if tokio::fs::try_exists(&wav).await.unwrap_or(false) {
                let upload = Upload {
                    bucket,
                    key,
                    kms_key_id: kms_key_id.as_deref(),
                    tenant: &m.tenant,
                    call_sid: &m.call_sid,
                };
                s3.put(upload, &wav).await.map(|_| ())
            } else {
                // Uploaded before a crash that left only the manifest.
                tracing::warn!(
                    call_sid = m.call_sid,
                    "queued recording has no WAV left; recording its key"
                );
                Ok(())
            }
        }
        Destination::Local { key } => {
            let to = recordings_dir.join(key);
            let from = wav.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if from.exists() {
                    std::fs::rename(&from, &to)?;
                }
                Ok::<(), std::io::Error>(())
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|e| S3Error {
                kind: "local_io",
                message: e.to_string(),
            })
        }
    };
    (m.call_sid, result, t0.elapsed())
}
