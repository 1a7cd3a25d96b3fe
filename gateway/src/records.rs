//! Call records between the call task and the store: sealing a finished call's record
//! for a tenant with `spec.encryption`, and the one read path that opens it again.
//!
//! # What is sealed, and how
//!
//! Transcript text, tool-call arguments and outputs, and the post-call analysis document
//! (the fields that hold what callers
//! said and what tools returned). Envelope encryption: one data key per call from KMS
//! `GenerateDataKey` under the tenant's `kmsKeyId` with the encryption context
//! `{tenant, call_sid}`; each field sealed with AES-256-GCM (ring) with associated data
//! naming its place (`tenant`, `call_sid`, field, position), so a ciphertext moved to
//! another row or field fails to open. The wrapped key is stored with the call
//! ([`CallEnd::data_key`]). Everything else (numbers, times, outcome, usage) stays clear:
//! it is what operations query.
//!
//! # KMS unreachable at the end of a call
//!
//! The record is sealed *before* it is queued: the write-behind queue, its spool file and
//! the database only ever see ciphertext. While KMS answers, the gateway holds a
//! [reserve data key](reserve) per encrypting tenant. When KMS cannot be reached at the
//! end of a call, the record is sealed under that key at once and written to
//! `<data dir>/sealing/` with the reserve key in its KMS-wrapped form ([`pending`]):
//! ciphertext at rest, readable only through KMS, and it survives a restart. When KMS
//! answers again the reserve key is re-wrapped (`ReEncrypt`) for the call's own context
//! `{tenant, call_sid}`, the record is queued and the file removed once the record is in
//! the store or its spool.
//!
//! Only a record that finds no reserve key (KMS was unreachable since the gateway
//! started, or the tenant's key just changed) keeps its clear form in this process's
//! memory, retried with backoff for `--seal-retry-seconds`; if that passes (or the
//! gateway stops first), it is stored without transcript and tool calls (`detail` says
//! why) rather than in clear.
//!
//! # Reading
//!
//! [`read_call`] is the one way a record leaves the store for an API: it opens sealed
//! fields, and a record whose key or context does not match is refused
//! ([`RecordError::Sealed`]), never returned as ciphertext or garbage.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use switchboard_aws::envelope::is_sealed;
use switchboard_aws::{AwsError, CryptoError, DataKey, Kms};
use switchboard_store::{CallEnd, CallRecord, StoreError, StoreOp};

use crate::analysis;

use crate::state::{AppState, Shared};

use crate::tenants::Tenant;

pub mod analyses;
pub mod pending;

pub use crate::reserve::Reserves;

/// Longest wait between two sealing attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// How long a re-sealed record may take to reach the store or its spool before its
/// pending file is kept for the next start.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a used or missing reserve key is replaced (at most).
const RESERVE_CHECK: Duration = Duration::from_secs(10);

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The store failed.
    #[error("call store unavailable: {0}")]
    Store(#[from] StoreError),
    /// The record's key cannot be unwrapped for this call (wrong context or key), or a
    /// field does not authenticate: the record was altered or moved.
    #[error("record cannot be decrypted: {0}")]
    Sealed(String),
    /// KMS could not be reached to unwrap the record's key (try again later).
    #[error("record key unavailable: {0}")]
    KmsUnavailable(String),
}

/// The KMS encryption context of a call's data key.
pub fn context<'a>(tenant: &'a str, call_sid: &'a str) -> [(&'static str, &'a str); 2] {
    [("tenant", tenant), ("call_sid", call_sid)]
}

/// Associated data of one sealed field: its place, length-prefixed so no two places
/// encode alike.
fn place(tenant: &str, call_sid: &str, field: &str, index: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(tenant.len() + call_sid.len() + field.len() + 40);
    for part in [tenant.as_bytes(), call_sid.as_bytes(), field.as_bytes()] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&(index as u64).to_be_bytes());
    out
}

