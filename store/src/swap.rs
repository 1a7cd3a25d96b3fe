//! A call store whose connection can be replaced while it is in use: the database URL
//! rotated (a new role or password in AWS Secrets Manager) without a restart.
//!
//! Every operation loads the store that is current when it starts (a lock-free load of
//! an `Arc`, arc-swap) and finishes on it, so nothing waits for a swap. [`SwappableStore::replace`]
//! puts the new store in place (its pool already opened by the caller), then lets the old
//! one drain on its own task: once no operation holds it any more (or after
//! [`DRAIN_LIMIT`]) its pool is closed, which waits for connections still checked out and
//! ends the others cleanly.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::{
    AnalysisMark, BacklogQuery, BoxFuture, CallPage, CallQuery, CallRecord, CallStore, DailyStats,
    DayRange, MarkOutcome, StoreError, StoreOp,
};

/// Longest wait for operations still running on a replaced store before its pool is
/// closed anyway (closing then waits only for connections still checked out).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// A [`CallStore`] delegating to the store set last.
pub struct SwappableStore {
    current: ArcSwap<Arc<dyn CallStore>>,
}

impl SwappableStore {
    /// Starts with `store`.
    pub fn new(store: Arc<dyn CallStore>) -> Self {
        Self {
            current: ArcSwap::from_pointee(store),
        }
    }

    /// The store operations go to now.
    pub fn current(&self) -> Arc<dyn CallStore> {
        Arc::clone(&self.current.load())
    }

    /// Makes `next` the store of every operation that starts from now on, and closes the
    /// previous one on a task of its own once the operations running on it are done.
    pub fn replace(&self, next: Arc<dyn CallStore>) {
        let old = self.current.swap(Arc::new(next));
        tokio::spawn(drain(old));
    }

    fn load(&self) -> Arc<Arc<dyn CallStore>> {
        self.current.load_full()
    }
}

/// Waits until nothing but this task holds `old` (operations that loaded it before the
/// swap have finished), at most [`DRAIN_LIMIT`], then closes it.
async fn drain(old: Arc<Arc<dyn CallStore>>) {
    let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
    while Arc::strong_count(&old) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    old.close().await;
    tracing::info!("the replaced call store's connections are closed");
}

impl CallStore for SwappableStore {
    fn apply<'a>(&'a self, op: &'a StoreOp) -> BoxFuture<'a, Result<(), StoreError>> {
        let store = self.load();
        Box::pin(async move { store.apply(op).await })
    }

    fn get_call<'a>(
        &'a self,
        call_sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<CallRecord>, StoreError>> {
        let store = self.load();
        Box::pin(async move { store.get_call(call_sid).await })
    }

    fn recent_calls(&self, limit: u32) -> BoxFuture<'_, Result<Vec<CallRecord>, StoreError>> {
        let store = self.load();
        Box::pin(async move { store.recent_calls(limit).await })
    }

    fn list_calls<'a>(
        &'a self,
        query: &'a CallQuery,
    ) -> BoxFuture<'a, Result<CallPage, StoreError>> {
        let store = self.load();
        Box::pin(async move { store.list_calls(query).await })
    }

    fn daily_stats<'a>(
        &'a self,
        tenant: &'a str,
        range: DayRange,
    ) -> BoxFuture<'a, Result<Vec<DailyStats>, StoreError>> {
        let store = self.load();
        Box::pin(async move { store.daily_stats(tenant, range).await })
    }

    fn analysis_backlog<'a>(
        &'a self,
        q: &'a BacklogQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        let store = self.load();
        Box::pin(async move { store.analysis_backlog(q).await })
    }

    fn mark_analysis<'a>(
        &'a self,
        mark: &'a AnalysisMark,
    ) -> BoxFuture<'a, Result<MarkOutcome, StoreError>> {
        let store = self.load();
        Box::pin(async move { store.mark_analysis(mark).await })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let store = self.load();
        Box::pin(async move { store.ping().await })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let store = self.load();
        Box::pin(async move { store.close().await })
    }
}
