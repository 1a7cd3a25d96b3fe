//! Call store tests against real databases: SQLite in a temp dir, and Postgres at
//! `SWITCHBOARD_TEST_PG` (see scripts/postgres.sh; gated by `switchboard_testenv`).
//! Every Postgres test works in its own schema, so tests run in parallel.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, IntGauge, Opts};
use switchboard_store::postgres::PgStore;
use switchboard_store::queue::QueueMetrics;
use switchboard_store::sqlite::SqliteStore;
use switchboard_store::{
    self as store, BoxFuture, CallEnd, CallRecord, CallRecording, CallStart, CallStatusUpdate,
    CallStore, RecordingGone, RecordingRef, Role, StoreError, StoreOp, ToolCallRecord,
    TranscriptEntry, Usage, WriteBehind, WriteBehindConfig,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------- fixtures

fn start(sid: &str, started_at_ms: i64) -> StoreOp {
    StoreOp::Start(CallStart {
        call_sid: sid.into(),
        tenant: "acme".into(),
        from: "+14155550100".into(),
        to: "+14155550199".into(),
        started_at_ms,
    })
}

fn status(sid: &str, status: &str, seq: i64, duration_s: Option<i64>) -> StoreOp {
    StoreOp::Status(CallStatusUpdate {
        call_sid: sid.into(),
        tenant: "acme".into(),
        status: status.into(),
        duration_s,
        sequence_number: seq,
        received_at_ms: Some(1_700_000_000_000 + seq),
    })
}

fn transcript() -> Vec<TranscriptEntry> {
    vec![
        TranscriptEntry {
            seq: 0,
            role: Role::Agent,
            text: "Hello, Acme support. How can I help?".into(),
            start_ms: 120,
            end_ms: 2_400,
            interrupted: false,
            heard_ms: None,
        },
        TranscriptEntry {
            seq: 1,
            role: Role::Caller,
            text: "What are your opening hours?".into(),
            start_ms: 2_900,
            end_ms: 4_100,
            interrupted: false,
            heard_ms: None,
        },
        TranscriptEntry {
            seq: 2,
            role: Role::Agent,
            text: "We are open from nine to five, Monday to Friday, and on Saturdays".into(),
            start_ms: 4_600,
            end_ms: 6_000,
            interrupted: true,
            heard_ms: Some(1_250),
        },
        TranscriptEntry {
            seq: 3,
            role: Role::Caller,
            text: "Thanks, bye — ünïcödé ✓".into(),
            start_ms: 5_900,
            end_ms: 7_000,
            interrupted: false,
            heard_ms: None,
        },
    ]
}

fn end_op(sid: &str, transcript: Vec<TranscriptEntry>, outcome: &str) -> CallEnd {
    CallEnd {
        data_key: None,
        call_sid: sid.into(),
        tenant: "acme".into(),
        ended_at_ms: 1_700_000_060_000,
        outcome: outcome.into(),
        detail: Some("rate_limit_exceeded".into()),
        transcript,
        usage: Usage {
            responses: 3,
            total_tokens: 5_000,
            input_tokens: 3_200,
            output_tokens: 1_800,
            input_audio_tokens: 2_900,
            input_text_tokens: 300,
            cached_tokens: 1_024,
            output_audio_tokens: 1_700,
            output_text_tokens: 100,
            cached_text_tokens: 24,
            cached_audio_tokens: 1_000,
        },
        tool_calls: vec![
            ToolCallRecord {
                call_id: "call_1".into(),
                name: "search_knowledge".into(),
                arguments: r#"{"query":"opening hours"}"#.into(),
                output: r#"{"chunks":[{"id":"kb-1","text":"9-5"}]}"#.into(),
                latency_ms: 7,
                at_ms: Some(3_000),
            },
            ToolCallRecord {
                call_id: "call_2".into(),
                name: "end_call".into(),
                arguments: "{}".into(),
                output: r#"{"ok":true}"#.into(),
                latency_ms: 1,
                at_ms: None,
            },
        ],
        barge_ins: 1,
        reconnects: vec!["dropped".into(), "rotation".into()],
        model: Some("gpt-realtime-2".into()),
        cost: Some(store::CallCost {
            total_micro_usd: 123_456,
            detail: r#"{"source":"test"}"#.into(),
        }),
    }
}

fn end(sid: &str) -> StoreOp {
    StoreOp::End(Box::new(end_op(sid, transcript(), "caller_hangup")))
}

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn metrics() -> QueueMetrics {
    QueueMetrics {
        depth: IntGauge::new("depth", "queue depth").unwrap(),
        spooled: IntGauge::new("spooled", "spooled ops").unwrap(),
        rejected: IntCounterVec::new(Opts::new("rejected", "refused ops"), &["reason"]).unwrap(),
    }
}

async fn eventually(what: &str, limit: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- backends

async fn sqlite_store(dir: &Path) -> Arc<dyn CallStore> {
    let url = format!("sqlite:{}", dir.join("nested/dir/calls.db").display());
    store::open(&url).await.unwrap()
}

/// A schema of its own on the test server, dropped by [`PgSchema::drop`].
struct PgSchema {
    base: String,
    schema: String,
}

impl PgSchema {
    fn new() -> Option<Self> {
        let base = switchboard_testenv::service(
            "SWITCHBOARD_TEST_PG",
            "eval \"$(scripts/postgres.sh start)\"",
        )?;
        Some(Self {
            base,
            schema: unique("store_test"),
        })
    }

    /// The URL with this schema as search path, optionally through another address.
    fn url(&self, via: Option<SocketAddr>) -> String {
        let mut url = url::Url::parse(&self.base).unwrap();
        if let Some(addr) = via {
            url.set_host(Some(&addr.ip().to_string())).unwrap();
            url.set_port(Some(addr.port())).unwrap();
        }
        url.query_pairs_mut()
            .append_pair("options", &format!("-c search_path={}", self.schema));
        url.to_string()
    }

    fn server(&self) -> SocketAddr {
        let url = url::Url::parse(&self.base).unwrap();
        let host = url.host_str().unwrap_or("127.0.0.1");
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        SocketAddr::new(host.parse().unwrap(), url.port().unwrap_or(5432))
    }

    async fn open(&self) -> Arc<dyn CallStore> {
        store::open(&self.url(None)).await.unwrap()
    }

    async fn drop(self) {
        let pool = sqlx::PgPool::connect(&self.base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
}

/// Runs one store scenario against SQLite and against Postgres.
macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                super::$scenario(super::sqlite_store(dir.path()).await).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(pg) = super::PgSchema::new() else {
                    return;
                };
                super::$scenario(pg.open().await).await;
                pg.drop().await;
            }
        }
    };
}

// ---------------------------------------------------------------- record semantics

fn expected_full(sid: &str) -> CallRecord {
    let e = end_op(sid, transcript(), "caller_hangup");
    CallRecord {
        data_key: None,
        call_sid: sid.into(),
        tenant: "acme".into(),
        from: Some("+14155550100".into()),
        to: Some("+14155550199".into()),
        started_at_ms: Some(1_700_000_000_000),
        ended_at_ms: Some(1_700_000_060_000),
        outcome: Some("caller_hangup".into()),
        detail: Some("rate_limit_exceeded".into()),
        status: Some("completed".into()),
        duration_s: Some(60),
        status_sequence: Some(3),
        barge_ins: 1,
        reconnects: e.reconnects,
        usage: e.usage,
        transcript: e.transcript,
        tool_calls: e.tool_calls,
        model: e.model,
        cost: e.cost,
        analysis: store::Analysis::default(),
        status_history: [
            (0, "ringing", None),
            (1, "in-progress", None),
            (3, "completed", Some(60)),
        ]
        .into_iter()
        .map(|(seq, status, duration_s)| store::StatusEvent {
            sequence_number: seq,
            status: status.into(),
            duration_s,
            received_at_ms: Some(1_700_000_000_000 + seq),
        })
        .collect(),
        recording: None,
        transfers: Vec::new(),
        voicemail_url: None,
        voicemail_duration_s: None,
    }
}