/// Seals the transcript text and tool-call arguments and outputs of `end` with `key`,
/// and records its wrapped form in `end.data_key`.
///
/// # Errors
/// [`CryptoError::Random`] when no nonce could be drawn (nothing is left half-sealed
/// that would be stored: the caller keeps the original).
pub fn seal_with(key: &DataKey, end: &mut CallEnd) -> Result<(), CryptoError> {
    let (tenant, sid) = (end.tenant.clone(), end.call_sid.clone());
    for t in &mut end.transcript {
        t.text = key.seal(&place(&tenant, &sid, "transcript", t.seq as usize), &t.text)?;
    }
    for (i, c) in end.tool_calls.iter_mut().enumerate() {
        c.arguments = key.seal(&place(&tenant, &sid, "tool_arguments", i), &c.arguments)?;
        c.output = key.seal(&place(&tenant, &sid, "tool_output", i), &c.output)?;
    }
    end.data_key = Some(key.wrapped_base64());
    Ok(())
}

/// Opens the sealed fields of `rec` with `key`.
///
/// # Errors
/// [`CryptoError`] when a field is not sealed or does not authenticate in its place.
pub fn open_with(key: &DataKey, rec: &mut CallRecord) -> Result<(), CryptoError> {
    let (tenant, sid) = (rec.tenant.clone(), rec.call_sid.clone());
    for t in &mut rec.transcript {
        t.text = key.open(&place(&tenant, &sid, "transcript", t.seq as usize), &t.text)?;
    }
    for (i, c) in rec.tool_calls.iter_mut().enumerate() {
        c.arguments = key.open(&place(&tenant, &sid, "tool_arguments", i), &c.arguments)?;
        c.output = key.open(&place(&tenant, &sid, "tool_output", i), &c.output)?;
    }
    if let Some(doc) = &mut rec.analysis.document {
        *doc = key.open(&place(&tenant, &sid, "analysis", 0), doc)?;
    }
    rec.data_key = None;
    Ok(())
}

/// Seals a call's analysis document with the call's data key, in its place.
///
/// # Errors
/// [`CryptoError::Random`] when no nonce could be drawn.
pub fn seal_analysis(
    key: &DataKey,
    tenant: &str,
    call_sid: &str,
    document: &str,
) -> Result<String, CryptoError> {
    key.seal(&place(tenant, call_sid, "analysis", 0), document)
}

/// Generates the call's data key under `kms_key_id` and seals `end` (a clone: the
/// original stays intact for a retry).
///
/// # Errors
/// [`AwsError`] from KMS; a failed nonce draw reads as a transient error.
pub async fn seal(kms: &Kms, kms_key_id: &str, end: &CallEnd) -> Result<CallEnd, AwsError> {
    let key = kms
        .generate(kms_key_id, &context(&end.tenant, &end.call_sid))
        .await?;
    let mut sealed = end.clone();
    seal_with(&key, &mut sealed).map_err(|e| {
        AwsError::new(
            switchboard_aws::AwsErrorKind::Other,
            kms_key_id,
            e.to_string(),
        )
    })?;
    Ok(sealed)
}

/// Opens a record read from the store (a record without a data key is returned as is;
/// one whose fields look sealed without a key is refused).
///
/// # Errors
/// [`RecordError::Sealed`] for a wrong context, key or altered field;
/// [`RecordError::KmsUnavailable`] when KMS cannot be reached.
pub async fn open(kms: &Kms, rec: &mut CallRecord) -> Result<(), RecordError> {
    let Some(wrapped) = rec.data_key.clone() else {
        let sealed_without_key = rec.transcript.iter().any(|t| is_sealed(&t.text))
            || rec
                .tool_calls
                .iter()
                .any(|c| is_sealed(&c.arguments) || is_sealed(&c.output))
            || rec.analysis.document.as_deref().is_some_and(is_sealed);
        if sealed_without_key {
            return Err(RecordError::Sealed(
                "sealed fields but no data key stored".into(),
            ));
        }
        return Ok(());
    };
    let key = kms
        .unwrap_base64(&wrapped, &context(&rec.tenant, &rec.call_sid))
        .await
        .map_err(|e| match e.kind {
            switchboard_aws::AwsErrorKind::Unreachable => {
                RecordError::KmsUnavailable(e.to_string())
            }
            _ => RecordError::Sealed(format!("the data key does not unwrap for this call: {e}")),
        })?;
    open_with(&key, rec).map_err(|e| RecordError::Sealed(e.to_string()))
}

