//! Call recordings while calls run: each call's [`Recorder`] (fed by the call task, never
//! waits for the disk) and the one writer thread shared by all calls that owns their
//! track files.
//!
//! The call task collects events in a small batch (one buffer, see [`super::batch`]) and
//! `try_send`s each full batch (and a partial one after [`TICKS_BEFORE_FLUSH`] ticks of
//! 250 ms, so up to about a second of a quiet call's audio waits in it) to a bounded
//! channel shared by all calls; a full channel drops the batch and counts its events. The
//! writer thread does not sleep on the channel: it wakes every [`POLL`], takes everything
//! queued and writes it with positioned writes, so a call's send never wakes a thread and
//! no write is handed to tokio's blocking pool. Every event carries its own time, so what
//! is recorded does not depend on when the writer sees it. Memory per call stays small:
//! the batch (at most [`super::batch::FLUSH_BYTES`]), and in the writer about
//! [`super::agent::HELD_BYTES`] of the agent audio not yet heard (the rest waits in the
//! call's staging file; see [`super::agent`]); audio is written per batch from buffers
//! the writer shares between all calls, not buffered per call. WAVs are made on the recordings' few file
//! threads ([`super::files`]), so calls ending together queue instead of each holding a
//! thread.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::agent::{AgentTrack, Audio, Placement, SAMPLES_PER_MS};
use super::batch::{self, Batch, Event};
use super::metrics::RecordingMetrics;
use super::queue::{Destination, Enqueue, Manifest};
use super::wav;

/// Messages (batches) the shared channel holds: at 500 talking calls (≈ 5 batches of
/// [`super::batch::FLUSH_BYTES`] a second each) ≈ 1.6 s of the writer not running before
/// batches are dropped. The channel's slots are allocated up front (≈ 56 B each).
const CHANNEL: usize = 4096;
/// How often the writer thread takes what is queued.
const POLL: Duration = Duration::from_millis(20);
/// Rounds of [`POLL`] between updates of the agent-audio gauges (one second).
const GAUGE_ROUNDS: u64 = 50;
/// A gap this short (0.5 s) between a track's buffered audio and the next audio placed
/// after it is buffered as silence instead of ending the write (see [`Track::put`]).
const MAX_FILLED_GAP: u64 = 4_000;
/// Ticks of the call task (250 ms each) a partial batch waits before it is handed over.
/// Handing it over on every tick made about twice as many batches as full ones would
/// (one tick's audio is about [`super::batch::FLUSH_BYTES`]), and each batch is a
/// positioned write per track: the writer's largest cost (docs/performance.md,
/// "Recordings"). Events carry their own times, so waiting changes nothing recorded.
const TICKS_BEFORE_FLUSH: u8 = 4;
/// The staging file of a call's agent audio: `<CallSid>` and this.
pub(super) const STAGING_SUFFIX: &str = ".agent.staging";
/// A recorded call's track files: `<CallSid>` and these.
pub(super) const CALLER_SUFFIX: &str = ".caller.ulaw";
/// See [`CALLER_SUFFIX`].
pub(super) const AGENT_SUFFIX: &str = ".agent.ulaw";
/// What a recorded call's WAV becomes (its [`Manifest`], duration and size still 0),
/// written when the call's recording begins: `<CallSid>` and this. A gateway killed
/// mid-call leaves it next to the track files, and the next start makes their WAV
/// ([`super::salvage`]).
pub(super) const CALL_SUFFIX: &str = ".call.json";
/// How often `finish` retries handing over its last batch when the channel is full.
const RETRY: Duration = Duration::from_millis(5);
/// Caller audio placed later than the call may last (plus this slack) is refused: the
/// timestamp is the peer's number.
const SLACK_MS: u64 = 60_000;

/// What the call's state machine reports for the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Agent audio (µ-law) forwarded to Twilio, followed by the mark numbered `seq`.
    AgentAudio {
        /// The playback's sequence number of the mark sent after it.
        seq: u64,
        /// The audio.
        audio: Vec<u8>,
    },
    /// Twilio echoed the mark numbered `seq`: the audio before it has played. Only
    /// echoes the playback matched by their whole name come here, so nothing a peer
    /// names reaches the recorder.
    Played {
        /// The mark's sequence number.
        seq: u64,
    },
    /// A barge-in's `clear` was sent.
    Cleared,
}

/// What the writer returns when a call's recording ends: its track files, ready for the
/// WAV.
struct Finished {
    caller: PathBuf,
    agent: PathBuf,
    call_file: PathBuf,
    end_ms: u64,
    failed: Option<std::io::Error>,
}

