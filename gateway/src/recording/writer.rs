//! One call's recording while it runs: the [`Recorder`] the call task feeds, and the
//! writer task that owns the call's track files.
//!
//! The call task never waits for the disk: events are collected in a small batch and each
//! full batch is `try_send` to a bounded channel (a full channel drops the batch and counts
//! its events), and the writer task does the file writes off the async threads. Batching
//! wakes the writer once per [`BATCH`] events instead of once per frame (a call makes
//! about 150 events a second: caller frames, agent chunks, mark echoes); every event
//! carries its own time, so what is recorded does not depend on when the writer sees it.
//! Memory per call stays bounded: the batch, the channel, one small buffer per track, and
//! the agent audio not yet heard (see [`super::agent`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::agent::{AgentTrack, Placement, SAMPLES_PER_MS};
use super::metrics::RecordingMetrics;
use super::queue::{Destination, Enqueue, Manifest};
use super::wav;

/// Events collected before they are handed to the writer (≈ 0.2 s of a talking call);
/// the call task also hands over a partial batch on its 250 ms tick.
const BATCH: usize = 32;
/// Batches a call's channel holds before further ones are dropped (≈ 256 events, 1.7 s of
/// caller frames with the agent's chunks and echoes: the writer is far behind by then).
const CHANNEL: usize = 8;
/// Bytes a track buffers before a write (0.5 s of audio).
const TRACK_BUFFER: usize = 4096;
/// Caller audio placed later than the call may last (plus this slack) is refused: the
/// timestamp is the peer's number.
const SLACK_MS: u64 = 60_000;

/// What the call's state machine reports for the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Agent audio (µ-law) forwarded to Twilio, followed by `mark`.
    AgentAudio {
        /// The mark sent after it.
        mark: String,
        /// The audio.
        audio: Vec<u8>,
    },
    /// A barge-in's `clear` was sent.
    Cleared,
}

#[derive(Debug)]
enum Event {
    Caller {
        ts_ms: u64,
        audio: Vec<u8>,
    },
    Agent {
        mark: String,
        audio: Vec<u8>,
        at_ms: u64,
    },
    Echo {
        mark: String,
        at_ms: u64,
    },
    Clear {
        at_ms: u64,
    },
    End {
        at_ms: u64,
    },
}

/// What the recording of one call is, fixed when it starts.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// Twilio CallSid (checked: `CA` + 32 hex, so it is safe in a file name).
    pub call_sid: String,
    /// Tenant name.
    pub tenant: String,
    /// Where the finished recording goes.
    pub destination: Destination,
    /// Hard limit of the call, ms.
    pub max_call_ms: u64,
}

/// The call task's handle on its recording.
pub struct Recorder {
    tx: mpsc::Sender<Vec<Event>>,
    batch: Vec<Event>,
    origin: Instant,
    end: Option<Instant>,
    metrics: RecordingMetrics,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Starts the writer of one call whose media stream started at `origin`; tracks go
    /// to `work_dir`, the finished WAV to the upload queue.
    pub(super) fn start(
        info: CallInfo,
        origin: Instant,
        work_dir: PathBuf,
        queue: Enqueue,
        metrics: RecordingMetrics,
    ) -> Recorder {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let task = tokio::spawn(write(info, rx, work_dir, queue, metrics.clone()));
        Recorder {
            tx,
            batch: Vec::with_capacity(BATCH),
            origin,
            end: None,
            metrics,
            task,
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    fn send(&mut self, e: Event) {
        self.batch.push(e);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// Hands the events collected so far to the writer (the call task calls it on its
    /// tick, so a call that went quiet is not recorded late).
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        if let Err(e) = self.tx.try_send(batch) {
            let lost = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => b,
            };
            self.metrics.dropped.inc_by(lost.len() as u64);
        }
    }

    /// Caller audio (Twilio `media`: its timestamp and base64 payload, already validated).
    pub fn caller(&mut self, ts_ms: u64, payload: &str) {
        let mut audio = Vec::with_capacity(payload.len() * 3 / 4);
        if STANDARD.decode_vec(payload, &mut audio).is_ok() {
            self.send(Event::Caller { ts_ms, audio });
        }
    }

    /// Twilio echoed `mark` at `at`.
    pub fn echo(&mut self, mark: &str, at: Instant) {
        self.send(Event::Echo {
            mark: mark.to_string(),
            at_ms: self.ms(at),
        });
    }

    /// What the state machine reported at `at`.
    pub fn recorded(&mut self, r: Recorded, at: Instant) {
        let at_ms = self.ms(at);
        self.send(match r {
            Recorded::AgentAudio { mark, audio } => Event::Agent { mark, audio, at_ms },
            Recorded::Cleared => Event::Clear { at_ms },
        });
    }

    /// The call ended at `at` (the first call counts).
    pub fn ended(&mut self, at: Instant) {
        self.end.get_or_insert(at);
    }

    /// Finishes the recording: the WAV is written and queued for upload before this
    /// returns (the call is over; this is not the audio path).
    pub async fn finish(mut self) {
        let at_ms = self.ms(self.end.unwrap_or_else(Instant::now));
        // Waits for room: the last events and the end must not be dropped.
        let mut last = std::mem::take(&mut self.batch);
        last.push(Event::End { at_ms });
        let _ = self.tx.send(last).await;
        drop(self.tx);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "recording writer failed");
        }
    }
}

/// A track file being written: a buffer of consecutive bytes not yet written.
struct Track {
    file: Option<Arc<File>>,
    path: PathBuf,
    buf: Vec<u8>,
    buf_at: u64,
}