/// Reads one call record of `tenant` and opens its sealed fields: the read path of every
/// API that returns records. Another tenant's call is `None`, checked before any key is
/// unwrapped (a caller never makes the gateway ask KMS about another tenant's records).
///
/// # Errors
/// See [`RecordError`].
pub async fn read_call(
    state: &Shared,
    tenant: &str,
    call_sid: &str,
) -> Result<Option<CallRecord>, RecordError> {
    let Some(mut rec) = state.store.get_call(call_sid).await? else {
        return Ok(None);
    };
    if rec.tenant != tenant {
        return Ok(None);
    }
    if rec.data_key.is_some() {
        let kms = state.aws.kms().await;
        open(&kms, &mut rec).await?;
    }
    Ok(Some(rec))
}

/// Queues a finished call's record: as is, or sealed first for a tenant with
/// `spec.encryption`. When KMS cannot be reached, sealing is retried in the background
/// (see the module docs); the record is never queued in clear.
pub async fn submit_end(state: &AppState, tenant: &Tenant, end: CallEnd) {
    let job = analyses::job(tenant, &end);
    let Some(enc) = &tenant.spec.encryption else {
        state.writer.submit(StoreOp::End(Box::new(end))).await;
        if let Some(job) = job {
            analyses::start(state, job, None);
        }
        return;
    };
    let key_id = enc.kms_key_id.clone();
    let kms = state.aws.kms().await;
    let t0 = Instant::now();
    match seal(&kms, &key_id, &end).await {
        Ok(sealed) => {
            state
                .metrics
                .record_seal_seconds
                .observe(t0.elapsed().as_secs_f64());
            let data_key = sealed.data_key.clone();
            state.writer.submit(StoreOp::End(Box::new(sealed))).await;
            if let Some(job) = job {
                analyses::start(state, job, data_key);
            }
        }
        Err(e) => match seal_under_reserve(state, &kms, &key_id, end, &e).await {
            Some(end) => {
                state
                    .metrics
                    .record_seal_failures
                    .with_label_values(&["retrying"])
                    .inc();
                tracing::warn!(call_sid = end.call_sid, tenant = end.tenant, error = %e, "could not seal the call record; retrying (the record stays in memory only)");
                let state = state.clone();
                tokio::spawn(async move { retry_seal(state, kms, key_id, end, job).await });
            }
            // The record waits on disk for KMS under the reserve key; its analysis would
            // need the call's own data key, which only KMS can give back: not run.
            None => {
                if let Some(job) = job {
                    state.analysis.metrics.skipped(&job.end.tenant);
                    tracing::info!(
                        call_sid = job.end.call_sid,
                        "post-call analysis not run: the record waits for KMS"
                    );
                }
            }
        },
    }
}

/// KMS failed at the end of a call: seals `end` under the tenant's reserve key and
/// writes it to the sealing directory, then re-wraps its key when KMS answers. `None`
/// when that was done; the record back when there is no reserve key or the file could
/// not be written (the caller keeps it in memory).
async fn seal_under_reserve(
    state: &AppState,
    kms: &Kms,
    key_id: &str,
    end: CallEnd,
    error: &AwsError,
) -> Option<CallEnd> {
    let Some(reserve) = state.sealing.reserves.take(&end.tenant, key_id) else {
        return Some(end);
    };
    let mut sealed = end.clone();
    if let Err(e) = seal_with(&reserve.key, &mut sealed) {
        tracing::warn!(call_sid = end.call_sid, error = %e, "sealing under the reserve key failed");
        return Some(end);
    }
    let pending = pending::Pending::new(key_id, &reserve.id, reserve.key.wrapped(), sealed);
    let dir = state.sealing.dir.clone();
    let written = {
        let pending = pending.clone();
        tokio::task::spawn_blocking(move || pending::write(&dir, &pending)).await
    };
    match written {
        Ok(Ok(path)) => {
            state
                .metrics
                .record_seal_failures
                .with_label_values(&["reserved"])
                .inc();
            state.metrics.records_awaiting_kms.inc();
            tracing::warn!(call_sid = end.call_sid, tenant = end.tenant, error = %error, "KMS unreachable at the end of the call; the record is sealed under the tenant's reserve key and waits on disk for KMS");
            let kms = kms.clone();
            let task = finish_pending(state.clone(), kms, path, pending);
            state.sealing.spawn(task);
            None
        }
        Ok(Err(e)) => {
            tracing::error!(call_sid = end.call_sid, error = %e, "could not write the sealed record to disk");
            Some(end)
        }
        Err(e) => {
            tracing::error!(call_sid = end.call_sid, error = %e, "writing the sealed record failed");
            Some(end)
        }
    }
}