enum Msg {
    Begin(u64, Box<CallWriter>),
    /// Encoded events of a call, and how many.
    Batch(u64, Vec<u8>, u64),
    /// The call ended at `at_ms` (`None`: where its caller audio ends); the reply goes to
    /// whoever finalises the WAV.
    End(u64, Option<u64>, oneshot::Sender<Finished>),
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

/// The writer shared by all calls of a gateway: the sending side of its channel.
#[derive(Clone)]
pub(super) struct Writer {
    tx: SyncSender<Msg>,
    ids: std::sync::Arc<AtomicU64>,
    work_dir: PathBuf,
    queue: Enqueue,
    metrics: RecordingMetrics,
}

impl Writer {
    /// Hands `m` to the writer thread; a batch's bytes count as queued until the thread
    /// takes it (`switchboard_recording_writer_queued_bytes`).
    fn try_send(&self, m: Msg) -> Result<(), TrySendError<Msg>> {
        let bytes = match &m {
            Msg::Batch(_, b, _) => gauge_value(b.len()),
            _ => 0,
        };
        self.tx.try_send(m)?;
        self.metrics.writer_queued_bytes.add(bytes);
        Ok(())
    }

    /// Starts the writer thread; track files go to `work_dir`, finished WAVs to `queue`.
    pub(super) fn start(
        work_dir: PathBuf,
        queue: Enqueue,
        metrics: RecordingMetrics,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = sync_channel(CHANNEL);
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("recording-writer".into())
            .spawn(move || run(rx, m))?;
        Ok(Writer {
            tx,
            ids: Default::default(),
            work_dir,
            queue,
            metrics,
        })
    }

    /// The recorder of one call whose media stream started at `origin`.
    pub(super) fn recorder(&self, info: CallInfo, origin: Instant) -> Recorder {
        let sid = &info.call_sid;
        let manifest = Manifest {
            call_sid: sid.clone(),
            tenant: info.tenant.clone(),
            destination: info.destination.clone(),
            duration_ms: 0,
            bytes: 0,
        };
        let state = CallWriter {
            caller: Track::new(self.work_dir.join(format!("{sid}{CALLER_SUFFIX}")), false),
            agent: Track::new(self.work_dir.join(format!("{sid}{AGENT_SUFFIX}")), true),
            staging: Track::new(self.work_dir.join(format!("{sid}{STAGING_SUFFIX}")), false),
            call_file: self.work_dir.join(format!("{sid}{CALL_SUFFIX}")),
            // A manifest of strings and numbers always serialises; empty would only mean
            // no salvage after a crash.
            call_json: serde_json::to_vec(&manifest).unwrap_or_default(),
            model: AgentTrack::default(),
            limit: (info.max_call_ms + SLACK_MS) * SAMPLES_PER_MS,
            failed: None,
        };
        Recorder {
            id: self.ids.fetch_add(1, Ordering::Relaxed),
            begin: Some(Box::new(state)),
            info: Some(info),
            writer: self.clone(),
            batch: Batch::default(),
            ticks_waited: 0,
            origin,
            end: None,
        }
    }
}

/// The call task's handle on its recording.
pub struct Recorder {
    id: u64,
    /// The call's writer state, until the writer has it.
    begin: Option<Box<CallWriter>>,
    /// `None` once finished.
    info: Option<CallInfo>,
    writer: Writer,
    batch: Batch,
    /// Ticks the current partial batch has waited.
    ticks_waited: u8,
    origin: Instant,
    end: Option<Instant>,
}

impl Recorder {
    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    /// Hands the batch over if an event of `bytes` would not fit in it.
    fn room(&mut self, bytes: usize) {
        if self.batch.would_overflow(bytes) {
            self.flush();
        }
    }

    /// Hands the batch over if it is full.
    fn sent(&mut self) {
        if self.batch.full() {
            self.flush();
        }
    }

    /// Hands `begin` over if the writer does not have it yet; false when the channel is
    /// full.
    fn try_begin(&mut self) -> bool {
        let Some(b) = self.begin.take() else {
            return true;
        };
        match self.writer.try_send(Msg::Begin(self.id, b)) {
            Ok(()) => true,
            Err(
                TrySendError::Full(Msg::Begin(_, b)) | TrySendError::Disconnected(Msg::Begin(_, b)),
            ) => {
                self.begin = Some(b);
                false
            }
            Err(_) => false,
        }
    }

