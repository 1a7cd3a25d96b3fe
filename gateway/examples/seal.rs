//! Encryption cost per call record (docs/performance.md, "Record encryption"): sealing and
//! opening a representative finished call (40 utterances, 4 tool calls) with a fixed data
//! key (AES-256-GCM alone), and the whole path against a KMS (moto's server on loopback:
//! `GenerateDataKey` on write, `Decrypt` on read). Run by `bench/seal.sh`.
//!
//!   seal [--records N] [--kms-url URL]

use std::time::{Duration, Instant};

use switchboard_aws::{AwsOptions, DataKey, Kms};
use switchboard_gateway::records::{open_with, seal, seal_with};
use switchboard_store::{CallEnd, CallRecord, Role, ToolCallRecord, TranscriptEntry};

fn record() -> CallEnd {
    let sentence = "I would like to move my cleaning appointment to next Tuesday afternoon if that works, thanks.";
    CallEnd {
        call_sid: "CA0123456789abcdef0123456789abcdef".into(),
        tenant: "demo-dental".into(),
        ended_at_ms: 1,
        outcome: "caller_hangup".into(),
        detail: None,
        transcript: (0..40)
            .map(|seq| TranscriptEntry {
                seq,
                role: if seq % 2 == 0 {
                    Role::Caller
                } else {
                    Role::Agent
                },
                text: sentence.into(),
                start_ms: u64::from(seq) * 3000,
                end_ms: u64::from(seq) * 3000 + 2500,
                interrupted: false,
                heard_ms: None,
            })
            .collect(),
        usage: Default::default(),
        tool_calls: (0..4)
            .map(|i| ToolCallRecord {
                call_id: format!("call_{i}"),
                name: "search_knowledge_base".into(),
                arguments: r#"{"query":"opening hours on public holidays"}"#.into(),
                output: "x".repeat(1024),
                latency_ms: 20,
                at_ms: None,
            })
            .collect(),
        barge_ins: 0,
        reconnects: Vec::new(),
        model: None,
        cost: None,
        data_key: None,
    }
}

fn as_record(end: &CallEnd) -> CallRecord {
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let mut n = 2000usize;
    let mut kms_url: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--records" => n = args.next().and_then(|v| v.parse().ok()).unwrap_or(n),
            "--kms-url" => kms_url = args.next(),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let end = record();
    let clear_bytes: usize = end.transcript.iter().map(|t| t.text.len()).sum::<usize>()
        + end
            .tool_calls
            .iter()
            .map(|c| c.arguments.len() + c.output.len())
            .sum::<usize>();
    let key = DataKey::from_parts(&[7; 32], vec![0; 184]).expect("key");
    let mut seal_t = Vec::with_capacity(n);
    let mut open_t = Vec::with_capacity(n);
    let mut sealed_bytes = 0;
    for _ in 0..n {
        let mut e = end.clone();
        let t0 = Instant::now();
        seal_with(&key, &mut e).expect("seal");
        seal_t.push(t0.elapsed());
        sealed_bytes = e.transcript.iter().map(|t| t.text.len()).sum::<usize>()
            + e.tool_calls
                .iter()
                .map(|c| c.arguments.len() + c.output.len())
                .sum::<usize>();
        let mut r = as_record(&e);
        let t0 = Instant::now();
        open_with(&key, &mut r).expect("open");
        open_t.push(t0.elapsed());
    }
    let (s, o) = (median(seal_t), median(open_t));
    println!(
        "AES-256-GCM only, {n} records of 84 fields, {clear_bytes} clear bytes -> {sealed_bytes} stored: seal p50 {:.1} us, open p50 {:.1} us",
        us(s),
        us(o)
    );
    println!(
        "{{\"bench\":\"seal_local\",\"records\":{n},\"fields\":84,\"clear_bytes\":{clear_bytes},\"stored_bytes\":{sealed_bytes},\"seal_p50_us\":{:.1},\"open_p50_us\":{:.1}}}",
        us(s),
        us(o)
    );
    let Some(url) = kms_url else { return };
    let config = switchboard_aws::load_config(&AwsOptions {
        endpoint_url: Some(url),
        region: Some("us-east-1".into()),
        credentials: Some(("bench".into(), "bench".into())),
    })
    .await;
    let kms = Kms::new(&config);
    let key_id = aws_sdk_kms::Client::new(&config)
        .create_key()
        .send()
        .await
        .expect("create key")
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_string();
    let m = n.min(300);
    let mut write_t = Vec::with_capacity(m);
    let mut read_t = Vec::with_capacity(m);
    for _ in 0..m {
        let t0 = Instant::now();
        let sealed = seal(&kms, &key_id, &end).await.expect("seal with KMS");
        write_t.push(t0.elapsed());
        let mut r = as_record(&sealed);
        let t0 = Instant::now();
        switchboard_gateway::records::open(&kms, &mut r)
            .await
            .expect("open with KMS");
        read_t.push(t0.elapsed());
    }
    let (w, r) = (median(write_t), median(read_t));
    println!(
        "with KMS (moto on loopback), {m} records: seal p50 {:.0} us (GenerateDataKey + AES), open p50 {:.0} us (Decrypt + AES)",
        us(w),
        us(r)
    );
    println!(
        "{{\"bench\":\"seal_kms\",\"records\":{m},\"seal_p50_us\":{:.0},\"open_p50_us\":{:.0}}}",
        us(w),
        us(r)
    );
}
