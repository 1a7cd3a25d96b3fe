//! The write-behind queue: call sessions hand ops over and move on; one worker applies
//! them in order, and spools them to disk while the store is down.
//!
//! Order is the contract: ops reach the store in submission order, through the spool if
//! need be (spool first, then ops held in memory, then the channel). A spool left by a
//! previous process is replayed before anything new. An op the store refuses while it is
//! reachable (a constraint or data error, which every retry would hit again) is kept in
//! `rejected.jsonl` so it cannot wedge the queue.
//!
//! Two ways in: [`WriteBehind::submit`] waits while the channel is full and never drops;
//! [`WriteBehind::try_submit`] never waits and drops the op when the channel is full. The
//! incoming-call webhook uses `try_submit` for a call's start record (a store that hangs
//! must not stop calls being answered; the caller counts `switchboard_store_dropped_total`
//! and logs a warning, and the end record recreates the row); the end of a call uses
//! `submit`, since the call is over and its record is what must not be lost.

mod spool;

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus::{IntCounterVec, IntGauge};
use sqlx::error::ErrorKind;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};

use self::spool::{Entry, Spool};
use super::{CallStore, StoreError, StoreOp};

/// Default channel capacity.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Default pause between store probes while spooling.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// An op that takes longer counts as "store down" (ops are idempotent, so applying it
/// again later is harmless even if it did commit).
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines read from the spool per step of a replay.
const REPLAY_BATCH: usize = 256;
/// Ops taken off the channel per spool append.
const ABSORB_BATCH: usize = 1024;

/// How the queue is sized and where it spools.
#[derive(Debug, Clone)]
pub struct WriteBehindConfig {
    /// Ops the channel holds before `submit` waits and `try_submit` drops.
    pub capacity: usize,
    /// Directory for the spool (`spool.jsonl`), corrupt lines (`spool.jsonl.bad`) and
    /// refused ops (`rejected.jsonl`). Must survive a restart for the spool to.
    pub spool_dir: PathBuf,
    /// Pause between store probes while spooling.
    pub retry_interval: Duration,
}

impl WriteBehindConfig {
    /// Defaults (capacity 4096, retry every second) spooling to `spool_dir`.
    pub fn new(spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            spool_dir: spool_dir.into(),
            retry_interval: DEFAULT_RETRY_INTERVAL,
        }
    }
}

/// Gauges the queue keeps current (created and registered by the caller).
#[derive(Debug, Clone)]
pub struct QueueMetrics {
    /// Ops submitted but neither applied nor spooled yet.
    pub depth: IntGauge,
    /// Ops on disk waiting for the store.
    pub spooled: IntGauge,
    /// Ops the store refused while reachable (kept in `rejected.jsonl`), by `reason`:
    /// `tenant_conflict` (the CallSid is another tenant's) or `invalid` (a constraint
    /// or data error).
    pub rejected: IntCounterVec,
}

enum Msg {
    // Boxed: a `CallEnd` is large, and every channel slot is as big as the largest variant.
    Op(Box<StoreOp>),
    Flush(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

struct Shared {
    spool: Mutex<Spool>,
    /// Held by the worker from closing its channel until its last op is spooled, so an
    /// op submitted after that (and spooled directly) lands after everything before it.
    closing: tokio::sync::Mutex<()>,
    spooled: AtomicU64,
    metrics: QueueMetrics,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Spool> {
        // The spool's state is a counter and a flag, both valid after any panic.
        self.spool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, len: u64) {
        self.spooled.store(len, Ordering::Relaxed);
        self.metrics
            .spooled
            .set(i64::try_from(len).unwrap_or(i64::MAX));
    }
}

/// Runs blocking spool I/O off the async threads, then publishes the spool's length.
async fn with_spool<T, F>(shared: &Arc<Shared>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Spool) -> Result<T, StoreError> + Send + 'static,
{
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let mut spool = shared.lock();
        let result = f(&mut spool);
        shared.publish(spool.len());
        result
    })
    .await
    .unwrap_or_else(|e| {
        Err(StoreError::Spool {
            path: "<spool task>".to_string(),
            source: std::io::Error::other(e),
        })
    })
}

/// [`WriteBehind::try_submit`] found the queue full; the op was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("write-behind queue full: op dropped")]
pub struct QueueFull;

/// A handle for submitting ops; clones share one worker.
#[derive(Clone)]
pub struct WriteBehind {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WriteBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehind")
            .field("spooled", &self.spooled())
            .finish_non_exhaustive()
    }
}