    /// The call task's tick (every 250 ms): a partial batch is handed over once it has
    /// waited [`TICKS_BEFORE_FLUSH`] ticks, so a call that went quiet is not held back
    /// for long, and a talking call's batches are handed over full.
    pub fn tick(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.ticks_waited += 1;
        if self.ticks_waited >= TICKS_BEFORE_FLUSH {
            self.flush();
        }
    }

    /// Hands the events collected so far to the writer.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.ticks_waited = 0;
        let (batch, n) = self.batch.take();
        if !(self.try_begin() && self.writer.try_send(Msg::Batch(self.id, batch, n)).is_ok()) {
            self.writer.metrics.dropped.inc_by(n);
        }
    }

    /// Caller audio (Twilio `media`: its timestamp and base64 payload, already validated).
    pub fn caller(&mut self, ts_ms: u64, payload: &str) {
        self.room(batch::decoded_len(payload));
        // False only for a timestamp past 32 bits of ms (the peer's number; calls last an
        // hour at most), or base64 the parser let through (none).
        if !self.batch.caller_base64(ts_ms, payload) {
            self.writer.metrics.refused.inc();
        }
        self.sent();
    }

    /// What the state machine reported at `at`.
    pub fn recorded(&mut self, r: Recorded, at: Instant) {
        let at_ms = self.ms(at);
        // False only past 32 bits of ms since the call's media started (49 days; calls
        // last an hour at most) or for a chunk of 4 GiB: counted, never silently lost.
        let kept = match r {
            Recorded::AgentAudio { seq, audio } => {
                self.room(audio.len());
                self.batch.agent(seq, &audio, at_ms)
            }
            Recorded::Played { seq } => {
                self.room(0);
                self.batch.echo(seq, at_ms)
            }
            Recorded::Cleared => {
                self.room(0);
                self.batch.clear(at_ms)
            }
        };
        if !kept {
            self.writer.metrics.dropped.inc();
        }
        self.sent();
    }

    /// The call ended at `at` (the first call counts).
    pub fn ended(&mut self, at: Instant) {
        self.end.get_or_insert(at);
    }

    /// Finishes the recording: the WAV is written and queued for upload before this
    /// returns (the call is over; this is not the audio path).
    pub async fn finish(mut self) {
        let at_ms = self.ms(self.end.unwrap_or_else(Instant::now));
        self.close(Some(at_ms)).await;
    }

    /// Hands over what is left and the end, waiting for room (they must not be dropped),
    /// then writes the WAV and queues it.
    async fn close(&mut self, at_ms: Option<u64>) {
        let Some(info) = self.info.take() else {
            return;
        };
        let (batch, n) = self.batch.take();
        let (reply, finished) = oneshot::channel();
        let mut msgs = Vec::with_capacity(3);
        if let Some(b) = self.begin.take() {
            msgs.push(Msg::Begin(self.id, b));
        }
        if n > 0 {
            msgs.push(Msg::Batch(self.id, batch, n));
        }
        msgs.push(Msg::End(self.id, at_ms, reply));
        for mut m in msgs {
            loop {
                match self.writer.try_send(m) {
                    Ok(()) => break,
                    Err(TrySendError::Full(back)) => {
                        m = back;
                        tokio::time::sleep(RETRY).await;
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        tracing::error!(call_sid = info.call_sid, "recording writer stopped");
                        self.writer.metrics.write_errors.inc();
                        return;
                    }
                }
            }
        }
        match finished.await {
            Ok(f) => finalise(&info, f, &self.writer).await,
            Err(_) => {
                self.writer.metrics.write_errors.inc();
                tracing::error!(
                    call_sid = info.call_sid,
                    "the recording writer gave this call's recording up (a bug: see the log above) or stopped"
                );
            }
        }
    }
}

impl Drop for Recorder {
    /// A call task that ended without `finish` (it failed): the recording still ends,
    /// where its audio ends.
    fn drop(&mut self) {
        if self.info.is_none() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let mut rest = Recorder {
                id: self.id,
                begin: self.begin.take(),
                info: self.info.take(),
                writer: self.writer.clone(),
                batch: std::mem::take(&mut self.batch),
                ticks_waited: 0,
                origin: self.origin,
                end: self.end,
            };
            let at_ms = rest.end.map(|e| rest.ms(e));
            rt.spawn(async move { rest.close(at_ms).await });
        }
    }
}

