//! Running post-call analyses so that none is lost when a gateway stops.
//!
//! - A call that just ended: [`start`] (from [`super::submit_end`], once its end record
//!   is queued) waits for the record to reach the store, claims the call's analysis and
//!   runs it on its own task.
//! - A call whose analysis never finished (the gateway stopped or died first, the
//!   endpoint stayed down): [`recover`] looks for the tenant's ended calls still waiting
//!   (within [`LOOK_BACK`], long enough, not analysed, not given up on, claimed fewer
//!   than [`MAX_ATTEMPTS`] times) at start and every [`SWEEP_EVERY`], and runs them one
//!   at a time.
//!
//! Two pods of a tenant never both analyse a call: each analysis holds a claim on the
//! call row (`switchboard_store::backlog`), a lease longer than an analysis can take;
//! the stored result ends it (and the first result stored wins, should two ever race). A
//! stopping gateway aborts its analyses and gives their claims back ([`stop`]), so the
//! next gateway to look takes them at once; one that dies lets them lapse. An answer that
//! retrying cannot fix (refused, unusable) gives the call's analysis up for good.

use std::time::{Duration, Instant};

use switchboard_store::{
    Analysis, AnalysisMark, BacklogQuery, CallAnalysis, CallEnd, CallRecord, MarkOutcome, StoreOp,
};

use super::{RecordError, context, open, seal_analysis};
use crate::analysis;
use crate::state::AppState;
use crate::tenants::Tenant;

/// How far back a gateway looks for calls whose analysis never finished: older ones are
/// given up on (their transcript is still on the record).
pub const LOOK_BACK: Duration = Duration::from_secs(24 * 3600);
/// How often a gateway looks (besides at start).
pub const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// Claims after which a call whose analysis keeps failing for a passing reason is left.
pub const MAX_ATTEMPTS: u32 = 5;
/// Calls taken per tenant per sweep (the rest wait for the next).
const SWEEP_BATCH: u32 = 50;
/// How long the end record may take to reach the store (or its spool) before an
/// analysis runs anyway, unclaimed.
const RECORD_FLUSH: Duration = Duration::from_secs(30);
/// How long giving back claims may take at shutdown.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The analysis to run for a finished call, when its tenant declares one.
pub fn job(tenant: &Tenant, end: &CallEnd) -> Option<analysis::Job> {
    let spec = tenant.spec.analysis.as_ref()?;
    // Where the OpenAI key may go is checked once, where the URL is resolved
    // (`analysis::runner`), for every way a job starts.
    Some(analysis::Job {
        spec: spec.clone(),
        api_key: spec
            .api_key
            .clone()
            .unwrap_or_else(|| tenant.spec.openai.api_key.clone()),
        end: end.clone(),
    })
}

/// Starts the analysis of a call that just ended, on its own task (skipped for a call
/// shorter than `minTurns`); its document is sealed with the call's data key when the
/// record was.
pub fn start(state: &AppState, job: analysis::Job, data_key: Option<String>) {
    let tenant = job.end.tenant.clone();
    if !analysis::request::long_enough(&job.spec, &job.end) {
        state.analysis.metrics.skipped(&tenant);
        return;
    }
    let sid = job.end.call_sid.clone();
    let task_state = state.clone();
    spawn_tracked(state, &sid, async move {
        // The claim needs the call's row: wait for the end record queued just before.
        task_state.writer.flush(RECORD_FLUSH).await;
        tracing::debug!(call_sid = job.end.call_sid, "claiming the analysis");
        match claim(&task_state, &tenant, &job.end.call_sid).await {
            Claim::Taken => return,
            // No row yet (the store is down and the record spooled) or no answer: run
            // unclaimed, as before claims existed; the store cannot hand the call to
            // another pod while it is down either.
            Claim::Ours | Claim::Unknown => {}
        }
        run_and_store(&task_state, &job, data_key).await;
    });
}

enum Claim {
    /// This gateway holds it.
    Ours,
    /// Analysed, given up on, or another gateway's.
    Taken,
    /// The store could not tell (no row yet, or unreachable).
    Unknown,
}