impl WriteBehind {
    /// Takes the spool directory (exclusively: a second process on the same directory
    /// gets an error) and starts the worker, which first replays any spool a previous
    /// process left. Must be called inside a Tokio runtime.
    pub fn start(
        store: Arc<dyn CallStore>,
        cfg: WriteBehindConfig,
        metrics: QueueMetrics,
    ) -> Result<(WriteBehind, JoinHandle<()>), StoreError> {
        let spool = Spool::open(&cfg.spool_dir)?;
        let left = spool.len();
        if left > 0 {
            tracing::info!(
                spool_dir = %cfg.spool_dir.display(),
                ops = left,
                "replaying ops spooled by a previous run"
            );
        }
        metrics.depth.set(0);
        let shared = Arc::new(Shared {
            spool: Mutex::new(spool),
            closing: tokio::sync::Mutex::new(()),
            spooled: AtomicU64::new(0),
            metrics,
        });
        shared.publish(left);
        let (tx, rx) = mpsc::channel(cfg.capacity.max(1));
        let worker = Worker {
            store,
            rx,
            shared: Arc::clone(&shared),
            retry_interval: cfg.retry_interval,
            held: VecDeque::new(),
            waiters: Vec::new(),
            stop: None,
        };
        let handle = tokio::spawn(worker.run());
        Ok((WriteBehind { tx, shared }, handle))
    }

    /// Queues an op. Never fails and never drops it: waits only while the channel is
    /// full; if the worker is gone (after [`close`](Self::close)) the op goes straight
    /// to the spool for the next start.
    pub async fn submit(&self, op: StoreOp) {
        self.shared.metrics.depth.inc();
        if let Err(mpsc::error::SendError(msg)) = self.tx.send(Msg::Op(Box::new(op))).await {
            self.shared.metrics.depth.dec();
            if let Msg::Op(op) = msg {
                self.spool_direct(*op).await;
            }
        }
    }

    /// Queues an op without ever waiting: the path for callers that must not stall on
    /// the store (the incoming-call webhook answers Twilio within its timeout whatever the
    /// database does).
    ///
    /// Unlike [`submit`](Self::submit) this *drops* the op when the channel is full (the
    /// worker is stuck behind a store that hangs and the spool cannot absorb fast enough):
    /// it returns [`QueueFull`] and the caller counts and logs the loss. Dropping a call's
    /// start record is the chosen trade: the call is still answered, and its end record
    /// (submitted with [`submit`](Self::submit), which waits) recreates the row. After
    /// [`close`](Self::close) the op is spooled on a task of its own, as `submit` would.
    pub fn try_submit(&self, op: StoreOp) -> Result<(), QueueFull> {
        self.shared.metrics.depth.inc();
        match self.tx.try_send(Msg::Op(Box::new(op))) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.metrics.depth.dec();
                Err(QueueFull)
            }
            Err(mpsc::error::TrySendError::Closed(msg)) => {
                self.shared.metrics.depth.dec();
                if let Msg::Op(op) = msg {
                    let this = self.clone();
                    tokio::spawn(async move { this.spool_direct(*op).await });
                }
                Ok(())
            }
        }
    }

    async fn spool_direct(&self, op: StoreOp) {
        let _after_worker = self.shared.closing.lock().await;
        tracing::warn!(
            call_sid = op.call_sid(),
            "write-behind worker stopped; spooling op for the next start"
        );
        let kept = op.clone();
        if let Err(e) = with_spool(&self.shared, move |s| s.append(std::slice::from_ref(&op))).await
        {
            log_lost(&kept, &e);
        }
    }

    /// Waits until everything submitted before this call is in the store or durably
    /// spooled. False if that did not happen within `timeout`.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = oneshot::channel();
        tokio::time::timeout(timeout, async {
            if self.tx.send(Msg::Flush(ack)).await.is_err() {
                // Worker gone: every submit since spooled synchronously.
                return true;
            }
            done.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// Graceful shutdown: flushes, then stops the worker (ops other handles submit after
    /// this go to the spool). Gives up after `timeout`.
    pub async fn close(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let flushed = self.flush(timeout).await;
        let (ack, done) = oneshot::channel();
        let stopped = timeout_at(deadline, async {
            if self.tx.send(Msg::Stop(ack)).await.is_err() {
                return true;
            }
            done.await.is_ok()
        })
        .await
        .unwrap_or(false);
        if !(flushed && stopped) {
            tracing::warn!(
                flushed,
                stopped,
                spooled = self.spooled(),
                "write-behind queue did not close cleanly in time"
            );
        }
    }

    /// Ops currently on disk waiting for the store.
    pub fn spooled(&self) -> u64 {
        self.shared.spooled.load(Ordering::Relaxed)
    }
}

/// Neither the store nor the disk took an op: say which call lost what. The record itself
/// (caller numbers, transcript, tool I/O) is personal data and never goes to the log.
fn log_lost(op: &StoreOp, error: &StoreError) {
    let kind = match op {
        StoreOp::Start(_) => "start",
        StoreOp::End(_) => "end",
        StoreOp::Status(_) => "status",
        StoreOp::Recording(_) => "recording",
        StoreOp::RecordingGone(_) => "recording_gone",
        StoreOp::Transfer(_) => "transfer",
        StoreOp::Voicemail(_) => "voicemail",
        StoreOp::Analysis(_) => "analysis",
    };
    tracing::error!(call_sid = op.call_sid(), op = kind, %error, "call record op could not be stored or spooled: lost");
}

/// Errors the store returns while reachable that every retry would hit again.
fn is_rejection(err: &StoreError) -> bool {
    match err {
        StoreError::TenantConflict { .. } => true,
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(
                db.kind(),
                ErrorKind::UniqueViolation
                    | ErrorKind::ForeignKeyViolation
                    | ErrorKind::NotNullViolation
                    | ErrorKind::CheckViolation
            ) || db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some_and(|pg| pg.code().starts_with("22"))
        }
        StoreError::Database(sqlx::Error::Encode(_)) => true,
        _ => false,
    }
}