/// Re-wraps a pending record's reserve key for its call's own context (retried with
/// backoff while KMS is unreachable), queues the record and removes its file once the
/// record is in the store or the spool. A key KMS refuses for good (the reserve key does
/// not unwrap: wrong key, altered file) leaves the file for a human.
async fn finish_pending(state: AppState, kms: Kms, path: PathBuf, pending: pending::Pending) {
    let Some(wrapped) = pending.reserve_wrapped_bytes() else {
        tracing::error!(path = %path.display(), "pending sealed record holds no valid wrapped key; left in place");
        return;
    };
    let (tenant, sid) = (pending.end.tenant.clone(), pending.end.call_sid.clone());
    let from = crate::reserve::context(&tenant, &pending.reserve_id);
    let mut delay = state.sealing.first_retry;
    let rewrapped = loop {
        match kms
            .rewrap(
                &wrapped,
                &from,
                &pending.kms_key_id,
                &context(&tenant, &sid),
            )
            .await
        {
            Ok(k) => break k,
            Err(e) if e.kind == switchboard_aws::AwsErrorKind::InvalidCiphertext => {
                tracing::error!(call_sid = sid, error = %e, path = %path.display(), "KMS refuses the reserve key of a pending record; left in place");
                return;
            }
            Err(e) => {
                tracing::debug!(call_sid = sid, error = %e, "re-wrapping still failing");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    };
    let mut end = pending.end;
    end.data_key = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        rewrapped,
    ));
    state.writer.submit(StoreOp::End(Box::new(end))).await;
    if !state.writer.flush(FLUSH_TIMEOUT).await {
        // Neither stored nor spooled yet: keep the file; the next start does it again
        // (the end op is idempotent).
        tracing::warn!(
            call_sid = sid,
            "the re-sealed record is not stored yet; its file stays for the next start"
        );
        return;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {
            state.metrics.records_awaiting_kms.dec();
            tracing::info!(
                call_sid = sid,
                "pending record re-sealed for its call and stored"
            );
        }
        Err(e) => {
            tracing::warn!(call_sid = sid, error = %e, "could not remove a finished pending record")
        }
    }
}

/// Picks up the records a previous run left waiting for KMS (at start).
pub fn resume_pending(state: &AppState) {
    let found = pending::list(&state.sealing.dir);
    if found.is_empty() {
        return;
    }
    tracing::info!(
        records = found.len(),
        "records sealed under a reserve key wait for KMS"
    );
    state.metrics.records_awaiting_kms.add(found.len() as i64);
    for (path, p) in found {
        let task_state = state.clone();
        state.sealing.spawn(async move {
            let kms = task_state.aws.kms().await;
            finish_pending(task_state, kms, path, p).await;
        });
    }
}

/// Keeps a reserve data key for every tenant with `spec.encryption`: fetched at start,
/// replaced after use, retried on the secrets refresh schedule while KMS is unreachable.
pub async fn keep_reserves(state: AppState) {
    let encrypting: Vec<(String, String)> = state
        .tenants
        .all()
        .filter_map(|t| {
            Some((
                t.name.clone(),
                t.spec.encryption.as_ref()?.kms_key_id.clone(),
            ))
        })
        .collect();
    if encrypting.is_empty() {
        return;
    }
    let kms = state.aws.kms().await;
    loop {
        for (tenant, key_id) in &encrypting {
            match state.sealing.reserves.ensure(&kms, tenant, key_id).await {
                Ok(true) => tracing::debug!(tenant, "reserve data key fetched"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(tenant, error = %e, "could not fetch a reserve data key; records of calls ending while KMS is unreachable wait in memory")
                }
            }
        }
        tokio::time::sleep(RESERVE_CHECK.min(state.rotation.refresh_every)).await;
    }
}