/// `want` for a call that only received the final `completed` callback.
fn only_completed(mut want: CallRecord) -> CallRecord {
    want.status_history.retain(|e| e.status == "completed");
    want
}

async fn lifecycle(s: Arc<dyn CallStore>) {
    s.ping().await.unwrap();
    assert_eq!(s.get_call("CAnone").await.unwrap(), None);
    for op in [
        status("CA1", "ringing", 0, None),
        start("CA1", 1_700_000_000_000),
        status("CA1", "in-progress", 1, None),
        end("CA1"),
        status("CA1", "completed", 3, Some(60)),
    ] {
        s.apply(&op).await.unwrap();
    }
    assert_eq!(s.get_call("CA1").await.unwrap(), Some(expected_full("CA1")));
}
on_both!(lifecycle);

/// Rewrites `op` as tenant `tenant`'s (same CallSid).
fn as_tenant(op: StoreOp, tenant: &str) -> StoreOp {
    let mut op = op;
    match &mut op {
        StoreOp::Start(s) => s.tenant = tenant.into(),
        StoreOp::End(e) => e.tenant = tenant.into(),
        StoreOp::Status(s) => s.tenant = tenant.into(),
        StoreOp::Recording(r) => r.tenant = tenant.into(),
        StoreOp::Transfer(t) => t.tenant = tenant.into(),
        StoreOp::Voicemail(v) => v.tenant = tenant.into(),
        StoreOp::Analysis(a) => a.tenant = tenant.into(),
        StoreOp::RecordingGone(_) => {}
    }
    op
}