/// An in-flight store probe: resolves to whether the store answered.
type Probe = Pin<Box<dyn Future<Output = bool> + Send>>;

async fn wait_probe(probe: &mut Option<Probe>) -> bool {
    match probe {
        Some(p) => p.await,
        None => std::future::pending().await,
    }
}

enum Applied {
    /// In the store, or refused for good and kept in `rejected.jsonl`.
    Done,
    /// The store is not taking writes now.
    Down,
}

struct Worker {
    store: Arc<dyn CallStore>,
    rx: mpsc::Receiver<Msg>,
    shared: Arc<Shared>,
    retry_interval: Duration,
    /// Ops off the channel, neither applied nor spooled (the spool could not be written).
    held: VecDeque<StoreOp>,
    /// Flushes waiting for `held` to empty.
    waiters: Vec<oneshot::Sender<()>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Worker {
    async fn run(mut self) {
        let mut backlog = self.shared.spooled.load(Ordering::Relaxed) > 0;
        let mut next_retry = Instant::now();
        let mut probe: Option<Probe> = None;
        while self.stop.is_none() {
            if !backlog {
                let Some(msg) = self.rx.recv().await else {
                    break;
                };
                match msg {
                    Msg::Op(op) => match self.apply(&op).await {
                        Applied::Done => self.shared.metrics.depth.dec(),
                        Applied::Down => {
                            self.held.push_back(*op);
                            self.persist_held().await;
                            backlog = true;
                            next_retry = Instant::now() + self.retry_interval;
                        }
                    },
                    Msg::Flush(ack) => {
                        let _ = ack.send(());
                    }
                    Msg::Stop(ack) => self.stop = Some(ack),
                }
                continue;
            }
            if probe.is_none() && Instant::now() >= next_retry {
                self.persist_held().await;
                probe = Some(self.probe());
            }
            // The probe runs beside the channel: a store that takes seconds to refuse a
            // connection must not stop ops from reaching the spool meanwhile. While
            // `held` is stuck (the spool cannot be written) take nothing more: the
            // channel's bound is then the backpressure.
            tokio::select! {
                up = wait_probe(&mut probe), if probe.is_some() => {
                    probe = None;
                    next_retry = Instant::now() + self.retry_interval;
                    if up && self.recover().await {
                        backlog = false;
                    }
                }
                () = sleep_until(next_retry), if probe.is_none() => {}
                msg = self.rx.recv(), if self.held.is_empty() => match msg {
                    None => break,
                    Some(msg) => {
                        self.take(msg);
                        self.absorb_ready();
                        self.persist_held().await;
                    }
                },
            }
        }
        self.shutdown(backlog).await;
    }

    async fn apply(&self, op: &StoreOp) -> Applied {
        match timeout(OP_TIMEOUT, self.store.apply(op)).await {
            Ok(Ok(())) => Applied::Done,
            Ok(Err(e)) if is_rejection(&e) => {
                let reason = match e {
                    StoreError::TenantConflict { .. } => "tenant_conflict",
                    _ => "invalid",
                };
                self.shared
                    .metrics
                    .rejected
                    .with_label_values(&[reason])
                    .inc();
                let error = e.to_string();
                tracing::error!(call_sid = op.call_sid(), %error, "store refused op; kept in rejected.jsonl");
                let kept = op.clone();
                if let Err(io) = with_spool(&self.shared, move |s| s.reject(&kept, &error)).await {
                    log_lost(op, &io);
                }
                Applied::Done
            }
            Ok(Err(e)) => {
                tracing::warn!(call_sid = op.call_sid(), error = %e, "store unavailable; spooling");
                Applied::Down
            }
            Err(_) => {
                tracing::warn!(
                    call_sid = op.call_sid(),
                    "store op timed out after {OP_TIMEOUT:?}; spooling"
                );
                Applied::Down
            }
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Op(op) => self.held.push_back(*op),
            Msg::Flush(ack) => self.waiters.push(ack),
            Msg::Stop(ack) => self.stop = Some(ack),
        }
    }

    /// Takes what is already queued, without waiting, so one fsync covers many ops.
    fn absorb_ready(&mut self) {
        while self.stop.is_none() && self.held.len() < ABSORB_BATCH {
            match self.rx.try_recv() {
                Ok(msg) => self.take(msg),
                Err(_) => break,
            }
        }
    }

    fn ack_waiters(&mut self) {
        if self.held.is_empty() {
            for ack in self.waiters.drain(..) {
                let _ = ack.send(());
            }
        }
    }

    /// Appends `held` to the spool. Returns how many ops were written.
    async fn persist_held(&mut self) -> usize {
        let n = self.held.len();
        if n > 0 {
            let ops: Vec<StoreOp> = self.held.iter().cloned().collect();
            match with_spool(&self.shared, move |s| s.append(&ops)).await {
                Ok(()) => {
                    self.held.clear();
                    self.shared
                        .metrics
                        .depth
                        .sub(i64::try_from(n).unwrap_or(i64::MAX));
                }
                Err(e) => {
                    tracing::error!(error = %e, ops = n, "cannot write spool; holding ops in memory");
                    return 0;
                }
            }
        }
        self.ack_waiters();
        n
    }

    /// A liveness probe that does not borrow the worker.
    fn probe(&self) -> Probe {
        let store = Arc::clone(&self.store);
        Box::pin(async move { matches!(timeout(OP_TIMEOUT, store.ping()).await, Ok(Ok(()))) })
    }

    /// Replays the spool and then `held`, after a successful probe. True when everything
    /// is applied and the channel can be served directly again.
    async fn recover(&mut self) -> bool {
        let mut offset = 0;
        loop {
            let batch =
                match with_spool(&self.shared, move |s| s.read_from(offset, REPLAY_BATCH)).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read spool");
                        return false;
                    }
                };
            for (at, entry) in batch.entries {
                let step = match entry {
                    Entry::Op(op) => match self.apply(&op).await {
                        Applied::Done => Ok(()),
                        Applied::Down => Err(()),
                    },
                    Entry::Bad { line, error } => {
                        with_spool(&self.shared, move |s| s.keep_bad(&line, at, &error))
                            .await
                            .map_err(
                                |e| tracing::error!(error = %e, "cannot move bad spool line aside"),
                            )
                    }
                };
                if step.is_err() {
                    // Keep only what is not applied yet; the next probe resumes there.
                    if let Err(e) = with_spool(&self.shared, move |s| s.drop_prefix(at)).await {
                        tracing::error!(error = %e, "cannot trim spool; it will be replayed from the start");
                    }
                    return false;
                }
                let len = {
                    let mut spool = self.shared.lock();
                    spool.consumed(1);
                    spool.len()
                };
                self.shared.publish(len);
            }
            offset = batch.next;
            if self.stop.is_some() {
                // Shutting down: remember the progress, the rest waits for the next start.
                if let Err(e) = with_spool(&self.shared, move |s| s.drop_prefix(offset)).await {
                    tracing::error!(error = %e, "cannot trim spool; it will be replayed from the start");
                }
                return false;
            }
            // A long replay must not make submitters wait: newcomers join the spool's end.
            self.absorb_ready();
            let appended = self.persist_held().await;
            if batch.eof && appended == 0 {
                break;
            }
        }
        if let Err(e) = with_spool(&self.shared, Spool::clear).await {
            tracing::error!(error = %e, "cannot remove replayed spool");
            return false;
        }
        while let Some(op) = self.held.front() {
            match self.apply(op).await {
                Applied::Done => {
                    self.held.pop_front();
                    self.shared.metrics.depth.dec();
                }
                Applied::Down => {
                    self.persist_held().await;
                    return false;
                }
            }
        }
        self.ack_waiters();
        tracing::info!("store reachable again; spool replayed");
        true
    }

    /// Applies or spools whatever is still queued, then acknowledges the stop.
    async fn shutdown(mut self, backlog: bool) {
        let shared = Arc::clone(&self.shared);
        let _closing = shared.closing.lock().await;
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            self.take(msg);
        }
        if !backlog {
            while let Some(op) = self.held.front() {
                match self.apply(op).await {
                    Applied::Done => {
                        self.held.pop_front();
                        self.shared.metrics.depth.dec();
                    }
                    Applied::Down => break,
                }
            }
        }
        self.persist_held().await;
        for op in &self.held {
            log_lost(
                op,
                &StoreError::Spool {
                    path: "<shutdown>".to_string(),
                    source: std::io::Error::other("spool not writable at shutdown"),
                },
            );
        }
        if let Some(ack) = self.stop.take() {
            let _ = ack.send(());
        }
    }
}
