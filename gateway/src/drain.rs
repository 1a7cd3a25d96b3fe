//! Graceful shutdown: readiness drops at once, live calls run on until they end or the
//! drain deadline passes. A call counts from the webhook that answered it (its admission
//! holds a [`CallGuard`]) to its end, so a call answered just before SIGTERM whose stream
//! has not opened yet keeps the server up too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// Shared drain state.
#[derive(Debug)]
pub struct Drain {
    draining: AtomicBool,
    active: AtomicUsize,
    idle: Notify,
    deadline: watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            deadline: watch::channel(false).0,
        }
    }
}

/// Held by a live call; dropping it ends the call's claim on the process.
#[derive(Debug)]
pub struct CallGuard(Arc<Drain>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// Registers a call (answered or live).
    pub fn call_started(self: &Arc<Self>) -> CallGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        CallGuard(self.clone())
    }

    /// Calls answered or live.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Whether shutdown has begun (readiness is false).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Begins draining.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Fires when the drain deadline passes: calls end themselves.
    pub fn deadline(&self) -> watch::Receiver<bool> {
        self.deadline.subscribe()
    }

    /// Tells every live call the drain deadline has passed.
    pub fn fire_deadline(&self) {
        self.deadline.send_replace(true);
    }

    /// Waits until no call is live.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}