/// Writes the WAV of a finished call and queues it (after the call, on the recordings'
/// file threads: see [`super::files`]).
async fn finalise(info: &CallInfo, f: Finished, writer: &Writer) {
    let metrics = &writer.metrics;
    let sid = &info.call_sid;
    let manifest = Manifest {
        call_sid: sid.clone(),
        tenant: info.tenant.clone(),
        destination: info.destination.clone(),
        duration_ms: f.end_ms,
        bytes: 0,
    };
    let wav_path = writer.work_dir.join(format!("{sid}.wav"));
    let queue = writer.queue.clone();
    let job = move || {
        if let Some(e) = f.failed {
            return Err(e);
        }
        let samples = f.end_ms * SAMPLES_PER_MS;
        let bytes = wav::finalise(&f.caller, &f.agent, &wav_path, samples)?;
        let manifest = Manifest { bytes, ..manifest };
        queue.put(&manifest, &wav_path)?;
        // The manifest first: a crash after it leaves tracks the next start removes,
        // never tracks it would make into a second, shorter WAV of this call.
        for p in [&f.call_file, &f.caller, &f.agent] {
            let _ = std::fs::remove_file(p);
        }
        Ok(manifest)
    };
    match writer
        .queue
        .wavs()
        .run(job)
        .await
        .map_err(std::io::Error::from)
    {
        Ok(Ok(manifest)) => {
            metrics.disk_bytes.inc_by(manifest.bytes);
            writer.queue.wake(manifest);
        }
        Ok(Err(e)) | Err(e) => {
            metrics.write_errors.inc();
            tracing::error!(call_sid = sid, tenant = info.tenant, error = %e, "recording could not be written; its track files stay in the work directory, and the next start tries again");
        }
    }
}

/// One call's state in the writer.
struct CallWriter {
    caller: Track,
    agent: Track,
    /// Agent audio waiting for its echo beyond what the call holds in memory (see
    /// [`super::agent::HELD_BYTES`]), in a ring: the file exists only while audio is
    /// staged (a turn's lead), so it holds a file handle and disk only then.
    staging: Track,
    /// `<CallSid>.call.json` and what goes in it (emptied once written).
    call_file: PathBuf,
    call_json: Vec<u8>,
    model: AgentTrack,
    limit: u64,
    failed: Option<std::io::Error>,
}

/// A track file being written. The audio of one batch is collected in a buffer the writer
/// shares between calls and written with one positioned write.
struct Track {
    file: Option<File>,
    path: PathBuf,
    /// Sample position of the first byte in the shared buffer.
    buf_at: u64,
    /// Where the audio written so far ends (the end of the call if it ends unannounced).
    end: u64,
    /// Whether short gaps are buffered as silence (the agent track: see [`Track::put`]).
    /// Not for the caller's: its timestamps are the peer's, and a jump would turn a
    /// sparse hole into written zeros.
    fill_gaps: bool,
    /// Positioned writes and reads made (what the gap filling and the staged runs save
    /// is counted by the tests).
    writes: u64,
    reads: u64,
}

impl Track {
    fn new(path: PathBuf, fill_gaps: bool) -> Track {
        Track {
            file: None,
            path,
            buf_at: 0,
            end: 0,
            fill_gaps,
            writes: 0,
            reads: 0,
        }
    }

    /// Puts µ-law `audio` at sample `at`, `buf` holding this track's unwritten bytes.
    fn put(&mut self, at: u64, audio: &[u8], buf: &mut Vec<u8>) -> std::io::Result<()> {
        self.continue_at(at, buf)?;
        buf.extend(audio.iter().map(|&b| wav::to_track(b)));
        Ok(())
    }

