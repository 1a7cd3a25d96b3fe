//! Small fixed pools of threads for the recordings' file work after a call. Two lanes,
//! each its own pool, so the short work never waits behind the long: one makes WAVs and
//! moves them into the upload queue (seconds for a long call: conversion and `fsync`s),
//! the other does the queue's claims, heartbeats, local deliveries and removals (an
//! upload whose claim is not refreshed in time is taken over by another uploader).
//!
//! Why not tokio's blocking pool: it starts a thread whenever all of its threads are busy
//! and keeps each for 10 s. When hundreds of calls end within seconds, each ending's
//! `fsync`s held a blocking thread, and every new thread brought its stack and its own
//! malloc arena: at 500 calls the recorded gateway went from 5 to 14–23 threads and
//! ≈ 1.5–2 MB of memory at the end of the run (docs/performance.md, "Recordings"). A fixed
//! pool queues the work instead; nothing here is on the audio path. When many calls end
//! at once their WAVs are made in turn (the disk is the bound either way), and the
//! gateway's drain waits for them within its deadline, as it waits for the calls.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Threads of each pool.
pub const THREADS: usize = 2;

/// Why a job gave no result.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The pool has stopped (the gateway is exiting).
    #[error("the recordings' file threads have stopped")]
    Stopped,
    /// The job panicked (its thread goes on with the next job).
    #[error("a recording file job panicked")]
    Panicked,
}

impl From<FilesError> for std::io::Error {
    fn from(e: FilesError) -> std::io::Error {
        std::io::Error::other(e)
    }
}

/// A handle on the pool; clones share it.
#[derive(Clone)]
pub struct Files {
    tx: Sender<Job>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files").finish_non_exhaustive()
    }
}

impl Files {
    /// Starts [`THREADS`] threads named `<name>-<i>`; they end when every handle is
    /// dropped.
    pub fn start(name: &str) -> std::io::Result<Files> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Files { tx })
    }

    /// Runs `f` on a pool thread and waits (asynchronously) for its result.
    pub async fn run<T, F>(&self, f: F) -> Result<T, FilesError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let out = catch_unwind(AssertUnwindSafe(f)).map_err(|_| FilesError::Panicked);
            let _ = reply.send(out);
        });
        self.tx.send(job).map_err(|_| FilesError::Stopped)?;
        result.await.map_err(|_| FilesError::Stopped)?
    }
}

/// Removes `path`; one already gone is not an error (what removes recording files runs
/// again after a crash).
pub fn remove_if_present(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while taking a job (another thread waiting here is idle
        // anyway); a poisoned lock cannot happen (jobs run outside it) but is survived.
        let job = {
            let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            rx.recv()
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_pool_and_a_panic_is_an_error_not_a_lost_thread() {
        let files = Files::start("recording-test").expect("start");
        let name = files
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .expect("run");
        assert!(name.is_some_and(|n| n.starts_with("recording-test-")));
        for _ in 0..THREADS + 1 {
            let err = files.run(|| panic!("boom")).await;
            assert!(matches!(err, Err(FilesError::Panicked)));
        }
        // Every thread is still there.
        let all = (0..20).map(|i| files.run(move || i * 2));
        let got: Vec<usize> = futures_util::future::join_all(all)
            .await
            .into_iter()
            .map(|r| r.expect("run"))
            .collect();
        assert_eq!(got, (0..20).map(|i| i * 2).collect::<Vec<_>>());
    }
}