/// Tenant B writing a CallSid tenant A already has (a replayed spool, a shared database,
/// a forged or colliding CallSid) is refused with a clear error and changes nothing of
/// A's record: the call row, its data key, transcript, tool calls, status and recording.
async fn another_tenants_call_sid_is_refused(s: Arc<dyn CallStore>) {
    let recording = |tenant: &str, key: &str| {
        StoreOp::Recording(CallRecording {
            call_sid: "CAx".into(),
            tenant: tenant.into(),
            recording: RecordingRef {
                bucket: None,
                key: key.into(),
                duration_ms: 1_000,
                bytes: 16_044,
            },
        })
    };
    let mut a_end = end_op("CAx", transcript(), "caller_hangup");
    a_end.data_key = Some("a-wrapped-key".into());
    for op in [
        start("CAx", 1_700_000_000_000),
        status("CAx", "in-progress", 1, None),
        StoreOp::End(Box::new(a_end)),
        recording("acme", "acme/2026/12/07/CAx.wav"),
    ] {
        s.apply(&op).await.unwrap();
    }
    let before = s.get_call("CAx").await.unwrap().unwrap();
    assert_eq!(before.tenant, "acme");

    let mut b_end = end_op("CAx", transcript()[..1].to_vec(), "forged");
    b_end.tenant = "globex".into();
    b_end.data_key = Some("b-wrapped-key".into());
    b_end.tool_calls.clear();
    let mut b_start = start("CAx", 1);
    if let StoreOp::Start(st) = &mut b_start {
        st.from = "+15550000000".into();
    }
    for op in [
        as_tenant(b_start, "globex"),
        StoreOp::End(Box::new(b_end)),
        as_tenant(status("CAx", "completed", 9, Some(5)), "globex"),
        // An older sequence than A's: still refused, not silently ignored.
        as_tenant(status("CAx", "ringing", 0, None), "globex"),
        recording("globex", "globex/2026/12/07/CAx.wav"),
        StoreOp::Transfer(switchboard_store::CallTransfer {
            call_sid: "CAx".into(),
            tenant: "globex".into(),
            leg: 1,
            target: "front-desk".into(),
            dial_status: "completed".into(),
            dial_duration_s: Some(30),
            dial_call_sid: None,
            at_ms: 1_700_000_000_000,
        }),
        StoreOp::Voicemail(switchboard_store::CallVoicemail {
            call_sid: "CAx".into(),
            tenant: "globex".into(),
            recording_url: "https://api.twilio.com/forged".into(),
            duration_s: Some(3),
        }),
        StoreOp::Analysis(switchboard_store::CallAnalysis {
            call_sid: "CAx".into(),
            tenant: "globex".into(),
            analysis: store::Analysis {
                sentiment: Some("negative".into()),
                ..store::Analysis::default()
            },
        }),
    ] {
        match s.apply(&op).await {
            Err(StoreError::TenantConflict { call_sid, tenant }) => {
                assert_eq!((call_sid.as_str(), tenant.as_str()), ("CAx", "globex"));
            }
            other => panic!("{op:?} for another tenant: {other:?}"),
        }
    }
    let err = s
        .apply(&as_tenant(start("CAx", 1), "globex"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CAx") && err.contains("another tenant") && err.contains("globex"),
        "{err}"
    );
    let after = s.get_call("CAx").await.unwrap().unwrap();
    assert_eq!(after, before, "tenant B's writes changed tenant A's record");

    // A's own writes still apply.
    s.apply(&status("CAx", "completed", 3, Some(60)))
        .await
        .unwrap();
    let got = s.get_call("CAx").await.unwrap().unwrap();
    assert_eq!(got.status.as_deref(), Some("completed"));
}
on_both!(another_tenants_call_sid_is_refused);

async fn recording_is_set_and_cleared_only_for_its_key(s: Arc<dyn CallStore>) {
    let rec = |key: &str| {
        StoreOp::Recording(CallRecording {
            call_sid: "CA9".into(),
            tenant: "acme".into(),
            recording: RecordingRef {
                bucket: Some("acme-calls".into()),
                key: key.into(),
                duration_ms: 61_020,
                bytes: 1_952_684,
            },
        })
    };
    let gone = |key: &str| {
        StoreOp::RecordingGone(RecordingGone {
            call_sid: "CA9".into(),
            key: key.into(),
        })
    };
    // The upload may be stored before the call's end record: the row is created.
    s.apply(&rec("calls/acme/2026/12/07/CA9.wav"))
        .await
        .unwrap();
    s.apply(&end("CA9")).await.unwrap();
    let got = s.get_call("CA9").await.unwrap().unwrap();
    assert_eq!(got.outcome.as_deref(), Some("caller_hangup"));
    assert_eq!(
        got.recording,
        Some(RecordingRef {
            bucket: Some("acme-calls".into()),
            key: "calls/acme/2026/12/07/CA9.wav".into(),
            duration_ms: 61_020,
            bytes: 1_952_684,
        })
    );
    // Replayed: idempotent. Another key's deletion does not clear it.
    s.apply(&rec("calls/acme/2026/12/07/CA9.wav"))
        .await
        .unwrap();
    s.apply(&gone("calls/acme/2026/12/06/CA9.wav"))
        .await
        .unwrap();
    assert!(
        s.get_call("CA9")
            .await
            .unwrap()
            .unwrap()
            .recording
            .is_some()
    );
    s.apply(&gone("calls/acme/2026/12/07/CA9.wav"))
        .await
        .unwrap();
    let got = s.get_call("CA9").await.unwrap().unwrap();
    assert_eq!(got.recording, None);
    assert_eq!(got.outcome.as_deref(), Some("caller_hangup"));
    // A deletion of a call never stored is a no-op, not an error.
    s.apply(&StoreOp::RecordingGone(RecordingGone {
        call_sid: "CAnever".into(),
        key: "k".into(),
    }))
    .await
    .unwrap();
    assert_eq!(s.get_call("CAnever").await.unwrap(), None);
}
on_both!(recording_is_set_and_cleared_only_for_its_key);

async fn transcript_is_ordered_by_seq(s: Arc<dyn CallStore>) {
    s.apply(&start("CA2", 1)).await.unwrap();
    let mut shuffled = transcript();
    shuffled.reverse();
    s.apply(&StoreOp::End(Box::new(end_op(
        "CA2",
        shuffled,
        "agent_hangup",
    ))))
    .await
    .unwrap();
    let got = s.get_call("CA2").await.unwrap().unwrap();
    assert_eq!(got.transcript, transcript());
    let seqs: Vec<u32> = got.transcript.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    assert_eq!(got.transcript[2].heard_ms, Some(1_250));
    assert!(got.transcript[2].interrupted);
}
on_both!(transcript_is_ordered_by_seq);

async fn out_of_order_statuses_keep_newest(s: Arc<dyn CallStore>) {
    s.apply(&start("CA3", 5)).await.unwrap();
    s.apply(&status("CA3", "completed", 3, Some(42)))
        .await
        .unwrap();
    s.apply(&status("CA3", "in-progress", 2, None))
        .await
        .unwrap();
    s.apply(&status("CA3", "ringing", 0, None)).await.unwrap();
    // A retried callback with the same number changes nothing.
    s.apply(&status("CA3", "busy", 3, Some(1))).await.unwrap();
    let got = s.get_call("CA3").await.unwrap().unwrap();
    assert_eq!(got.status.as_deref(), Some("completed"));
    assert_eq!(got.duration_s, Some(42));
    assert_eq!(got.status_sequence, Some(3));
    // A newer event without a duration keeps the known one.
    s.apply(&status("CA3", "canceled", 4, None)).await.unwrap();
    let got = s.get_call("CA3").await.unwrap().unwrap();
    assert_eq!(got.status.as_deref(), Some("canceled"));
    assert_eq!(got.duration_s, Some(42));
    assert_eq!(got.status_sequence, Some(4));
    assert_eq!(got.started_at_ms, Some(5));
}
on_both!(out_of_order_statuses_keep_newest);

async fn status_before_start(s: Arc<dyn CallStore>) {
    s.apply(&status("CA4", "in-progress", 1, None))
        .await
        .unwrap();
    let got = s.get_call("CA4").await.unwrap().unwrap();
    assert_eq!(got.tenant, "acme");
    assert_eq!(got.status.as_deref(), Some("in-progress"));
    assert_eq!((got.from, got.to, got.started_at_ms), (None, None, None));
    assert_eq!(got.usage, Usage::default());
    assert!(got.transcript.is_empty());

    s.apply(&start("CA4", 77)).await.unwrap();
    // A replayed Start with other values does not overwrite the first.
    let StoreOp::Start(mut again) = start("CA4", 99) else {
        unreachable!()
    };
    again.from = "+10000000000".into();
    s.apply(&StoreOp::Start(again)).await.unwrap();

    let got = s.get_call("CA4").await.unwrap().unwrap();
    assert_eq!(got.from.as_deref(), Some("+14155550100"));
    assert_eq!(got.to.as_deref(), Some("+14155550199"));
    assert_eq!(got.started_at_ms, Some(77));
    assert_eq!(got.status.as_deref(), Some("in-progress"));
    assert_eq!(got.status_sequence, Some(1));
}
on_both!(status_before_start);

async fn end_replayed_is_idempotent(s: Arc<dyn CallStore>) {
    s.apply(&start("CA5", 1_700_000_000_000)).await.unwrap();
    s.apply(&status("CA5", "completed", 3, Some(60)))
        .await
        .unwrap();
    s.apply(&end("CA5")).await.unwrap();
    let once = s.get_call("CA5").await.unwrap().unwrap();
    s.apply(&end("CA5")).await.unwrap();
    s.apply(&start("CA5", 1_700_000_000_000)).await.unwrap();
    let twice = s.get_call("CA5").await.unwrap().unwrap();
    assert_eq!(once, twice);
    assert_eq!(twice, only_completed(expected_full("CA5")));

    // End replaces transcript and tool calls, never appends.
    let mut shorter = end_op("CA5", transcript()[..1].to_vec(), "openai_error");
    shorter.tool_calls.truncate(1);
    shorter.detail = None;
    s.apply(&StoreOp::End(Box::new(shorter.clone())))
        .await
        .unwrap();
    let got = s.get_call("CA5").await.unwrap().unwrap();
    assert_eq!(got.transcript, shorter.transcript);
    assert_eq!(got.tool_calls, shorter.tool_calls);
    assert_eq!(got.outcome.as_deref(), Some("openai_error"));
    assert_eq!(got.detail, None);
}
on_both!(end_replayed_is_idempotent);

async fn end_before_start(s: Arc<dyn CallStore>) {
    s.apply(&end("CA6")).await.unwrap();
    s.apply(&start("CA6", 1_700_000_000_000)).await.unwrap();
    s.apply(&status("CA6", "completed", 3, Some(60)))
        .await
        .unwrap();
    assert_eq!(
        s.get_call("CA6").await.unwrap(),
        Some(only_completed(expected_full("CA6")))
    );
}
on_both!(end_before_start);

async fn recent_calls_newest_first(s: Arc<dyn CallStore>) {
    for (sid, at) in [("CA_a", 1_000), ("CA_c", 3_000), ("CA_b", 2_000)] {
        s.apply(&start(sid, at)).await.unwrap();
        s.apply(&end(sid)).await.unwrap();
    }
    s.apply(&status("CA_nostart", "ringing", 0, None))
        .await
        .unwrap();
    let all = s.recent_calls(10).await.unwrap();
    let sids: Vec<&str> = all.iter().map(|c| c.call_sid.as_str()).collect();
    assert_eq!(sids, ["CA_c", "CA_b", "CA_a", "CA_nostart"]);
    assert!(all.iter().all(|c| c.transcript.is_empty()));
    assert_eq!(all[0].usage, end_op("x", vec![], "x").usage);
    let two = s.recent_calls(2).await.unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].call_sid, "CA_c");
}
on_both!(recent_calls_newest_first);

/// Seeds `n` calls of tenant `acme` a minute apart (calls 3 and 4 share a start), with
/// outcomes, durations and costs that the list and aggregate tests filter on, plus one
/// call of another tenant that must never show.
async fn seed_list(s: &dyn CallStore) -> Vec<String> {
    const DAY: i64 = 86_400_000;
    let base = 1_700_006_400_000 - (1_700_006_400_000 % DAY); // midnight UTC
    let mut sids = Vec::new();
    for i in 0..7_i64 {
        let sid = format!("CAlist{i:02}");
        let started = base + if i >= 4 { DAY } else { 0 } + i.min(3) * 60_000 + 1_000;
        s.apply(&StoreOp::Start(CallStart {
            call_sid: sid.clone(),
            tenant: "acme".into(),
            from: if i % 2 == 0 {
                "+14155550100"
            } else {
                "+14155550101"
            }
            .into(),
            to: "+14155550199".into(),
            started_at_ms: started,
        }))
        .await
        .unwrap();
        let mut e = end_op(
            &sid,
            Vec::new(),
            if i == 5 {
                "transferred"
            } else {
                "caller_hangup"
            },
        );
        e.ended_at_ms = started + (i + 1) * 10_000;
        if i == 6 {
            e.cost = None;
        }
        s.apply(&StoreOp::End(Box::new(e))).await.unwrap();
        sids.push(sid);
    }
    s.apply(&StoreOp::Start(CallStart {
        call_sid: "CAother".into(),
        tenant: "other".into(),
        from: "+14155550100".into(),
        to: "+14155550199".into(),
        started_at_ms: base + 5_000,
    }))
    .await
    .unwrap();
    sids
}