type Job = (Arc<File>, u64, Vec<u8>);

impl Track {
    fn new(path: PathBuf) -> Track {
        Track {
            file: None,
            path,
            buf: Vec::new(),
            buf_at: 0,
        }
    }

    /// Puts µ-law `audio` at sample `at`; returns a write when the buffer is due.
    fn put(&mut self, at: u64, audio: &[u8], jobs: &mut Vec<Job>) -> std::io::Result<()> {
        let end = self.buf_at + self.buf.len() as u64;
        if self.buf.is_empty() {
            self.buf_at = at;
        } else if at != end {
            // Not contiguous (a gap, or audio placed over earlier audio): write what is
            // buffered; the gap stays a hole (silence).
            self.flush(jobs)?;
            self.buf_at = at;
        }
        self.buf.extend(audio.iter().map(|&b| wav::to_track(b)));
        if self.buf.len() >= TRACK_BUFFER {
            self.flush(jobs)?;
        }
        Ok(())
    }

    fn flush(&mut self, jobs: &mut Vec<Job>) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(File::create(&self.path)?);
                self.file = Some(f.clone());
                f
            }
        };
        let at = self.buf_at;
        self.buf_at += self.buf.len() as u64;
        jobs.push((file, at, std::mem::take(&mut self.buf)));
        Ok(())
    }
}

/// Runs `jobs` (positioned writes) on a blocking thread.
async fn run_jobs(jobs: Vec<Job>) -> std::io::Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    tokio::task::spawn_blocking(move || {
        for (file, at, bytes) in jobs {
            file.write_all_at(&bytes, at)?;
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

async fn write(
    info: CallInfo,
    mut rx: mpsc::Receiver<Vec<Event>>,
    work_dir: PathBuf,
    queue: Enqueue,
    metrics: RecordingMetrics,
) {
    let sid = info.call_sid.clone();
    let mut caller = Track::new(work_dir.join(format!("{sid}.caller.ulaw")));
    let mut agent = Track::new(work_dir.join(format!("{sid}.agent.ulaw")));
    let mut model = AgentTrack::default();
    let limit = (info.max_call_ms + SLACK_MS) * SAMPLES_PER_MS;
    let mut placed: Vec<Placement> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut batches = Vec::with_capacity(CHANNEL);
    let mut failed: Option<std::io::Error> = None;
    let mut end_ms = None;
    while end_ms.is_none() && rx.recv_many(&mut batches, CHANNEL).await > 0 {
        for e in batches.drain(..).flatten() {
            let result = match e {
                Event::Caller { ts_ms, audio } => {
                    let at = ts_ms.saturating_mul(SAMPLES_PER_MS);
                    if at > limit {
                        metrics.refused.inc();
                        Ok(())
                    } else {
                        caller.put(at, &audio, &mut jobs)
                    }
                }
                Event::Agent { mark, audio, at_ms } => {
                    model.sent(mark, audio, at_ms, &mut placed);
                    Ok(())
                }
                Event::Echo { mark, at_ms } => {
                    model.echoed(&mark, at_ms, &mut placed);
                    Ok(())
                }
                Event::Clear { at_ms } => {
                    model.cut(at_ms, &mut placed);
                    Ok(())
                }
                Event::End { at_ms } => {
                    model.cut(at_ms, &mut placed);
                    end_ms = Some(at_ms);
                    Ok(())
                }
            };
            let result = result.and_then(|()| {
                for p in placed.drain(..) {
                    if p.at <= limit {
                        agent.put(p.at, &p.audio, &mut jobs)?;
                    }
                }
                Ok(())
            });
            if let Err(e) = result {
                failed.get_or_insert(e);
            }
        }
        if failed.is_none()
            && let Err(e) = run_jobs(std::mem::take(&mut jobs)).await
        {
            failed = Some(e);
        }
        jobs.clear();
    }
    // The channel closed without an end (the call task died): end where the audio ends.
    let end_ms = end_ms.unwrap_or((caller.buf_at + caller.buf.len() as u64) / SAMPLES_PER_MS);
    let result = async {
        if let Some(e) = failed {
            return Err(e);
        }
        let mut jobs = Vec::new();
        caller.flush(&mut jobs)?;
        agent.flush(&mut jobs)?;
        run_jobs(jobs).await?;
        let samples = end_ms * SAMPLES_PER_MS;
        let (caller_path, agent_path) = (caller.path.clone(), agent.path.clone());
        drop((caller, agent));
        let wav_path = work_dir.join(format!("{sid}.wav"));
        let out = wav_path.clone();
        let (cp, ap) = (caller_path.clone(), agent_path.clone());
        let bytes = tokio::task::spawn_blocking(move || wav::finalise(&cp, &ap, &out, samples))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))?;
        metrics.disk_bytes.inc_by(bytes);
        let manifest = Manifest {
            call_sid: sid.clone(),
            tenant: info.tenant.clone(),
            destination: info.destination.clone(),
            duration_ms: end_ms,
            bytes,
        };
        queue.enqueue(manifest, wav_path).await?;
        for p in [caller_path, agent_path] {
            let _ = tokio::fs::remove_file(p).await;
        }
        Ok::<(), std::io::Error>(())
    }
    .await;
    if let Err(e) = result {
        metrics.write_errors.inc();
        tracing::error!(call_sid = sid, tenant = info.tenant, error = %e, "recording could not be written; its track files stay in the work directory");
    }
}