    /// [`Track::put`] of bytes already in the track's form ([`wav::to_track`]): staged
    /// audio read back.
    fn put_track(&mut self, at: u64, bytes: &[u8], buf: &mut Vec<u8>) -> std::io::Result<()> {
        self.continue_at(at, buf)?;
        buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Makes `buf` end at sample `at`: a short gap filled, or what it holds written first.
    fn continue_at(&mut self, at: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let buf_end = self.buf_at + buf.len() as u64;
        if buf.is_empty() {
            self.buf_at = at;
        } else if at != buf_end {
            let gap = at
                .checked_sub(buf_end)
                .filter(|&g| self.fill_gaps && g <= MAX_FILLED_GAP);
            match gap {
                // Agent chunks are placed where their echoes say they played, so they
                // are rarely back to back: a few ms apart, each was its own write (most
                // of the writer's time, docs/performance.md "Recordings"). When nothing
                // was written past the buffer, the gap is a hole that reads as silence:
                // it is buffered as the same zeros and the run stays one write.
                Some(g) if buf_end >= self.end => buf.resize(buf.len() + g as usize, 0),
                // A long gap, or audio placed over or before earlier audio: what is
                // buffered is written first; a gap stays a hole (silence).
                _ => {
                    self.write(buf)?;
                    self.buf_at = at;
                }
            }
        }
        Ok(())
    }

    /// Writes and empties `buf` (emptied on an error too: the buffer is shared by all
    /// calls, and what is left in it would go to the next call's file).
    fn write(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let result = match &self.file {
            Some(f) => Ok(f),
            None => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)
                .map(|f| &*self.file.insert(f)),
        }
        .and_then(|file| file.write_all_at(buf, self.buf_at));
        self.writes += 1;
        self.end = self.end.max(self.buf_at + buf.len() as u64);
        buf.clear();
        result
    }
}