async fn list_pages_and_filters(s: Arc<dyn CallStore>) {
    let sids = seed_list(s.as_ref()).await;
    let mut q = store::CallQuery {
        tenant: "acme".into(),
        limit: 3,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = s.list_calls(&q).await.unwrap();
        pages += 1;
        assert!(page.calls.len() <= 3);
        assert!(
            page.calls
                .iter()
                .all(|c| c.transcript.is_empty() && c.tenant == "acme")
        );
        seen.extend(page.calls.iter().map(|c| c.call_sid.clone()));
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    // Newest first by (started_at_ms, call_sid): 04..06 share a start, so the CallSid
    // breaks the tie and pages still neither repeat nor skip a call.
    let mut want = sids.clone();
    want.reverse();
    assert_eq!(seen, want);

    let only = |f: fn(&mut store::CallQuery)| {
        let s = s.clone();
        async move {
            let mut q = store::CallQuery {
                tenant: "acme".into(),
                limit: 100,
                ..Default::default()
            };
            f(&mut q);
            let mut got: Vec<String> = s
                .list_calls(&q)
                .await
                .unwrap()
                .calls
                .into_iter()
                .map(|c| c.call_sid)
                .collect();
            got.sort();
            got
        }
    };
    assert_eq!(
        only(|q| q.from = Some("+14155550101".into())).await,
        ["CAlist01", "CAlist03", "CAlist05"]
    );
    assert_eq!(only(|q| q.transferred = Some(true)).await, ["CAlist05"]);
    assert_eq!(only(|q| q.transferred = Some(false)).await.len(), 6);
    assert_eq!(
        only(|q| q.outcome = Some("transferred".into())).await,
        ["CAlist05"]
    );
    // end_op's duration comes from ended - started: (i + 1) * 10 s.
    assert_eq!(
        only(|q| q.min_duration_s = Some(60)).await,
        ["CAlist05", "CAlist06"]
    );
    assert!(only(|q| q.success = Some(true)).await.is_empty());
    assert!(
        only(|q| q.sentiment = Some("positive".into()))
            .await
            .is_empty()
    );
    let first_day: Vec<String> = sids[..4].to_vec();
    let day2 = {
        let c = s.get_call("CAlist04").await.unwrap().unwrap();
        c.started_at_ms.unwrap() - 1_000
    };
    let mut q = store::CallQuery {
        tenant: "acme".into(),
        started_before_ms: Some(day2),
        limit: 100,
        ..Default::default()
    };
    let mut got: Vec<String> = s
        .list_calls(&q)
        .await
        .unwrap()
        .calls
        .into_iter()
        .map(|c| c.call_sid)
        .collect();
    got.sort();
    assert_eq!(got, first_day);
    q.started_before_ms = None;
    q.started_from_ms = Some(day2);
    assert_eq!(s.list_calls(&q).await.unwrap().calls.len(), 3);
}
on_both!(list_pages_and_filters);

async fn daily_stats_per_utc_day(s: Arc<dyn CallStore>) {
    seed_list(s.as_ref()).await;
    let c0 = s.get_call("CAlist00").await.unwrap().unwrap();
    let day0 = c0.started_at_ms.unwrap() - 1_000;
    let stats = s
        .daily_stats(
            "acme",
            store::DayRange {
                from_ms: day0,
                before_ms: day0 + 2 * 86_400_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(stats.len(), 2, "{stats:?}");
    assert_eq!(stats[0].day_start_ms, day0);
    assert_eq!(stats[0].calls, 4);
    assert_eq!(stats[0].timed_calls, 4);
    assert_eq!(stats[0].duration_s, 10 + 20 + 30 + 40);
    assert_eq!(stats[0].without_transfer, 4);
    assert_eq!(stats[0].priced_calls, 4);
    assert_eq!(stats[0].cost_micro_usd, 4 * 123_456);
    assert_eq!(stats[1].day_start_ms, day0 + 86_400_000);
    assert_eq!(stats[1].calls, 3);
    assert_eq!(stats[1].duration_s, 50 + 60 + 70);
    assert_eq!(stats[1].without_transfer, 2);
    assert_eq!(stats[1].priced_calls, 2);
    // Another tenant's call on day 0 is not counted.
    let other = s
        .daily_stats(
            "other",
            store::DayRange {
                from_ms: day0,
                before_ms: day0 + 86_400_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].calls, 1);
    assert_eq!(other[0].timed_calls, 0);
}
on_both!(daily_stats_per_utc_day);

/// The analysis backlog and its claims: only a tenant's ended, long-enough, unanalysed,
/// not given-up calls of the window are listed; one owner at a time holds a claim until
/// it lapses or is given back; attempts are counted; a failure or a stored analysis ends
/// the backlog; the first analysis stored stays.
async fn analysis_backlog_and_claims(s: Arc<dyn CallStore>) {
    use switchboard_store::{AnalysisMark, BacklogQuery, MarkOutcome};
    let long = transcript();
    assert!(long.len() >= 2);
    let ended = |sid: &str, t: Vec<TranscriptEntry>, at: i64, tenant: &str| {
        let mut e = end_op(sid, t, "caller_hangup");
        e.ended_at_ms = at;
        e.tenant = tenant.into();
        StoreOp::End(Box::new(e))
    };
    let t0 = 1_700_000_060_000;
    for op in [
        ended("CAb1", long.clone(), t0, "acme"),
        ended("CAb2", long[..1].to_vec(), t0, "acme"),
        ended("CAb3", long.clone(), 1_600_000_000_000, "acme"),
        ended("CAb4", long.clone(), t0 + 1, "acme"),
        ended("CAb5", long.clone(), t0, "other"),
        start("CAb7", t0),
    ] {
        s.apply(&op).await.unwrap();
    }
    let analysis = |sid: &str, doc: &str| {
        StoreOp::Analysis(switchboard_store::CallAnalysis {
            call_sid: sid.into(),
            tenant: "acme".into(),
            analysis: store::Analysis {
                sentiment: Some("positive".into()),
                success: Some(true),
                document: Some(doc.into()),
            },
        })
    };
    s.apply(&analysis("CAb4", "first")).await.unwrap();
    s.apply(&analysis("CAb4", "second")).await.unwrap();
    assert_eq!(
        s.get_call("CAb4")
            .await
            .unwrap()
            .unwrap()
            .analysis
            .document
            .as_deref(),
        Some("first"),
        "the first analysis stored stays"
    );

    let backlog = |now_ms: i64, max_attempts: u32| BacklogQuery {
        tenant: "acme".into(),
        ended_from_ms: t0 - 60_000,
        ended_before_ms: t0 + 60_000,
        min_turns: 2,
        max_attempts,
        now_ms,
        limit: 10,
    };
    let claim = |owner: &str, now_ms: i64| AnalysisMark::Claim {
        call_sid: "CAb1".into(),
        tenant: "acme".into(),
        owner: owner.into(),
        now_ms,
        until_ms: now_ms + 1_000,
    };
    let release = |owner: &str| AnalysisMark::Release {
        call_sid: "CAb1".into(),
        owner: owner.into(),
    };
    // Never begun (not claimed once: its tenant declared no analysis when it ended, so
    // adding one later must not send old transcripts anywhere): nothing is listed.
    assert!(s.analysis_backlog(&backlog(0, 5)).await.unwrap().is_empty());
    // Begun, its lease lapsed at once (a gateway stopped).
    for (sid, tenant) in [
        ("CAb1", "acme"),
        ("CAb2", "acme"),
        ("CAb3", "acme"),
        ("CAb5", "other"),
    ] {
        let begun = AnalysisMark::Claim {
            call_sid: sid.into(),
            tenant: tenant.into(),
            owner: "pod-0".into(),
            now_ms: 0,
            until_ms: 1,
        };
        assert_eq!(s.mark_analysis(&begun).await.unwrap(), MarkOutcome::Applied);
    }
    // Too short, too old, analysed, another tenant's, not ended: only CAb1.
    assert_eq!(s.analysis_backlog(&backlog(2, 5)).await.unwrap(), ["CAb1"]);

    let mark = |m: AnalysisMark| {
        let s = s.clone();
        async move { s.mark_analysis(&m).await.unwrap() }
    };
    assert_eq!(mark(claim("pod-a", 1_000)).await, MarkOutcome::Applied);
    assert_eq!(mark(claim("pod-b", 1_500)).await, MarkOutcome::Refused);
    assert!(
        s.analysis_backlog(&backlog(1_500, 5))
            .await
            .unwrap()
            .is_empty()
    );
    // pod-a renews its own claim; its lease then lapses and pod-b takes the call.
    assert_eq!(mark(claim("pod-a", 1_900)).await, MarkOutcome::Applied);
    assert_eq!(
        s.analysis_backlog(&backlog(3_000, 5)).await.unwrap(),
        ["CAb1"]
    );
    assert_eq!(mark(claim("pod-b", 3_000)).await, MarkOutcome::Applied);
    assert_eq!(mark(release("pod-a")).await, MarkOutcome::Refused);
    assert_eq!(mark(release("pod-b")).await, MarkOutcome::Applied);
    // Four claims so far: listed while fewer than the maximum were taken.
    assert_eq!(
        s.analysis_backlog(&backlog(3_000, 5)).await.unwrap(),
        ["CAb1"]
    );
    assert!(
        s.analysis_backlog(&backlog(3_000, 4))
            .await
            .unwrap()
            .is_empty()
    );

    // No row, or another tenant's: missing (the end record may still be queued).
    let missing = AnalysisMark::Claim {
        call_sid: "CAnone".into(),
        tenant: "acme".into(),
        owner: "pod-a".into(),
        now_ms: 0,
        until_ms: 1,
    };
    assert_eq!(mark(missing).await, MarkOutcome::Missing);
    let foreign = AnalysisMark::Claim {
        call_sid: "CAb5".into(),
        tenant: "acme".into(),
        owner: "pod-a".into(),
        now_ms: 0,
        until_ms: 1,
    };
    assert_eq!(mark(foreign).await, MarkOutcome::Missing);
    // A call without an end record is not claimed.
    let unended = AnalysisMark::Claim {
        call_sid: "CAb7".into(),
        tenant: "acme".into(),
        owner: "pod-a".into(),
        now_ms: 0,
        until_ms: 1,
    };
    assert_eq!(mark(unended).await, MarkOutcome::Refused);

    // Given up: out of the backlog, never claimed again.
    let fail = AnalysisMark::Fail {
        call_sid: "CAb1".into(),
        tenant: "acme".into(),
        reason: "refused".into(),
    };
    assert_eq!(mark(fail).await, MarkOutcome::Applied);
    assert!(
        s.analysis_backlog(&backlog(9_000, 50))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(mark(claim("pod-a", 9_000)).await, MarkOutcome::Refused);
    // An analysed call is neither claimed nor failed.
    let done = AnalysisMark::Claim {
        call_sid: "CAb4".into(),
        tenant: "acme".into(),
        owner: "pod-a".into(),
        now_ms: 0,
        until_ms: 1,
    };
    assert_eq!(mark(done).await, MarkOutcome::Refused);
}
on_both!(analysis_backlog_and_claims);

async fn hostile_text_is_stored(s: Arc<dyn CallStore>) {
    let mut t = transcript();
    t[1].text = "nul\0byte; DROP TABLE calls; -- 'quote' \"dq\"".into();
    let mut e = end_op("CA'7", t, "caller_hangup");
    e.tool_calls[0].arguments = "{\"q\":\"\\u0000\"}".into();
    s.apply(&StoreOp::End(Box::new(e))).await.unwrap();
    let got = s.get_call("CA'7").await.unwrap().unwrap();
    let text = &got.transcript[1].text;
    // Postgres cannot hold NUL in text: it is replaced, the rest kept.
    assert!(
        text == "nul\0byte; DROP TABLE calls; -- 'quote' \"dq\""
            || text == "nul\u{FFFD}byte; DROP TABLE calls; -- 'quote' \"dq\"",
        "{text:?}"
    );
    assert_eq!(got.tool_calls[0].arguments, "{\"q\":\"\\u0000\"}");
    assert_eq!(s.recent_calls(5).await.unwrap().len(), 1);
}
on_both!(hostile_text_is_stored);

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_reruns_no_migration() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a/b/calls.db").display());
    {
        let s = SqliteStore::open(&url).await.unwrap();
        s.apply(&start("CA8", 8)).await.unwrap();
        s.pool().close().await;
    }
    let s = SqliteStore::open(&url).await.unwrap();
    assert_eq!(
        s.get_call("CA8").await.unwrap().unwrap().started_at_ms,
        Some(8)
    );
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let s = store::open("sqlite::memory:").await.unwrap();
    s.apply(&start("CA9", 9)).await.unwrap();
    s.apply(&end("CA9")).await.unwrap();
    assert_eq!(
        s.get_call("CA9").await.unwrap().unwrap().transcript,
        transcript()
    );
}

#[tokio::test]
async fn unsupported_url_is_an_error() {
    assert!(matches!(
        store::open("mysql://x").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
    // A rotated secret that is not a URL is refused without its content in the message
    // (it is logged at every refresh).
    for secret in [
        "mysql://admin:hunter2@db:3306/x",
        r#"{"username":"admin","password":"hunter2"}"#,
        "hunter2",
    ] {
        let Err(e) = store::open(secret).await else {
            panic!("{secret} opened");
        };
        let shown = e.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[tokio::test]
async fn postgres_schema_is_created_and_isolated() {
    let (Some(a), Some(b)) = (PgSchema::new(), PgSchema::new()) else {
        return;
    };
    let sa = a.open().await;
    let sb = b.open().await;
    sa.apply(&start("CA10", 10)).await.unwrap();
    assert!(sb.get_call("CA10").await.unwrap().is_none());
    // Reopening runs no migration twice and sees the data.
    let again = PgStore::open(&a.url(None)).await.unwrap();
    assert!(again.get_call("CA10").await.unwrap().is_some());
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&a.schema)
    .fetch_one(again.pool())
    .await
    .unwrap();
    assert_eq!(
        tables, 6,
        "calls, transcript_entries, tool_calls, call_status_events, call_transfers, _sqlx_migrations"
    );
    a.drop().await;
    b.drop().await;
}

// ---------------------------------------------------------------- write-behind

/// A store that fails on demand and logs every op it applied, in order.
struct Flaky {
    inner: Arc<dyn CallStore>,
    down: AtomicBool,
    /// While down, take this long to fail (a server that does not answer).
    slow: AtomicBool,
    applied: Mutex<Vec<StoreOp>>,
}

impl Flaky {
    fn new(inner: Arc<dyn CallStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            down: AtomicBool::new(false),
            slow: AtomicBool::new(false),
            applied: Mutex::new(Vec::new()),
        })
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn applied(&self) -> Vec<StoreOp> {
        self.applied.lock().unwrap().clone()
    }

    async fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            if self.slow.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Err(StoreError::Database(sqlx::Error::PoolTimedOut))
        } else {
            Ok(())
        }
    }
}

impl CallStore for Flaky {
    fn apply<'a>(&'a self, op: &'a StoreOp) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.check().await?;
            self.inner.apply(op).await?;
            self.applied.lock().unwrap().push(op.clone());
            Ok(())
        })
    }

    fn get_call<'a>(
        &'a self,
        call_sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<CallRecord>, StoreError>> {
        self.inner.get_call(call_sid)
    }

    fn recent_calls(&self, limit: u32) -> BoxFuture<'_, Result<Vec<CallRecord>, StoreError>> {
        self.inner.recent_calls(limit)
    }

    fn list_calls<'a>(
        &'a self,
        q: &'a switchboard_store::CallQuery,
    ) -> BoxFuture<'a, Result<switchboard_store::CallPage, StoreError>> {
        self.inner.list_calls(q)
    }

    fn daily_stats<'a>(
        &'a self,
        tenant: &'a str,
        range: switchboard_store::DayRange,
    ) -> BoxFuture<'a, Result<Vec<switchboard_store::DailyStats>, StoreError>> {
        self.inner.daily_stats(tenant, range)
    }

    fn analysis_backlog<'a>(
        &'a self,
        q: &'a switchboard_store::BacklogQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.inner.analysis_backlog(q)
    }

    fn mark_analysis<'a>(
        &'a self,
        mark: &'a switchboard_store::AnalysisMark,
    ) -> BoxFuture<'a, Result<switchboard_store::MarkOutcome, StoreError>> {
        self.inner.mark_analysis(mark)
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.check().await?;
            self.inner.ping().await
        })
    }
}

