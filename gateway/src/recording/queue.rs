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
//!
//! Several uploaders may share the directory (gateway pods on one volume, or a pod
//! restarted while another still runs): each entry is delivered by the one that claims
//! it ([`super::claim`]: an exclusive claim file, a heartbeat while delivering, taken
//! over after the stale timeout), and each uploader re-reads the directory every
//! [`QueueOptions::rescan`] to find entries others enqueued or abandoned.

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

use super::claim::{self, Claimed};
use super::files::Files;
use super::metrics::RecordingMetrics;
use super::s3::{S3, S3Error, Upload};

/// Deliveries at once.
const CONCURRENCY: usize = 4;
/// First retry delay; doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How an uploader shares the queue directory with others.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// This uploader's id in its claims (unique per process).
    pub owner: String,
    /// A claim not touched for this long belongs to an uploader that died: it is taken
    /// over.
    pub stale_claim: Duration,
    /// How often a delivering uploader touches its claim (well under `stale_claim`).
    pub heartbeat: Duration,
    /// How often the directory is re-read for entries other uploaders enqueued or left.
    pub rescan: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "gateway".into());
        let mut nonce = [0u8; 4];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        Self {
            owner: format!("{host}-{}-{}", std::process::id(), hex::encode(nonce)),
            stale_claim: Duration::from_secs(120),
            heartbeat: Duration::from_secs(20),
            rescan: Duration::from_secs(30),
        }
    }
}

/// What one delivery attempt came to.
enum Outcome {
    /// Delivered (or failed) by this uploader, which holds the claim.
    Delivered(Result<(), S3Error>),
    /// Another uploader holds the entry.
    Held,
    /// The entry is gone: another uploader delivered it.
    Gone,
}

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
    wavs: Files,
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Moves `from` to `to`: a rename, or across file systems (the queue on a volume shared
/// by a tenant's pods, the work directory on the pod's disk) a synced copy renamed into
/// place, then the original removed. `to` never names a partial file.
fn move_into(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => copy_into(from, to),
        other => other,
    }
}

/// The copy half of [`move_into`].
fn copy_into(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut part = to.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    {
        let mut src = std::fs::File::open(from)?;
        let mut dst = std::fs::File::create(&part)?;
        std::io::copy(&mut src, &mut dst)?;
        dst.sync_all()?;
    }
    std::fs::rename(&part, to)?;
    std::fs::remove_file(from)
}