async fn retry_seal(
    state: AppState,
    kms: Kms,
    key_id: String,
    end: CallEnd,
    job: Option<analysis::Job>,
) {
    let deadline = Instant::now() + state.sealing.retry_for;
    let mut delay = state.sealing.first_retry;
    let last_error = loop {
        tokio::time::sleep(delay).await;
        match seal(&kms, &key_id, &end).await {
            Ok(sealed) => {
                tracing::info!(call_sid = end.call_sid, "call record sealed after a retry");
                let data_key = sealed.data_key.clone();
                state.writer.submit(StoreOp::End(Box::new(sealed))).await;
                if let Some(job) = job {
                    analyses::start(&state, job, data_key);
                }
                return;
            }
            Err(e) if Instant::now() + delay < deadline => {
                tracing::debug!(call_sid = end.call_sid, error = %e, "sealing still failing");
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(e) => break e,
        }
    };
    state
        .metrics
        .record_seal_failures
        .with_label_values(&["withheld"])
        .inc();
    tracing::error!(call_sid = end.call_sid, tenant = end.tenant, error = %last_error, "could not seal the call record in time; storing it without transcript and tool calls");
    let mut withheld = end;
    withheld.transcript.clear();
    withheld.tool_calls.clear();
    withheld.detail = Some(match withheld.detail.take() {
        Some(d) => format!("{d}; transcript withheld: KMS unavailable"),
        None => "transcript withheld: KMS unavailable".into(),
    });
    state.writer.submit(StoreOp::End(Box::new(withheld))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_store::{Role, ToolCallRecord, TranscriptEntry};

    pub(crate) fn end() -> CallEnd {
        CallEnd {
            call_sid: "CA1".into(),
            tenant: "demo".into(),
            ended_at_ms: 1,
            outcome: "caller_hangup".into(),
            detail: None,
            transcript: (0..3)
                .map(|seq| TranscriptEntry {
                    seq,
                    role: Role::Caller,
                    text: format!("my card number is 4111 {seq}"),
                    start_ms: 0,
                    end_ms: 1,
                    interrupted: false,
                    heard_ms: None,
                })
                .collect(),
            usage: Default::default(),
            tool_calls: vec![ToolCallRecord {
                call_id: "c1".into(),
                name: "search_knowledge_base".into(),
                arguments: r#"{"query":"opening hours"}"#.into(),
                output: r#"{"passages":[]}"#.into(),
                latency_ms: 3,
                at_ms: None,
            }],
            barge_ins: 0,
            reconnects: Vec::new(),
            model: None,
            cost: None,
            data_key: None,
        }
    }

    fn record_of(end: &CallEnd) -> CallRecord {
        CallRecord {
            call_sid: end.call_sid.clone(),
            tenant: end.tenant.clone(),
            from: None,
            to: None,
            started_at_ms: None,
            ended_at_ms: Some(end.ended_at_ms),
            outcome: Some(end.outcome.clone()),
            detail: None,
            status: None,
            duration_s: None,
            status_sequence: None,
            barge_ins: 0,
            usage: Default::default(),
            transcript: end.transcript.clone(),
            tool_calls: end.tool_calls.clone(),
            reconnects: Vec::new(),
            model: None,
            cost: None,
            analysis: Default::default(),
            status_history: Vec::new(),
            recording: None,
            data_key: end.data_key.clone(),
            transfers: Vec::new(),
            voicemail_url: None,
            voicemail_duration_s: None,
        }
    }

    #[test]
    fn sealed_fields_hold_no_clear_text_and_open_in_place_only() {
        let key = DataKey::from_parts(&[9; 32], vec![1, 2, 3]).unwrap();
        let clear = end();
        let mut sealed = clear.clone();
        seal_with(&key, &mut sealed).unwrap();
        let json = serde_json::to_string(&sealed).unwrap();
        assert!(
            !json.contains("4111") && !json.contains("opening hours"),
            "{json}"
        );
        let mut rec = record_of(&sealed);
        open_with(&key, &mut rec).unwrap();
        assert_eq!(rec.transcript, clear.transcript);
        assert_eq!(rec.tool_calls, clear.tool_calls);

        // Two entries swapped in the table: both refuse to open.
        let mut swapped = record_of(&sealed);
        let t0 = swapped.transcript[0].text.clone();
        swapped.transcript[0].text = swapped.transcript[1].text.clone();
        swapped.transcript[1].text = t0;
        assert_eq!(open_with(&key, &mut swapped), Err(CryptoError::Forged));
        // The same row under another call's id: refused.
        let mut moved = record_of(&sealed);
        moved.call_sid = "CA2".into();
        assert_eq!(open_with(&key, &mut moved), Err(CryptoError::Forged));
        // Arguments and output exchanged: refused.
        let mut crossed = record_of(&sealed);
        let c = &mut crossed.tool_calls[0];
        std::mem::swap(&mut c.arguments, &mut c.output);
        assert_eq!(open_with(&key, &mut crossed), Err(CryptoError::Forged));
    }
}