fn cfg(dir: &Path) -> WriteBehindConfig {
    WriteBehindConfig {
        capacity: 16,
        spool_dir: dir.join("spool"),
        retry_interval: Duration::from_millis(50),
    }
}

/// A realistic stream of ops for `n` calls, with every kind of order hazard.
fn traffic(prefix: &str, n: usize) -> Vec<StoreOp> {
    let mut ops = Vec::new();
    for i in 0..n {
        let sid = format!("{prefix}{i}");
        ops.push(status(&sid, "in-progress", 1, None));
        ops.push(start(&sid, 1_700_000_000_000 + i as i64));
        ops.push(StoreOp::End(Box::new(end_op(
            &sid,
            transcript()[..1].to_vec(),
            "x",
        ))));
        ops.push(end(&sid)); // a later End must win
        ops.push(status(&sid, "completed", 3, Some(60)));
        ops.push(status(&sid, "ringing", 0, None)); // stale, ignored
    }
    ops
}

async fn assert_traffic_stored(s: &dyn CallStore, prefix: &str, n: usize) {
    for i in 0..n {
        let sid = format!("{prefix}{i}");
        let mut want = expected_full(&sid);
        want.started_at_ms = Some(1_700_000_000_000 + i as i64);
        assert_eq!(s.get_call(&sid).await.unwrap(), Some(want), "{sid}");
    }
}

