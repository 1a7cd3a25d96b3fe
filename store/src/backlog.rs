//! Post-call analyses that survive a gateway stop: which ended calls still wait for
//! their analysis, and the claim that lets one gateway pod (of the several a tenant may
//! run on one database) analyse a call while the others leave it alone.
//!
//! A claim is a lease on the call row (`analysis_claim_owner`, `analysis_claim_until_ms`):
//! taken in one `UPDATE … WHERE` (atomic on SQLite and on Postgres, where a concurrent
//! claim re-checks the row after the first commits), counted (`analysis_attempts`), given
//! back when a gateway stops mid-analysis, and simply expiring when a gateway dies. A
//! result ends the call's backlog (`analysis` is set, first answer wins); so does a
//! failure that retrying cannot fix (`analysis_failed`). The SQL is the same for both
//! databases.

use serde::{Deserialize, Serialize};

/// Which of a tenant's calls still wait for their analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacklogQuery {
    /// The tenant.
    pub tenant: String,
    /// Calls that ended at or after this Unix ms (the look-back window: older calls are
    /// given up on).
    pub ended_from_ms: i64,
    /// Calls that ended before this Unix ms.
    pub ended_before_ms: i64,
    /// Calls with at least this many transcript entries (`spec.analysis.minTurns`).
    pub min_turns: u32,
    /// Calls claimed fewer times than this (a call whose analysis keeps failing for a
    /// transient reason is given up on after that many attempts).
    pub max_attempts: u32,
    /// Unix ms now: a claim that expired before is free again.
    pub now_ms: i64,
    /// At most this many calls, oldest first.
    pub limit: u32,
}

/// A change to a call's analysis bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnalysisMark {
    /// Take the call's analysis for `owner` until `until_ms`, if it is not analysed, not
    /// given up on, and not claimed by another owner whose lease still runs at `now_ms`
    /// (an owner may renew its own claim). Counts an attempt.
    Claim {
        /// The call.
        call_sid: String,
        /// Its tenant (another tenant's row is never claimed).
        tenant: String,
        /// Who claims: one gateway process.
        owner: String,
        /// Unix ms now.
        now_ms: i64,
        /// Unix ms when the claim lapses.
        until_ms: i64,
    },
    /// Give back `owner`'s claim (a gateway stopping mid-analysis, or a failure worth
    /// retrying later).
    Release {
        /// The call.
        call_sid: String,
        /// The owner whose claim is dropped (another's is left alone).
        owner: String,
    },
    /// Give the call's analysis up for good: retrying cannot fix `reason` (the endpoint
    /// refused the request, the answer does not fit the schema, the record cannot be
    /// opened).
    Fail {
        /// The call.
        call_sid: String,
        /// Its tenant.
        tenant: String,
        /// Why, stored in `analysis_failed`.
        reason: String,
    },
}

/// What a mark did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarkOutcome {
    /// The row changed (for a claim: the call is now this owner's to analyse).
    Applied,
    /// The row exists but the mark did not apply (already analysed, given up on, or
    /// claimed by another owner).
    Refused,
    /// No row of this call for this tenant (yet: its end record may still be queued).
    Missing,
}

/// The calls of [`BacklogQuery`]: `$1` tenant, `$2` ended from, `$3` ended before, `$4`
/// max attempts, `$5` now, `$6` min turns, `$7` limit. Its predicate matches the partial
/// index `calls_analysis_backlog` (migration 0008), so it reads only unanalysed calls of
/// the window. Only analyses that were begun are resumed (claimed at least once: the
/// gateway claims a call as it ends, when its tenant declares an analysis then): a call
/// that ended while the tenant declared none is never sent to an analysis endpoint
/// later, when `spec.analysis` is added or the gateway is upgraded.
pub(crate) const SELECT_BACKLOG: &str = "SELECT call_sid FROM calls \
     WHERE tenant = $1 AND ended_at_ms >= $2 AND ended_at_ms < $3 \
       AND analysis IS NULL AND analysis_failed IS NULL \
       AND analysis_attempts > 0 AND analysis_attempts < $4 \
       AND (analysis_claim_until_ms IS NULL OR analysis_claim_until_ms < $5) \
       AND (SELECT count(*) FROM transcript_entries t WHERE t.call_sid = calls.call_sid) >= $6 \
     ORDER BY ended_at_ms, call_sid LIMIT $7";

/// [`AnalysisMark::Claim`]: `$1` call, `$2` tenant, `$3` owner, `$4` now, `$5` until.
pub(crate) const CLAIM: &str = "UPDATE calls SET analysis_claim_owner = $3, \
       analysis_claim_until_ms = $5, analysis_attempts = analysis_attempts + 1 \
     WHERE call_sid = $1 AND tenant = $2 AND ended_at_ms IS NOT NULL \
       AND analysis IS NULL AND analysis_failed IS NULL \
       AND (analysis_claim_until_ms IS NULL OR analysis_claim_until_ms < $4 \
         OR analysis_claim_owner = $3)";

/// [`AnalysisMark::Release`]: `$1` call, `$2` owner (owners name their tenant's pod).
pub(crate) const RELEASE: &str = "UPDATE calls SET analysis_claim_owner = NULL, \
       analysis_claim_until_ms = NULL \
     WHERE call_sid = $1 AND analysis_claim_owner = $2";

/// [`AnalysisMark::Fail`]: `$1` call, `$2` tenant, `$3` reason. An analysis already
/// stored is not overwritten by a failure.
pub(crate) const FAIL: &str = "UPDATE calls SET analysis_failed = $3, \
       analysis_claim_owner = NULL, analysis_claim_until_ms = NULL \
     WHERE call_sid = $1 AND tenant = $2 AND analysis IS NULL";

/// Whether a row of `call_sid` for `tenant` exists: `$1` call, `$2` tenant.
pub(crate) const EXISTS: &str = "SELECT 1 FROM calls WHERE call_sid = $1 AND tenant = $2";

impl AnalysisMark {
    /// The call the mark is about.
    pub fn call_sid(&self) -> &str {
        match self {
            AnalysisMark::Claim { call_sid, .. }
            | AnalysisMark::Release { call_sid, .. }
            | AnalysisMark::Fail { call_sid, .. } => call_sid,
        }
    }

    /// The tenant whose row must exist for [`MarkOutcome::Missing`] to be told apart
    /// from [`MarkOutcome::Refused`] (a release names no tenant: never "missing").
    pub(crate) fn tenant(&self) -> Option<&str> {
        match self {
            AnalysisMark::Claim { tenant, .. } | AnalysisMark::Fail { tenant, .. } => Some(tenant),
            AnalysisMark::Release { .. } => None,
        }
    }
}
