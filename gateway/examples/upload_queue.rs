//! Upload throughput of the recording queue (docs/performance.md, "Recordings"): N
//! finished one-minute recordings (two-channel 16-bit WAV at 8 kHz, 1.92 MB each, as the
//! recorder leaves them) wait in a queue directory; the real `UploadQueue` delivers them to
//! an S3 bucket (moto on loopback) with its own concurrency, multipart threshold and store
//! updates. Prints the wall time, MB/s, and the CPU this process used (pin it to one core
//! with `taskset`; the runtime is single-threaded, file work goes to the queue's own
//! threads in the same process), then a JSON line.
//!
//! ```text
//! eval "$(scripts/moto.sh start)"
//! cargo build --release -p switchboard-gateway --example upload_queue
//! taskset -c 1 $CARGO_TARGET_DIR/release/examples/upload_queue --s3-url "$SWITCHBOARD_TEST_S3_URL"
//! ```

use std::sync::Arc;

use prometheus::core::Collector;
use std::time::{Duration, Instant};

use switchboard_aws::AwsOptions;
use switchboard_gateway::recording::metrics::RecordingMetrics;
use switchboard_gateway::recording::queue::{Manifest, QueueOptions};
use switchboard_gateway::recording::s3::S3;
use switchboard_gateway::recording::{Destination, UploadQueue};
use switchboard_store::queue::QueueMetrics;
use switchboard_store::{WriteBehind, WriteBehindConfig};

/// One minute of two-channel 16-bit PCM at 8 kHz, with its 44-byte header.
const MINUTE_WAV: usize = 44 + 60 * 8000 * 2 * 2;

/// This process's user + system CPU so far, in seconds (`/proc/self/stat`, clock ticks of
/// 1/100 s on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with the last ')'): utime is the 12th,
    // stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut s3_url = None;
    let mut records = 100usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--s3-url" => s3_url = args.next(),
            "--records" => records = args.next().and_then(|v| v.parse().ok()).unwrap_or(records),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let url = s3_url.ok_or_else(|| anyhow::anyhow!("--s3-url URL (moto) is required"))?;
    // The one crypto provider of the build (reqwest is built without one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bucket = format!(
        "bench-upload-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    // moto takes an unsigned PUT as a bucket creation.
    let status = reqwest::Client::new()
        .put(format!("{url}/{bucket}"))
        .send()
        .await?
        .status();
    anyhow::ensure!(status.is_success(), "create bucket: {status}");

    let dir = tempfile::tempdir()?;
    let queue = dir.path().join("queue");
    std::fs::create_dir_all(&queue)?;
    // Samples that do not compress or repeat within a part (not that S3 would care).
    let wav: Vec<u8> = (0..MINUTE_WAV as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for i in 0..records {
        let sid = format!("CA{:032x}", 0xbe00_0000u64 + i as u64);
        std::fs::write(queue.join(format!("{sid}.wav")), &wav)?;
        let m = Manifest {
            call_sid: sid.clone(),
            tenant: "bench".into(),
            destination: Destination::S3 {
                bucket: bucket.clone(),
                key: format!("calls/bench/2026/12/07/{sid}.wav"),
                kms_key_id: None,
            },
            duration_ms: 60_000,
            bytes: wav.len() as u64,
        };
        std::fs::write(queue.join(format!("{sid}.json")), serde_json::to_vec(&m)?)?;
    }

    let store = switchboard_store::open(&format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("calls.db").display()
    ))
    .await?;
    let gauge = |n: &str| prometheus::IntGauge::new(n, "bench");
    let (writer, _task) = WriteBehind::start(
        store,
        WriteBehindConfig::new(dir.path().join("spool")),
        QueueMetrics {
            depth: gauge("depth")?,
            spooled: gauge("spooled")?,
            rejected: prometheus::IntCounterVec::new(
                prometheus::Opts::new("rejected", "bench"),
                &["reason"],
            )?,
        },
    )?;
    let metrics = RecordingMetrics::register(&prometheus::Registry::new())?;
    let s3 = Arc::new(S3::new(AwsOptions {
        endpoint_url: Some(url.clone()),
        region: Some("us-east-1".into()),
        credentials: Some(("testing".into(), "testing".into())),
    }));

    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let q = UploadQueue::start_with(
        queue.clone(),
        dir.path().join("recordings"),
        s3,
        writer,
        metrics.clone(),
        QueueOptions {
            rescan: Duration::from_secs(3600),
            ..QueueOptions::default()
        },
    )?;
    let deadline = t0 + Duration::from_secs(600);
    while (metrics.upload_seconds.get_sample_count() as usize) < records {
        anyhow::ensure!(Instant::now() < deadline, "uploads did not finish in 600 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let failures: u64 = metrics
        .upload_failures
        .collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum();
    q.drain(tokio::time::Instant::now() + Duration::from_secs(5))
        .await;
    let mb = metrics.upload_bytes.get() as f64 / 1e6;
    println!(
        "{records} one-minute recordings, {mb:.1} MB to S3 (moto) in {wall:.2} s: {:.1} MB/s, {:.1} recordings/s; \
         this process {cpu:.2} CPU s ({:.0} % of a core), {:.1} MB per CPU second; failed attempts {failures}",
        mb / wall,
        records as f64 / wall,
        cpu / wall * 100.0,
        mb / cpu.max(0.01)
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "upload_queue", "records": records, "mb": mb, "wall_s": wall,
            "mb_per_s": mb / wall, "cpu_s": cpu, "mb_per_cpu_s": mb / cpu.max(0.01),
            "failed_attempts": failures,
        })
    );
    Ok(())
}