#[tokio::test]
async fn write_behind_applies_in_order_when_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Flaky::new(sqlite_store(dir.path()).await);
    let m = metrics();
    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), m.clone()).unwrap();
    let ops = traffic("CAh", 20);
    for op in ops.clone() {
        wb.submit(op).await;
    }
    assert!(wb.flush(Duration::from_secs(10)).await);
    assert_eq!(flaky.applied(), ops);
    assert_eq!((m.depth.get(), m.spooled.get(), wb.spooled()), (0, 0, 0));
    assert_traffic_stored(flaky.as_ref(), "CAh", 20).await;
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
    assert!(!dir.path().join("spool/spool.jsonl").exists());
}

#[tokio::test]
async fn write_behind_spools_while_down_and_replays_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Flaky::new(sqlite_store(dir.path()).await);
    let m = metrics();
    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), m.clone()).unwrap();
    let ops = traffic("CAd", 40);
    let (before, during) = ops.split_at(60);
    for op in before.iter().cloned() {
        wb.submit(op).await;
    }
    assert!(wb.flush(Duration::from_secs(10)).await);
    flaky.set_down(true);

    // With the store down, submitting far more than the channel holds still completes
    // quickly: the worker spools instead of waiting for the database.
    let t0 = Instant::now();
    for op in during.iter().cloned() {
        wb.submit(op).await;
    }
    assert!(wb.flush(Duration::from_secs(10)).await);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let on_disk = during.len() as u64;
    assert_eq!(wb.spooled(), on_disk);
    assert_eq!(m.spooled.get(), on_disk as i64);
    assert_eq!(m.depth.get(), 0);
    let lines = std::fs::read_to_string(dir.path().join("spool/spool.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, on_disk);
    assert_eq!(flaky.applied(), before);

    // The store stays down for a few probes; nothing moves.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(wb.spooled(), on_disk);

    flaky.set_down(false);
    eventually("spool replay", Duration::from_secs(20), async || {
        wb.spooled() == 0
    })
    .await;
    assert!(wb.flush(Duration::from_secs(10)).await);
    assert_eq!(
        flaky.applied(),
        ops,
        "every op applied once, in submission order"
    );
    assert_traffic_stored(flaky.as_ref(), "CAd", 40).await;
    assert_eq!((m.depth.get(), m.spooled.get()), (0, 0));
    assert!(!dir.path().join("spool/spool.jsonl").exists());

    // Back to the direct path.
    wb.submit(start("CAafter", 1)).await;
    assert!(wb.flush(Duration::from_secs(5)).await);
    assert!(flaky.get_call("CAafter").await.unwrap().is_some());
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
}

#[tokio::test]
async fn slow_probe_does_not_hold_up_submitters() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Flaky::new(sqlite_store(dir.path()).await);
    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), metrics()).unwrap();
    flaky.set_down(true);
    wb.submit(start("CAs", 1)).await;
    assert!(wb.flush(Duration::from_secs(5)).await);
    // From now on every probe hangs for seconds; the channel (16) must keep draining
    // into the spool meanwhile.
    flaky.slow.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ops = traffic("CAs", 30);
    let t0 = Instant::now();
    for op in ops.clone() {
        wb.submit(op).await;
    }
    assert!(wb.flush(Duration::from_secs(2)).await);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(wb.spooled(), 1 + ops.len() as u64);
    flaky.slow.store(false, Ordering::SeqCst);
    flaky.set_down(false);
    eventually("replay", Duration::from_secs(20), async || {
        wb.spooled() == 0
    })
    .await;
    assert_traffic_stored(flaky.as_ref(), "CAs", 30).await;
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
}