impl Track {
    /// Reads `len` bytes at `at` into `out` as they are stored (the track's form, so they
    /// go onto the agent track unconverted); what was never written reads as silence.
    fn read(&mut self, at: u64, len: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
        self.reads += 1;
        out.clear();
        out.resize(len, 0);
        if let Some(f) = &self.file {
            let mut done = 0;
            while done < len {
                match f.read_at(&mut out[done..], at + done as u64) {
                    // Past what was written: silence (the rest of `out` is zeros).
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Closes and removes the file (nothing in it is needed any more); the next write
    /// makes it again.
    fn discard(&mut self) -> std::io::Result<()> {
        if self.file.take().is_none() {
            return Ok(());
        }
        self.end = 0;
        super::files::remove_if_present(&self.path)
    }
}

/// Staged audio to read back: `len` bytes at `ring_at` of the staging ring, for
/// `track_at` of the agent track.
struct StagedRun {
    ring_at: u64,
    track_at: u64,
    len: usize,
}

impl StagedRun {
    /// Whether a staged chunk at `ring_at`, for `track_at`, follows this run in both.
    fn continues(&self, ring_at: u64, track_at: u64) -> bool {
        let len = self.len as u64;
        ring_at == self.ring_at + len && track_at == self.track_at + len
    }
}

/// The writer's buffers, shared by all calls.
#[derive(Default)]
struct Scratch {
    caller: Vec<u8>,
    agent: Vec<u8>,
    /// Agent audio on its way to the staging ring.
    staged: Vec<u8>,
    /// Staged audio read back.
    unstaged: Vec<u8>,
    placed: Vec<Placement>,
}

impl Scratch {
    /// Forgets one call's unwritten audio (after an error): it must never reach another
    /// call's files.
    fn clear(&mut self) {
        self.caller.clear();
        self.agent.clear();
        self.staged.clear();
        self.placed.clear();
    }
}

impl CallWriter {
    /// Writes the call's manifest next to its track files (on the writer thread: a file
    /// per call, not per frame). Not synced: it is for a killed process, whose written
    /// pages survive it; a failure only means no salvage.
    fn write_call_file(&mut self) {
        let json = std::mem::take(&mut self.call_json);
        if json.is_empty() {
            return;
        }
        if let Err(e) = std::fs::write(&self.call_file, &json) {
            tracing::warn!(path = %self.call_file.display(), error = %e, "could not write a recording's manifest: it cannot be salvaged if the gateway is killed during the call");
        }
    }

    fn events(&mut self, encoded: &[u8], s: &mut Scratch, metrics: &RecordingMetrics) {
        if self.failed.is_some() {
            return;
        }
        let result = (|| {
            for e in batch::events(encoded) {
                match e {
                    Event::Caller { ts_ms, audio } => {
                        let at = ts_ms.saturating_mul(SAMPLES_PER_MS);
                        if at > self.limit {
                            metrics.refused.inc();
                        } else {
                            self.caller.put(at, audio, &mut s.caller)?;
                        }
                    }
                    Event::Agent { seq, audio, at_ms } => {
                        if let Some(at) = self.model.sent(seq, audio, at_ms, &mut s.placed) {
                            self.staging.put(at, audio, &mut s.staged)?;
                        }
                    }
                    Event::Echo { seq, at_ms } => self.model.echoed(seq, at_ms, &mut s.placed),
                    Event::Clear { at_ms } => self.model.cut(at_ms, &mut s.placed),
                }
                self.place(s)?;
            }
            self.drop_staging_if_empty(s)?;
            self.write(s)
        })();
        if let Err(e) = result {
            s.clear();
            self.failed = Some(e);
        }
    }

    fn place(&mut self, s: &mut Scratch) -> std::io::Result<()> {
        let Scratch {
            agent,
            staged,
            unstaged,
            placed,
            ..
        } = s;
        // Staged chunks that follow each other in the ring and on the track (one turn's
        // audio, echoed together) are read back with one read, not one per chunk.
        let mut run: Option<StagedRun> = None;
        let limit = self.limit;
        for p in placed.drain(..).filter(|p| p.at <= limit) {
            if let Audio::Staged { at, len } = p.audio
                && let Some(r) = run.as_mut().filter(|r| r.continues(at, p.at))
            {
                r.len += len;
                continue;
            }
            if let Some(r) = run.take() {
                self.unstage(r, staged, unstaged, agent)?;
            }
            match p.audio {
                Audio::Staged { at, len } => {
                    run = Some(StagedRun {
                        ring_at: at,
                        track_at: p.at,
                        len,
                    })
                }
                Audio::Held(audio) => self.agent.put(p.at, &audio, agent)?,
            }
        }
        match run {
            Some(r) => self.unstage(r, staged, unstaged, agent),
            None => Ok(()),
        }
    }

    /// Once nothing is staged (a turn's audio played, or was cut), the staging file goes:
    /// what is still on its way to it is not needed either.
    fn drop_staging_if_empty(&mut self, s: &mut Scratch) -> std::io::Result<()> {
        if self.model.staged_bytes() > 0 {
            return Ok(());
        }
        s.staged.clear();
        self.staging.discard()
    }

    /// Reads a run of staged audio back and puts it on the agent track (`staged`: what
    /// is still on its way to the ring, written first).
    fn unstage(
        &mut self,
        r: StagedRun,
        staged: &mut Vec<u8>,
        unstaged: &mut Vec<u8>,
        agent: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        self.staging.write(staged)?;
        self.staging.read(r.ring_at, r.len, unstaged)?;
        self.agent.put_track(r.track_at, unstaged, agent)
    }

    fn write(&mut self, s: &mut Scratch) -> std::io::Result<()> {
        self.caller.write(&mut s.caller)?;
        self.agent.write(&mut s.agent)?;
        self.staging.write(&mut s.staged)
    }

    /// The call ended at `at_ms` (`None`: where its caller audio ends).
    fn end(mut self, at_ms: Option<u64>, s: &mut Scratch) -> Finished {
        let at_ms = at_ms.unwrap_or(self.caller.end / SAMPLES_PER_MS);
        if self.failed.is_none() {
            self.model.cut(at_ms, &mut s.placed);
            if let Err(e) = self.place(s).and_then(|()| self.write(s)) {
                self.failed = Some(e);
            }
        }
        // Whatever happened, staged audio is of no use after the call (and what was on
        // its way to the ring goes with `s.clear()`).
        if let Err(e) = self.staging.discard() {
            tracing::warn!(path = %self.staging.path.display(), error = %e, "could not remove a recording's staging file");
        }
        s.clear();
        Finished {
            caller: self.caller.path,
            agent: self.agent.path,
            call_file: self.call_file,
            end_ms: at_ms,
            failed: self.failed,
        }
    }
}

/// A byte count as a gauge's value.
fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The writer thread: every [`POLL`], everything queued.
fn run(rx: Receiver<Msg>, metrics: RecordingMetrics) {
    let mut calls: HashMap<u64, Box<CallWriter>> = HashMap::new();
    let mut s = Scratch::default();
    for round in 0u64.. {
        loop {
            match rx.try_recv() {
                Ok(Msg::Begin(id, mut w)) => {
                    w.write_call_file();
                    calls.insert(id, w);
                }
                Ok(Msg::Batch(id, events, n)) => {
                    metrics.writer_queued_bytes.sub(gauge_value(events.len()));
                    match calls.get_mut(&id) {
                        Some(w) => {
                            // A bug in one call's recording must not stop every call's: that
                            // call's recording is given up (its `finish` reports the error,
                            // its track files stay in the work directory) and the thread goes
                            // on.
                            let ok = catch_unwind(AssertUnwindSafe(|| {
                                w.events(&events, &mut s, &metrics)
                            }))
                            .is_ok();
                            if !ok {
                                calls.remove(&id);
                                s = Scratch::default();
                            }
                        }
                        None => metrics.dropped.inc_by(n),
                    }
                }
                Ok(Msg::End(id, at_ms, reply)) => {
                    if let Some(w) = calls.remove(&id) {
                        match catch_unwind(AssertUnwindSafe(|| w.end(at_ms, &mut s))) {
                            Ok(f) => {
                                let _ = reply.send(f);
                            }
                            Err(_) => s = Scratch::default(),
                        }
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        // Summed over every call: once a second, not every round.
        if round.is_multiple_of(GAUGE_ROUNDS) {
            let (held, staged) = calls.values().fold((0, 0), |(h, st), w| {
                (h + w.model.held_bytes(), st + w.model.staged_bytes())
            });
            metrics.agent_held_bytes.set(gauge_value(held));
            metrics.agent_staged_bytes.set(gauge_value(staged));
        }
        // The shared buffers keep at most a typical batch's size between rounds.
        for b in [&mut s.caller, &mut s.agent, &mut s.staged, &mut s.unstaged] {
            b.shrink_to(8 * 1024);
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn call(caller: PathBuf, agent: PathBuf) -> CallWriter {
        CallWriter {
            caller: Track::new(caller, false),
            agent: Track::new(agent.clone(), true),
            staging: Track::new(agent.with_extension("staging"), false),
            call_file: agent.with_extension("json"),
            call_json: Vec::new(),
            model: AgentTrack::default(),
            limit: u64::MAX,
            failed: None,
        }
    }

    fn frames(at_ms: &[u64], code: u8) -> Vec<u8> {
        let mut b = Batch::default();
        for &t in at_ms {
            assert!(b.caller_base64(t, &STANDARD.encode([code; 160])));
        }
        b.take().0
    }

    /// The writer's buffers are shared by all calls: audio one call could not write must
    /// not be written into the next call's file.
    #[test]
    fn a_call_whose_file_cannot_be_written_leaves_nothing_for_the_next_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = metrics();
        let mut s = Scratch::default();
        let gone = dir.path().join("no such directory");
        let mut a = call(gone.join("a.caller"), gone.join("a.agent"));
        a.events(&frames(&[0, 20], 0x11), &mut s, &metrics);
        assert!(a.failed.is_some());
        let (bc, ba) = (dir.path().join("b.caller"), dir.path().join("b.agent"));
        let mut b = call(bc.clone(), ba);
        b.events(&frames(&[1000], 0x22), &mut s, &metrics);
        assert!(b.failed.is_none());
        let track = std::fs::read(&bc).expect("b's caller track");
        assert_eq!(track.len(), 8000 + 160);
        assert!(
            track[..8000].iter().all(|&x| x == 0),
            "only silence before b's audio"
        );
        assert!(track[8000..].iter().all(|&x| x == wav::to_track(0x22)));
    }

    fn agent_turn(sent_ms: u64, echoes_ms: &[u64], code: u8) -> Vec<u8> {
        let mut b = Batch::default();
        for seq in 0..echoes_ms.len() as u64 {
            assert!(b.agent(seq, &[code; 160], sent_ms));
        }
        for (seq, &t) in (0u64..).zip(echoes_ms) {
            assert!(b.echo(seq, t));
        }
        b.take().0
    }

    fn metrics() -> RecordingMetrics {
        RecordingMetrics::register(&prometheus::Registry::new()).expect("metrics")
    }

    /// The call's manifest is on disk once the writer has taken the call, before any
    /// audio: a kill at any point of the call leaves what the next start needs.
    #[test]
    fn the_writer_writes_a_calls_manifest_when_it_takes_the_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = call(dir.path().join("a.caller"), dir.path().join("a.agent"));
        w.call_json = b"{\"call\":1}".to_vec();
        let call_file = w.call_file.clone();
        let (tx, rx) = sync_channel(4);
        let thread = std::thread::spawn(move || run(rx, metrics()));
        tx.send(Msg::Begin(7, Box::new(w))).expect("send");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read(&call_file).ok().as_deref() != Some(b"{\"call\":1}".as_slice()) {
            assert!(Instant::now() < deadline, "no manifest written");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(tx);
        thread.join().expect("writer thread");
    }

    /// Echoes a few ms late leave short gaps between agent chunks: the batch is still one
    /// write, and the gaps read as the silence a hole would.
    #[test]
    fn agent_chunks_a_few_ms_apart_are_one_write_with_silence_between() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Scratch::default();
        let agent = dir.path().join("a.agent");
        let mut w = call(dir.path().join("a.caller"), agent.clone());
        // 20 ms chunks sent at 0, heard ending at 20, 41 and 63 ms: 1 and 2 ms gaps.
        w.events(&agent_turn(0, &[20, 41, 63], 0x33), &mut s, &metrics());
        assert!(w.failed.is_none());
        assert_eq!(w.agent.writes, 1);
        let track = std::fs::read(&agent).expect("agent track");
        let heard = wav::to_track(0x33);
        let expect: Vec<u8> = [(0, 160), (160, 168), (168, 328), (328, 344), (344, 504)]
            .iter()
            .enumerate()
            .flat_map(|(i, &(a, b))| std::iter::repeat_n(if i % 2 == 0 { heard } else { 0 }, b - a))
            .collect();
        assert_eq!(track, expect);
    }

    /// A gap longer than [`MAX_FILLED_GAP`] stays a hole (two writes), and the caller's
    /// track never fills one: its timestamps are the peer's.
    #[test]
    fn long_gaps_and_the_callers_gaps_are_not_filled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut buf = Vec::new();
        let mut t = Track::new(dir.path().join("agent"), true);
        t.put(0, &[1; 160], &mut buf).expect("put");
        t.put(MAX_FILLED_GAP + 161, &[1; 160], &mut buf)
            .expect("put");
        t.write(&mut buf).expect("write");
        assert_eq!(t.writes, 2);
        let caller = dir.path().join("a.caller");
        let mut w = call(caller.clone(), dir.path().join("a.agent"));
        w.events(&frames(&[0, 40], 0x44), &mut Scratch::default(), &metrics());
        assert_eq!(w.caller.writes, 2);
        let track = std::fs::read(&caller).expect("caller track");
        assert_eq!(track.len(), 320 + 160);
        assert!(track[160..320].iter().all(|&x| x == 0));
    }

    /// Filling a gap never writes silence over audio already in the file.
    #[test]
    fn a_filled_gap_never_covers_audio_written_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent");
        let mut buf = Vec::new();
        let mut t = Track::new(path.clone(), true);
        t.put(800, &[0x55; 160], &mut buf).expect("put");
        t.write(&mut buf).expect("write");
        // Before it, then forward past it with short gaps.
        for at in [0, 480, 1040] {
            t.put(at, &[0x66; 160], &mut buf).expect("put");
        }
        t.write(&mut buf).expect("write");
        let track = std::fs::read(&path).expect("track");
        let at = |sample: usize| track[sample];
        assert_eq!(at(800), wav::to_track(0x55));
        assert_eq!(at(0), wav::to_track(0x66));
        assert_eq!(at(480), wav::to_track(0x66));
        assert_eq!(at(1040), wav::to_track(0x66));
        assert_eq!(at(240), 0);
    }

    /// Agent audio beyond what a call holds in memory goes through the staging file and
    /// lands where held audio would: echoed in the batch that sent it (still on its way
    /// to the file) and in a later one.
    #[test]
    fn staged_agent_audio_is_recorded_where_it_played() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Scratch::default();
        let agent = dir.path().join("a.agent");
        let mut w = call(dir.path().join("a.caller"), agent.clone());
        let mut b = Batch::default();
        // Five 200 ms chunks sent at once (a model faster than real time): only the
        // first fits in memory.
        for i in 0..5u8 {
            assert!(b.agent(u64::from(i), &[0x10 + i; 1600], 0));
        }
        assert!(b.echo(1, 400));
        w.events(&b.take().0, &mut s, &metrics());
        assert!(w.failed.is_none(), "{:?}", w.failed);
        assert!(agent.with_extension("staging").exists());
        let mut b = Batch::default();
        assert!(b.echo(4, 1000));
        w.events(&b.take().0, &mut s, &metrics());
        assert!(w.failed.is_none(), "{:?}", w.failed);
        assert!(
            !agent.with_extension("staging").exists(),
            "nothing staged: the file is gone"
        );
        let track = std::fs::read(&agent).expect("agent track");
        assert_eq!(track.len(), 5 * 1600);
        for (i, part) in track.chunks(1600).enumerate() {
            let code = wav::to_track(0x10 + i as u8);
            assert!(part.iter().all(|&x| x == code), "chunk {i}");
        }
        assert_eq!(w.model.held_bytes(), 0);
        // m1 alone, then m2–m4 (one turn, back to back in the ring and on the track).
        assert_eq!(w.staging.reads, 2);
    }
}