impl Enqueue {
    /// Moves `wav` into the queue with its manifest (both synced to disk). Blocking: run
    /// it on [`Enqueue::wavs`], then [`Enqueue::wake`] the worker.
    pub fn put(&self, m: &Manifest, wav: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(m).map_err(std::io::Error::other)?;
        let (dir, sid) = (&self.dir, &m.call_sid);
        move_into(wav, &dir.join(format!("{sid}.wav")))?;
        let part = dir.join(format!("{sid}.json.part"));
        write_synced(&part, &json)?;
        std::fs::rename(&part, dir.join(format!("{sid}.json")))?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Whether the queue holds an entry for `call_sid` (its manifest is in place).
    pub fn holds(&self, call_sid: &str) -> bool {
        self.dir.join(format!("{call_sid}.json")).exists()
    }

    /// Tells the worker about an entry [`Enqueue::put`] wrote. The worker is gone only
    /// during shutdown: the entry then waits on disk for the next start.
    pub fn wake(&self, m: Manifest) {
        let _ = self.tx.send(m);
    }

    /// The threads WAVs are made and queued on (not the queue's own: its claims and
    /// heartbeats must not wait behind a WAV).
    pub fn wavs(&self) -> &Files {
        &self.wavs
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
    options: QueueOptions,
    dir: PathBuf,
    recordings_dir: PathBuf,
    s3: Arc<S3>,
    store: WriteBehind,
    metrics: RecordingMetrics,
    entries: HashMap<String, Entry>,
    /// Manifests already reported unreadable (reported once, not every rescan).
    unreadable: Vec<PathBuf>,
    files: Files,
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
        Self::start_with(
            dir,
            recordings_dir,
            s3,
            store,
            metrics,
            QueueOptions::default(),
        )
    }

    /// [`UploadQueue::start`] with how the directory is shared.
    pub fn start_with(
        dir: PathBuf,
        recordings_dir: PathBuf,
        s3: Arc<S3>,
        store: WriteBehind,
        metrics: RecordingMetrics,
        options: QueueOptions,
    ) -> std::io::Result<UploadQueue> {
        std::fs::create_dir_all(&dir)?;
        let files = Files::start("recording-queue")?;
        let wavs = Files::start("recording-wav")?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let mut worker = Worker {
            options,
            dir: dir.clone(),
            recordings_dir,
            s3,
            store,
            metrics,
            entries: HashMap::new(),
            unreadable: Vec::new(),
            files: files.clone(),
        };
        worker.scan()?;
        let task = tokio::spawn(worker.run(rx, ctl_rx));
        Ok(UploadQueue {
            enqueue: Enqueue { dir, tx, wavs },
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
    /// Finds the entries on disk (at start, and every `rescan`: entries other uploaders
    /// enqueued or abandoned).
    fn scan(&mut self) -> std::io::Result<()> {
        let before = self.entries.len();
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
                // Another uploader removed it while it was read.
                Err(_) if !path.exists() => {}
                Ok(_) | Err(_) => {
                    if !self.unreadable.contains(&path) {
                        tracing::error!(path = %path.display(), "unreadable recording manifest left in the queue");
                        self.unreadable.push(path);
                    }
                }
            }
        }
        if self.entries.len() > before {
            tracing::info!(
                entries = self.entries.len() - before,
                "recordings found in the queue directory are queued for upload"
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
        let mut running: JoinSet<(String, Outcome, Duration)> = JoinSet::new();
        let mut drain: Option<(Instant, oneshot::Sender<usize>)> = None;
        let mut rescan_at = Instant::now() + self.options.rescan;
        loop {
            if Instant::now() >= rescan_at {
                if let Err(e) = self.scan() {
                    tracing::warn!(error = %e, "re-reading the recording queue directory failed");
                }
                rescan_at = Instant::now() + self.options.rescan;
            }
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
                            self.options.clone(),
                            self.files.clone(),
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
                None => next_due.min(rescan_at),
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
        // Deliveries still running at the deadline are abandoned: their files stay, and
        // their claims go so another uploader may take them at once.
        running.abort_all();
        for (sid, e) in &self.entries {
            if e.busy {
                claim::release(&self.dir, sid, &self.options.owner);
            }
        }
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

    async fn finished(&mut self, sid: String, outcome: Outcome, took: Duration) {
        let Some(e) = self.entries.get_mut(&sid) else {
            return;
        };
        e.busy = false;
        let result = match outcome {
            Outcome::Delivered(result) => result,
            Outcome::Held => {
                // Another uploader is on it: look again after its stale timeout could
                // have passed (or at the next rescan, which drops it once it is done).
                e.due = Instant::now() + self.options.rescan;
                return;
            }
            Outcome::Gone => {
                self.entries.remove(&sid);
                self.metrics.queue_depth.set(self.entries.len() as i64);
                return;
            }
        };
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
                let owner = self.options.owner.clone();
                let _ = self
                    .files
                    .run(move || {
                        let _ = std::fs::remove_file(dir.join(format!("{sid}.wav")));
                        let _ = std::fs::remove_file(dir.join(format!("{sid}.json")));
                        claim::release(&dir, &sid, &owner);
                    })
                    .await;
                self.entries.remove(&m.call_sid);
                self.metrics.queue_depth.set(self.entries.len() as i64);
            }
            Err(err) => {
                // Free for any uploader until the retry.
                claim::release(&self.dir, &sid, &self.options.owner);
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

/// Claims one entry and, when it is this uploader's, delivers it while touching the
/// claim.
async fn deliver(
    m: Manifest,
    dir: PathBuf,
    recordings_dir: PathBuf,
    s3: Arc<S3>,
    options: QueueOptions,
    files: Files,
) -> (String, Outcome, Duration) {
    let t0 = Instant::now();
    let claimed = {
        let (dir, sid, owner) = (dir.clone(), m.call_sid.clone(), options.owner.clone());
        files
            .run(move || {
                let claimed = claim::claim(&dir, &sid, &owner, options.stale_claim)?;
                // Claimed after another uploader finished and removed everything: gone.
                if claimed == Claimed::Mine && !dir.join(format!("{sid}.json")).exists() {
                    claim::release(&dir, &sid, &owner);
                    return Ok(None);
                }
                Ok::<_, std::io::Error>(Some(claimed))
            })
            .await
            .unwrap_or_else(|e| Err(e.into()))
    };
    match claimed {
        Ok(Some(Claimed::Mine)) => {}
        Ok(Some(Claimed::Held)) => return (m.call_sid, Outcome::Held, t0.elapsed()),
        Ok(None) => return (m.call_sid, Outcome::Gone, t0.elapsed()),
        Err(e) => {
            let err = S3Error {
                kind: "local_io",
                message: format!("claiming the entry: {e}"),
            };
            return (m.call_sid, Outcome::Delivered(Err(err)), t0.elapsed());
        }
    }
    let heartbeat = {
        let (dir, sid, owner) = (dir.clone(), m.call_sid.clone(), options.owner.clone());
        let files = files.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(options.heartbeat);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (d, s, o) = (dir.clone(), sid.clone(), owner.clone());
                let held = files
                    .run(move || claim::touch(&d, &s, &o))
                    .await
                    .unwrap_or(false);
                if !held {
                    tracing::warn!(
                        call_sid = sid,
                        "lost the claim on a recording being uploaded"
                    );
                    return;
                }
            }
        })
    };
    let (sid, result, took) = transfer(m, dir, recordings_dir, s3, &files, t0).await;
    heartbeat.abort();
    (sid, Outcome::Delivered(result), took)
}

/// Where a `Local` destination's `key` puts `call_sid`'s WAV under the recordings
/// directory, if it is a key we make for that call (see [`super::check_local_key`]).
fn local_target<'a>(key: &'a str, call_sid: &str) -> Option<&'a Path> {
    super::check_local_key(key).ok().filter(|rel| {
        rel.file_name()
            .is_some_and(|n| n == format!("{call_sid}.wav").as_str())
    })
}

/// Delivers one claimed entry: S3 upload, or a move into the recordings directory.
async fn transfer(
    m: Manifest,
    dir: PathBuf,
    recordings_dir: PathBuf,
    s3: Arc<S3>,
    files: &Files,
    t0: Instant,
) -> (String, Result<(), S3Error>, Duration) {
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
            // The manifest is on a volume the tenant's pods share: its key must be one
            // we make, for this call, before anything is moved to it.
            let Some(rel) = local_target(key, &m.call_sid) else {
                return (
                    m.call_sid.clone(),
                    Err(S3Error {
                        kind: "local_key",
                        message: format!("{key:?} is not a recording key of this call"),
                    }),
                    t0.elapsed(),
                );
            };
            let to = recordings_dir.join(rel);
            let from = wav.clone();
            files
                .run(move || {
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    if from.exists() {
                        std::fs::rename(&from, &to)?;
                    }
                    Ok::<(), std::io::Error>(())
                })
                .await
                .unwrap_or_else(|e| Err(e.into()))
                .map_err(|e| S3Error {
                    kind: "local_io",
                    message: e.to_string(),
                })
        }
    };
    (m.call_sid, result, t0.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest on the shared queue volume cannot move a WAV outside the recordings
    /// directory, into its working folders, or to another call's name.
    #[test]
    fn a_local_key_must_be_one_we_make_for_the_call() {
        let sid = "CA0123456789abcdef0123456789abcdef";
        let good = format!("demo/2026/12/07/{sid}.wav");
        assert_eq!(local_target(&good, sid), Some(Path::new(&good)));
        for bad in [
            format!("../{sid}.wav"),
            format!("/tmp/{sid}.wav"),
            format!("queue/{sid}.wav"),
            format!("work/{sid}.wav"),
            format!("demo/../../{sid}.wav"),
            "demo/2026/12/07/CAffffffffffffffffffffffffffffffff.wav".to_string(),
            format!("demo/{sid}.txt"),
            String::new(),
        ] {
            assert_eq!(local_target(&bad, sid), None, "{bad}");
        }
    }

    /// The path taken when the queue is on another file system than the work directory.
    #[test]
    fn a_copy_into_the_queue_is_whole_and_leaves_no_original_or_partial_file() {
        let work = tempfile::tempdir().expect("work dir");
        let queue = tempfile::tempdir().expect("queue dir");
        let from = work.path().join("CA1.wav");
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&from, &body).expect("write");
        let to = queue.path().join("CA1.wav");
        copy_into(&from, &to).expect("copy");
        assert_eq!(std::fs::read(&to).expect("read"), body);
        assert!(!from.exists());
        assert!(!queue.path().join("CA1.wav.part").exists());
        // A missing source fails and leaves nothing behind.
        assert!(copy_into(&from, &queue.path().join("CA2.wav")).is_err());
        assert!(!queue.path().join("CA2.wav").exists());
        // The same file system: a rename.
        std::fs::write(&from, b"x").expect("write");
        move_into(&from, &work.path().join("moved.wav")).expect("move");
        assert!(!from.exists());
    }
}