async fn claim(state: &AppState, tenant: &str, call_sid: &str) -> Claim {
    let now_ms = crate::clock::unix_ms();
    let lease = i64::try_from(state.analysis.lease().as_millis()).unwrap_or(i64::MAX);
    let mark = AnalysisMark::Claim {
        call_sid: call_sid.to_string(),
        tenant: tenant.to_string(),
        owner: state.analysis.owner.clone(),
        now_ms,
        until_ms: now_ms.saturating_add(lease),
    };
    match state.store.mark_analysis(&mark).await {
        Ok(MarkOutcome::Applied) => Claim::Ours,
        Ok(MarkOutcome::Refused) => {
            tracing::debug!(
                call_sid,
                "analysis already stored, given up or claimed elsewhere"
            );
            Claim::Taken
        }
        Ok(MarkOutcome::Missing) => Claim::Unknown,
        Err(e) => {
            tracing::warn!(call_sid, error = %e, "could not claim the analysis; running it unclaimed");
            Claim::Unknown
        }
    }
}

/// Spawns an analysis task known to [`stop`]; nothing when one of the same call already
/// runs here.
fn spawn_tracked(
    state: &AppState,
    call_sid: &str,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    if state.analysis.is_running(call_sid) {
        return None;
    }
    let (go, ready) = tokio::sync::oneshot::channel::<()>();
    let done_state = state.clone();
    let sid = call_sid.to_string();
    let task = tokio::spawn(async move {
        // Starts only once tracked, so untracking always follows tracking.
        if ready.await.is_err() {
            return;
        }
        work.await;
        done_state.analysis.untrack(&sid);
    });
    if !state.analysis.track(call_sid, task.abort_handle()) {
        task.abort();
        return None;
    }
    let _ = go.send(());
    Some(task)
}