#[tokio::test]
async fn spool_of_a_crashed_process_is_replayed_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Flaky::new(sqlite_store(dir.path()).await);
    flaky.set_down(true);
    let ops = traffic("CAc", 10);
    {
        let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), metrics()).unwrap();
        for op in ops.clone() {
            wb.submit(op).await;
        }
        assert!(wb.flush(Duration::from_secs(10)).await);
        assert_eq!(wb.spooled(), ops.len() as u64);
        // Crash: the worker dies mid-flight, no close, no goodbye.
        worker.abort();
        let _ = worker.await;
    }
    assert!(flaky.applied().is_empty());

    flaky.set_down(false);
    let m = metrics();
    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), m.clone()).unwrap();
    // New work queued behind the old spool lands after it.
    wb.submit(status("CAc0", "canceled", 9, None)).await;
    eventually(
        "replay after restart",
        Duration::from_secs(20),
        async || wb.spooled() == 0,
    )
    .await;
    assert!(wb.flush(Duration::from_secs(10)).await);
    let mut want = ops.clone();
    want.push(status("CAc0", "canceled", 9, None));
    assert_eq!(flaky.applied(), want);
    let got = flaky.get_call("CAc0").await.unwrap().unwrap();
    assert_eq!(got.status.as_deref(), Some("canceled"));
    assert_eq!(got.transcript, transcript());
    assert_eq!(m.spooled.get(), 0);
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
}

#[tokio::test]
async fn corrupt_spool_lines_are_kept_in_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    std::fs::create_dir_all(&spool_dir).unwrap();
    let good1 = serde_json::to_string(&start("CAx", 1)).unwrap();
    let good2 = serde_json::to_string(&end("CAx")).unwrap();
    let garbage = r#"{"op":"start","call_sid":"CAy","#;
    let torn = &good2[..good2.len() / 2];
    std::fs::write(
        spool_dir.join("spool.jsonl"),
        format!("{good1}\n{garbage}\n\n{good2}\n{torn}"),
    )
    .unwrap();

    let flaky = Flaky::new(sqlite_store(dir.path()).await);
    let m = metrics();
    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), m.clone()).unwrap();
    eventually("replay", Duration::from_secs(20), async || {
        wb.spooled() == 0
    })
    .await;
    assert!(wb.flush(Duration::from_secs(5)).await);
    assert_eq!(flaky.applied(), [start("CAx", 1), end("CAx")]);
    let bad = std::fs::read_to_string(spool_dir.join("spool.jsonl.bad")).unwrap();
    assert_eq!(bad, format!("{garbage}\n{torn}\n"));
    assert!(!spool_dir.join("spool.jsonl").exists());
    assert_eq!(m.spooled.get(), 0);
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
}

#[tokio::test]
async fn append_after_torn_tail_starts_a_new_line() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    std::fs::create_dir_all(&spool_dir).unwrap();
    std::fs::write(spool_dir.join("spool.jsonl"), r#"{"op":"sta"#).unwrap();
    let flaky = Flaky::new(sqlite_store(dir.path()).await);
    flaky.set_down(true);
    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), metrics()).unwrap();
    wb.submit(start("CAt", 1)).await;
    assert!(wb.flush(Duration::from_secs(5)).await);
    assert_eq!(wb.spooled(), 2, "torn line and new op");
    flaky.set_down(false);
    eventually("replay", Duration::from_secs(20), async || {
        wb.spooled() == 0
    })
    .await;
    assert_eq!(flaky.applied(), [start("CAt", 1)]);
    let bad = std::fs::read_to_string(spool_dir.join("spool.jsonl.bad")).unwrap();
    assert_eq!(bad, "{\"op\":\"sta\n");
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
}

#[tokio::test]
async fn refused_op_is_kept_and_does_not_wedge_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Flaky::new(sqlite_store(dir.path()).await);
    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), metrics()).unwrap();
    let mut dup = transcript();
    dup[1].seq = 0; // a session bug: two entries with one seq
    let bad = StoreOp::End(Box::new(end_op("CAr", dup, "x")));
    wb.submit(start("CAr", 1)).await;
    wb.submit(bad.clone()).await;
    wb.submit(end("CAr")).await;
    assert!(wb.flush(Duration::from_secs(10)).await);
    assert_eq!(flaky.applied(), [start("CAr", 1), end("CAr")]);
    assert_eq!(wb.spooled(), 0);
    let rejected = std::fs::read_to_string(dir.path().join("spool/rejected.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(rejected.trim()).unwrap();
    assert_eq!(
        serde_json::from_value::<StoreOp>(line["op"].clone()).unwrap(),
        bad
    );
    assert!(line["error"].as_str().unwrap().contains("UNIQUE"));
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
}

#[tokio::test]
async fn another_tenants_write_is_rejected_counted_and_does_not_wedge_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let m = metrics();
    let (wb, worker) = WriteBehind::start(store.clone(), cfg(dir.path()), m.clone()).unwrap();
    let foreign = as_tenant(end("CAt"), "globex");
    wb.submit(start("CAt", 1)).await;
    wb.submit(foreign.clone()).await;
    wb.submit(end("CAt")).await;
    assert!(wb.flush(Duration::from_secs(10)).await);
    assert_eq!(wb.spooled(), 0);
    let got = store.get_call("CAt").await.unwrap().unwrap();
    assert_eq!(
        (got.tenant.as_str(), got.outcome.as_deref()),
        ("acme", Some("caller_hangup"))
    );
    assert_eq!(m.rejected.with_label_values(&["tenant_conflict"]).get(), 1);
    assert_eq!(m.rejected.with_label_values(&["invalid"]).get(), 0);
    let rejected = std::fs::read_to_string(dir.path().join("spool/rejected.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(rejected.trim()).unwrap();
    assert_eq!(
        serde_json::from_value::<StoreOp>(line["op"].clone()).unwrap(),
        foreign
    );
    assert!(line["error"].as_str().unwrap().contains("another tenant"));
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
}

#[tokio::test]
async fn close_stops_the_worker_and_late_ops_are_spooled_for_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Flaky::new(sqlite_store(dir.path()).await);
    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), metrics()).unwrap();
    let late = wb.clone();
    wb.submit(start("CAl", 1)).await;
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
    assert_eq!(flaky.applied(), [start("CAl", 1)]);

    late.submit(end("CAl")).await;
    assert_eq!(late.spooled(), 1);
    assert!(late.flush(Duration::from_secs(1)).await);
    drop(late);

    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), metrics()).unwrap();
    eventually("replay", Duration::from_secs(20), async || {
        wb.spooled() == 0
    })
    .await;
    assert_eq!(flaky.applied(), [start("CAl", 1), end("CAl")]);
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
}

#[tokio::test]
async fn close_during_outage_leaves_the_spool_for_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Flaky::new(sqlite_store(dir.path()).await);
    flaky.set_down(true);
    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), metrics()).unwrap();
    let ops = traffic("CAo", 5);
    for op in ops.clone() {
        wb.submit(op).await;
    }
    let t0 = Instant::now();
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(flaky.applied().is_empty());

    flaky.set_down(false);
    let (wb, worker) = WriteBehind::start(flaky.clone(), cfg(dir.path()), metrics()).unwrap();
    eventually("replay", Duration::from_secs(20), async || {
        wb.spooled() == 0
    })
    .await;
    assert_eq!(flaky.applied(), ops);
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
}

#[tokio::test]
async fn spool_dir_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let s = sqlite_store(dir.path()).await;
    let (wb, worker) = WriteBehind::start(s.clone(), cfg(dir.path()), metrics()).unwrap();
    let second = WriteBehind::start(s.clone(), cfg(dir.path()), metrics());
    assert!(matches!(second, Err(StoreError::Spool { .. })));
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
    let (wb, worker) = WriteBehind::start(s, cfg(dir.path()), metrics()).unwrap();
    wb.close(Duration::from_secs(5)).await;
    worker.await.unwrap();
}

// ---------------------------------------------------------------- Postgres outage

/// A TCP proxy that can be cut (every connection dropped, new ones closed at once) and
/// restored, to take a real Postgres away from the store.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (up, conns) = (up.clone(), conns.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the connection close
                    }
                    conns.lock().unwrap().push(tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }));
                }
            }
        });
        Self {
            addr,
            up,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn postgres_outage_spools_and_recovers_without_loss() {
    let Some(pg) = PgSchema::new() else {
        return;
    };
    let proxy = Proxy::start(pg.server()).await;
    let s = store::open(&pg.url(Some(proxy.addr))).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = metrics();
    let (wb, worker) = WriteBehind::start(s.clone(), cfg(dir.path()), m.clone()).unwrap();
    let ops = traffic("CApg", 30);
    let (before, during) = ops.split_at(30);
    for op in before.iter().cloned() {
        wb.submit(op).await;
    }
    assert!(wb.flush(Duration::from_secs(20)).await);
    assert_eq!(wb.spooled(), 0);

    proxy.cut();
    for op in during.iter().cloned() {
        wb.submit(op).await;
    }
    assert!(wb.flush(Duration::from_secs(30)).await);
    assert_eq!(wb.spooled(), during.len() as u64);
    assert_eq!(m.depth.get(), 0);
    assert!(s.ping().await.is_err(), "the proxy is cut");

    proxy.restore();
    eventually(
        "replay into Postgres",
        Duration::from_secs(60),
        async || wb.spooled() == 0,
    )
    .await;
    assert!(wb.flush(Duration::from_secs(20)).await);
    assert_traffic_stored(s.as_ref(), "CApg", 30).await;
    assert_eq!((m.depth.get(), m.spooled.get()), (0, 0));
    wb.close(Duration::from_secs(10)).await;
    worker.await.unwrap();
    drop(proxy);
    pg.drop().await;
}

#[tokio::test]
async fn postgres_down_at_open_still_starts_and_migrates_later() {
    let Some(pg) = PgSchema::new() else {
        return;
    };
    let proxy = Proxy::start(pg.server()).await;
    proxy.cut();
    // A gateway must come up (and spool) while its database is down.
    let s = store::open(&pg.url(Some(proxy.addr))).await.unwrap();
    assert!(s.ping().await.is_err());
    let dir = tempfile::tempdir().unwrap();
    let (wb, worker) = WriteBehind::start(s.clone(), cfg(dir.path()), metrics()).unwrap();
    let ops = traffic("CAboot", 3);
    for op in ops.clone() {
        wb.submit(op).await;
    }
    assert!(wb.flush(Duration::from_secs(30)).await);
    assert_eq!(wb.spooled(), ops.len() as u64);

    proxy.restore();
    eventually("migrate and replay", Duration::from_secs(60), async || {
        wb.spooled() == 0
    })
    .await;
    assert_traffic_stored(s.as_ref(), "CAboot", 3).await;
    wb.close(Duration::from_secs(10)).await;
    worker.await.unwrap();
    drop(proxy);
    pg.drop().await;
}

#[tokio::test]
async fn postgres_refusal_at_open_is_an_error() {
    let Some(pg) = PgSchema::new() else {
        return;
    };
    let mut url = url::Url::parse(&pg.url(None)).unwrap();
    url.set_path(&format!("/{}", unique("no_such_db")));
    assert!(matches!(
        PgStore::open(url.as_str()).await,
        Err(StoreError::Database(sqlx::Error::Database(_)))
    ));
}

#[tokio::test]
async fn postgres_with_nothing_listening_spools() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let t0 = Instant::now();
    let s = store::open(&url).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let dir = tempfile::tempdir().unwrap();
    let (wb, worker) = WriteBehind::start(s, cfg(dir.path()), metrics()).unwrap();
    let ops = traffic("CAnl", 4);
    for op in ops.clone() {
        wb.submit(op).await;
    }
    assert!(wb.flush(Duration::from_secs(30)).await);
    assert_eq!(wb.spooled(), ops.len() as u64);
    let t0 = Instant::now();
    wb.close(Duration::from_secs(10)).await;
    worker.await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let spool = std::fs::read_to_string(dir.path().join("spool/spool.jsonl")).unwrap();
    let spooled: Vec<StoreOp> = spool
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(spooled, ops);
}

/// A store that takes the connection and never answers.
struct Hanging;

impl CallStore for Hanging {
    fn apply<'a>(&'a self, _op: &'a StoreOp) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(std::future::pending())
    }
    fn get_call<'a>(
        &'a self,
        _call_sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<CallRecord>, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn recent_calls(&self, _limit: u32) -> BoxFuture<'_, Result<Vec<CallRecord>, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn list_calls<'a>(
        &'a self,
        _q: &'a switchboard_store::CallQuery,
    ) -> BoxFuture<'a, Result<switchboard_store::CallPage, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn daily_stats<'a>(
        &'a self,
        _tenant: &'a str,
        _range: switchboard_store::DayRange,
    ) -> BoxFuture<'a, Result<Vec<switchboard_store::DailyStats>, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn analysis_backlog<'a>(
        &'a self,
        _q: &'a switchboard_store::BacklogQuery,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn mark_analysis<'a>(
        &'a self,
        _mark: &'a switchboard_store::AnalysisMark,
    ) -> BoxFuture<'a, Result<switchboard_store::MarkOutcome, StoreError>> {
        Box::pin(std::future::pending())
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn try_submit_drops_instead_of_waiting_when_the_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let m = metrics();
    let (q, _worker) = WriteBehind::start(
        Arc::new(Hanging),
        WriteBehindConfig {
            capacity: 2,
            ..cfg(dir.path())
        },
        m.clone(),
    )
    .unwrap();
    let mut refused = 0;
    for i in 0..10 {
        if q.try_submit(start(&format!("CA{i}"), 1)).is_err() {
            refused += 1;
        }
    }
    // One op is stuck in the store, two wait in the channel; the rest are refused at
    // once, and the depth gauge does not count them.
    assert!(refused >= 7, "refused {refused}");
    assert!(m.depth.get() <= 3, "depth {}", m.depth.get());
}

// ---------------------------------------------------------------- swappable store

/// A swap sends the next ops to the new store, and the old one is closed once nothing
/// holds it (a rotated database URL: the old pool drains, then ends).
#[tokio::test]
async fn a_swapped_store_takes_the_next_ops_and_the_old_one_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let old: Arc<dyn CallStore> = Arc::new(SqliteStore::open(&url("old.db")).await.unwrap());
    let new: Arc<dyn CallStore> = Arc::new(SqliteStore::open(&url("new.db")).await.unwrap());
    let swappable = store::SwappableStore::new(old.clone());
    swappable.apply(&start("CA1", 1)).await.unwrap();
    assert!(old.get_call("CA1").await.unwrap().is_some());
    swappable.replace(new.clone());
    swappable.apply(&start("CA2", 2)).await.unwrap();
    assert!(new.get_call("CA2").await.unwrap().is_some());
    assert!(new.get_call("CA1").await.unwrap().is_none());
    assert!(swappable.get_call("CA2").await.unwrap().is_some());
    // No op runs on the old store any more: its pool is closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while old.ping().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the replaced store was not closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swappable.ping().await.is_ok());
}