/// Runs one analysis and stores its result; on failure gives the call up for good or
/// gives its claim back for a later try.
async fn run_and_store(state: &AppState, job: &analysis::Job, data_key: Option<String>) {
    let tenant = job.end.tenant.clone();
    let sid = job.end.call_sid.clone();
    let t0 = Instant::now();
    match run(state, job, data_key).await {
        Ok(result) => {
            state
                .analysis
                .metrics
                .done(&tenant, t0.elapsed().as_secs_f64());
            state
                .writer
                .submit(StoreOp::Analysis(CallAnalysis {
                    call_sid: sid,
                    tenant,
                    analysis: result,
                }))
                .await;
        }
        Err(e) => {
            state.analysis.metrics.failed(&tenant, e.reason());
            tracing::warn!(call_sid = sid, tenant, error = %e, permanent = e.is_permanent(), "post-call analysis failed");
            let mark = if e.is_permanent() {
                AnalysisMark::Fail {
                    call_sid: sid.clone(),
                    tenant,
                    reason: format!("{}: {}", e.reason(), truncate(&e.to_string(), 300)),
                }
            } else {
                AnalysisMark::Release {
                    call_sid: sid.clone(),
                    owner: state.analysis.owner.clone(),
                }
            };
            if let Err(e) = state.store.mark_analysis(&mark).await {
                tracing::warn!(call_sid = sid, error = %e, "could not record the failed analysis (its claim lapses)");
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

async fn run(
    state: &AppState,
    job: &analysis::Job,
    data_key: Option<String>,
) -> Result<Analysis, analysis::AnalysisError> {
    let verdict = state.analysis.analyse(&state.secrets, job).await?;
    let mut document = verdict.document.to_string();
    if let Some(wrapped) = data_key {
        let (tenant, sid) = (&job.end.tenant, &job.end.call_sid);
        let kms = state.aws.kms().await;
        let key = kms
            .unwrap_base64(&wrapped, &context(tenant, sid))
            .await
            .map_err(|e| analysis::AnalysisError::Seal(e.to_string()))?;
        document = seal_analysis(&key, tenant, sid, &document)
            .map_err(|e| analysis::AnalysisError::Seal(e.to_string()))?;
    }
    Ok(Analysis {
        sentiment: verdict.sentiment,
        success: verdict.success,
        document: Some(document),
    })
}

/// Looks for the calls whose analysis never finished, at start and every
/// [`SWEEP_EVERY`] (the gateway's task; aborted at shutdown).
pub async fn recover(state: AppState) {
    loop {
        sweep(&state).await;
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

/// One look over every tenant that declares an analysis; returns how many analyses ran.
pub async fn sweep(state: &AppState) -> usize {
    let mut ran = 0;
    let tenants: Vec<_> = state
        .tenants
        .all()
        .filter(|t| t.spec.analysis.is_some())
        .cloned()
        .collect();
    for tenant in tenants {
        let Some(spec) = tenant.spec.analysis.as_ref() else {
            continue;
        };
        let now_ms = crate::clock::unix_ms();
        let look_back = i64::try_from(LOOK_BACK.as_millis()).unwrap_or(i64::MAX);
        let q = BacklogQuery {
            tenant: tenant.name.clone(),
            ended_from_ms: now_ms.saturating_sub(look_back),
            ended_before_ms: now_ms,
            min_turns: spec.min_turns,
            max_attempts: MAX_ATTEMPTS,
            now_ms,
            limit: SWEEP_BATCH,
        };
        let calls = match state.store.analysis_backlog(&q).await {
            Ok(calls) => calls,
            Err(e) => {
                tracing::warn!(tenant = tenant.name, error = %e, "could not look for unfinished analyses; next sweep tries again");
                continue;
            }
        };
        for sid in calls {
            if state.analysis.is_running(&sid) {
                continue;
            }
            if !matches!(claim(state, &tenant.name, &sid).await, Claim::Ours) {
                continue;
            }
            let Some((job, data_key)) = recovered_job(state, &tenant, &sid).await else {
                continue;
            };
            tracing::info!(
                call_sid = sid,
                tenant = tenant.name,
                "running a post-call analysis that had not finished"
            );
            let task_state = state.clone();
            if let Some(task) = spawn_tracked(state, &sid, async move {
                run_and_store(&task_state, &job, data_key).await;
            }) {
                // One at a time: a backlog after an outage must not flood the endpoint.
                let _ = task.await;
                ran += 1;
            }
        }
    }
    ran
}

/// The job of a claimed call read back from the store (its sealed fields opened), and
/// the wrapped data key its document is sealed with; `None` (the claim given back or the
/// call given up) when the record cannot be read.
async fn recovered_job(
    state: &AppState,
    tenant: &Tenant,
    call_sid: &str,
) -> Option<(analysis::Job, Option<String>)> {
    let mark = |reason: Option<String>| match reason {
        Some(reason) => AnalysisMark::Fail {
            call_sid: call_sid.to_string(),
            tenant: tenant.name.clone(),
            reason,
        },
        None => AnalysisMark::Release {
            call_sid: call_sid.to_string(),
            owner: state.analysis.owner.clone(),
        },
    };
    let read = async {
        let Some(mut rec) = state.store.get_call(call_sid).await? else {
            return Ok(None);
        };
        if rec.tenant != tenant.name {
            return Ok(None);
        }
        let data_key = rec.data_key.clone();
        if data_key.is_some() {
            let kms = state.aws.kms().await;
            open(&kms, &mut rec).await?;
        }
        Ok::<_, RecordError>(Some((rec, data_key)))
    };
    let outcome = match read.await {
        Ok(Some((rec, data_key))) => {
            let end = end_of(rec);
            return job(tenant, &end).map(|j| (j, data_key));
        }
        Ok(None) => None,
        Err(e @ RecordError::Sealed(_)) => Some(format!("record: {e}")),
        Err(e) => {
            tracing::warn!(call_sid, error = %e, "could not read a call to analyse; next sweep tries again");
            None
        }
    };
    if let Err(e) = state.store.mark_analysis(&mark(outcome)).await {
        tracing::warn!(call_sid, error = %e, "could not give the analysis claim back (it lapses)");
    }
    None
}

/// A stored record as the end of its call (what an analysis reads).
fn end_of(rec: CallRecord) -> CallEnd {
    CallEnd {
        call_sid: rec.call_sid,
        tenant: rec.tenant,
        ended_at_ms: rec.ended_at_ms.unwrap_or_default(),
        outcome: rec.outcome.unwrap_or_default(),
        detail: rec.detail,
        transcript: rec.transcript,
        usage: rec.usage,
        tool_calls: rec.tool_calls,
        barge_ins: rec.barge_ins,
        reconnects: rec.reconnects,
        model: rec.model,
        cost: rec.cost,
        data_key: None,
    }
}

/// At shutdown: aborts the analyses running here and gives their claims back, so the
/// next gateway to look runs them at once.
pub async fn stop(state: &AppState) {
    let aborted = state.analysis.abort_all();
    tracing::debug!(analyses = aborted.len(), "stopping post-call analyses");
    if aborted.is_empty() {
        return;
    }
    tracing::info!(
        analyses = aborted.len(),
        "post-call analyses stopped; another gateway or the next start runs them"
    );
    let release = async {
        for sid in aborted {
            let mark = AnalysisMark::Release {
                call_sid: sid,
                owner: state.analysis.owner.clone(),
            };
            if let Err(e) = state.store.mark_analysis(&mark).await {
                tracing::warn!(error = %e, "could not give an analysis claim back (it lapses)");
            }
        }
    };
    if tokio::time::timeout(RELEASE_TIMEOUT, release)
        .await
        .is_err()
    {
        tracing::warn!("giving analysis claims back timed out (they lapse)");
    }
}
