//! Call recordings end to end: a real gateway records simulated calls and uploads them
//! to moto's S3 server (gated by `switchboard_testenv`: `eval "$(scripts/moto.sh start)"`).
//!
//! - A call with a barge-in becomes one object: a valid two-channel WAV as long as the
//!   call, the agent channel silent from the barge-in's `clear` on.
//! - S3 down during the upload: the recording waits on disk across a gateway restart and
//!   arrives once S3 is back; the local file is then gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use switchboard_gateway::server::Gateway;
use switchboard_sim::caller::{CallReport, Step, default_script, place_call};
use switchboard_store::CallRecord;
use switchboard_tests::s3::Bucket;
use switchboard_tests::{Env, EnvOptions, metric};

use switchboard_tests::services::aws_options as aws;

fn recordings_yaml(bucket: &str) -> String {
    format!(
        "  recordings:\n    enabled: true\n    bucket: {bucket}\n    prefix: /calls/\n    disclosure: This call may be recorded.\n"
    )
}

fn unique_bucket(what: &str) -> String {
    format!(
        "rec-{what}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000_000
    )
}

/// Waits until the record of `sid` names its recording.
async fn recorded(gw: &Gateway, sid: &str, limit: Duration) -> CallRecord {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(Some(r)) = gw.state.store.get_call(sid).await
            && r.recording.is_some()
        {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recording on the record of {sid} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A parsed 16-bit PCM WAV.
struct Wav {
    channels: u16,
    rate: u32,
    bits: u16,
    /// (left, right) per frame.
    frames: Vec<(i16, i16)>,
}

fn parse_wav(b: &[u8]) -> Wav {
    assert_eq!(&b[0..4], b"RIFF");
    assert_eq!(&b[8..12], b"WAVE");
    assert_eq!(&b[12..16], b"fmt ");
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    assert_eq!(u32_at(4) as usize, b.len() - 8, "RIFF size");
    assert_eq!(u16_at(20), 1, "PCM");
    assert_eq!(&b[36..40], b"data");
    let data = u32_at(40) as usize;
    assert_eq!(data, b.len() - 44, "data size");
    let frames = b[44..]
        .chunks_exact(4)
        .map(|f| {
            (
                i16::from_le_bytes([f[0], f[1]]),
                i16::from_le_bytes([f[2], f[3]]),
            )
        })
        .collect();
    Wav {
        channels: u16_at(22),
        rate: u32_at(24),
        bits: u16_at(34),
        frames,
    }
}

impl Wav {
    fn duration_ms(&self) -> u64 {
        self.frames.len() as u64 * 1000 / u64::from(self.rate)
    }

    /// Largest |sample| of a channel (0 left, 1 right) between two times.
    fn peak(&self, channel: usize, from_ms: u64, to_ms: u64) -> i32 {
        let from = (from_ms * 8) as usize;
        let to = ((to_ms * 8) as usize).min(self.frames.len());
        self.frames[from.min(to)..to]
            .iter()
            .map(|&(l, r)| i32::from(if channel == 0 { l } else { r }).abs())
            .max()
            .unwrap_or(0)
    }
}

fn check_call(report: &CallReport) {
    assert!(report.is_clean(), "{report:#?}");
}

#[tokio::test]
async fn a_recorded_call_is_one_stereo_wav_cut_where_the_caller_barged_in() {
    let Some(url) = switchboard_tests::s3::url() else {
        return;
    };
    switchboard_tests::init();
    let bucket = Bucket::new(&url, &unique_bucket("call"));
    bucket.create().await;
    let env = Env::start(EnvOptions {
        spec_extra: recordings_yaml(&bucket.name),
        aws: aws(&url),
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let report = place_call(&env.call(default_script(true, None)))
        .await
        .unwrap();
    check_call(&report);
    let sid = report.call_sid.clone();
    let record = recorded(env.gw(), &sid, Duration::from_secs(30)).await;
    let rec = record.recording.clone().unwrap();
    assert_eq!(rec.bucket.as_deref(), Some(bucket.name.as_str()));
    let date = jiff::Timestamp::from_millisecond(record.started_at_ms.unwrap())
        .unwrap()
        .strftime("%Y/%m/%d")
        .to_string();
    assert_eq!(rec.key, format!("calls/demo/{date}/{sid}.wav"));
    assert_eq!(bucket.list("calls/demo/").await, vec![rec.key.clone()]);

    let (headers, body) = bucket.get(&rec.key).await;
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(headers["x-amz-meta-tenant"], "demo");
    assert_eq!(headers["x-amz-meta-call-sid"], sid.as_str());
    assert_eq!(body.len() as u64, rec.bytes);
    let wav = parse_wav(&body);
    assert_eq!((wav.channels, wav.rate, wav.bits), (2, 8000, 16));
    let call_ms = report.stream_ms;
    assert!(
        wav.duration_ms().abs_diff(call_ms) <= 100,
        "recording {} ms, call {call_ms} ms",
        wav.duration_ms()
    );
    assert_eq!(rec.duration_ms.abs_diff(wav.duration_ms()), 0);

    // The barge-in: the turn the clear cut, and the next agent turn.
    let cut = report
        .turns
        .iter()
        .position(|t| t.cut_by_clear)
        .expect("a turn cut by clear");
    let turn = &report.turns[cut];
    let clear_ms = turn.start_ms + turn.heard_ms_at_clear.unwrap();
    let next_ms = report.turns[cut + 1].start_ms;
    assert!(next_ms > clear_ms + 500, "{:?}", report.turns);
    // The agent was audible in the turn before the clear …
    assert!(
        wav.peak(1, turn.start_ms + 50, clear_ms.saturating_sub(50)) > 1000,
        "agent channel silent while the caller heard the agent"
    );
    // … and silent from the clear until its next turn.
    assert_eq!(
        wav.peak(1, clear_ms + 60, next_ms.saturating_sub(60)),
        0,
        "agent channel not silent after the clear at {clear_ms} ms (next turn {next_ms} ms)"
    );
    // The caller's barge-in speech is on the left channel around the clear.
    assert!(wav.peak(0, clear_ms.saturating_sub(200), clear_ms + 200) > 1000);
    // The greeting starts with the disclosure (what the agent said first).
    let sessions = env.realtime.sessions();
    let first = sessions
        .iter()
        .flat_map(|s| s.responses.iter())
        .next()
        .map(|r| r.text.clone())
        .unwrap_or_default();
    assert!(
        first.starts_with("This call may be recorded. Thanks for calling"),
        "{first:?}"
    );
    // Nothing left behind locally.
    let queue = env.data_dir().join("recordings/queue");
    assert_eq!(std::fs::read_dir(&queue).unwrap().count(), 0);
    let work = env.data_dir().join("recordings/work");
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
    // The admin API answers with a presigned link to the object: fetched without any key
    // or signature of ours, moto returns the WAV.
    let api = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let route = format!("{}/api/v1/calls/{sid}/recording", env.base);
    let r = api
        .get(&route)
        .bearer_auth(switchboard_tests::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::FOUND);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/{}/", url.trim_end_matches('/'), bucket.name))
            && location.contains("X-Amz-Signature=")
            && location.contains("X-Amz-Expires=300"),
        "{location}"
    );
    let fetched = reqwest::get(&location).await.unwrap();
    assert_eq!(fetched.status(), reqwest::StatusCode::OK);
    assert_eq!(fetched.headers()["content-type"], "audio/wav");
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), body);
    let link: serde_json::Value = serde_json::from_slice(
        &api.get(format!("{route}?redirect=false"))
            .bearer_auth(switchboard_tests::API_KEY)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(link["storage"], "s3");
    let expires: jiff::Timestamp = link["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires.as_second() - jiff::Timestamp::now().as_second();
    assert!((200..=300).contains(&left), "{link}");
    // Without a key: no link.
    let r = api.get(&route).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);

    let m = env.metrics().await;
    assert_eq!(metric(&m, "switchboard_recording_queue_depth"), 0.0);
    assert_eq!(
        metric(&m, "switchboard_recording_events_dropped_total"),
        0.0
    );
    assert_eq!(
        metric(&m, "switchboard_recording_upload_bytes_total"),
        rec.bytes as f64
    );
}

/// A moto server of this test's own (the shared one must keep running for other tests).
struct OwnMoto {
    child: Child,
}

fn moto_command() -> PathBuf {
    let cache = std::env::var_os("SWITCHBOARD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/switchboard")
        });
    cache.join("moto/venv/bin/moto_server")
}

impl OwnMoto {
    async fn start(port: u16) -> OwnMoto {
        // Owned at once: Drop kills and reaps it on every path, the panic below included.
        let moto = OwnMoto {
            child: Command::new(moto_command())
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("moto_server (installed by scripts/moto.sh)"),
        };
        let url = format!("http://127.0.0.1:{port}/");
        for _ in 0..150 {
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("own moto_server did not answer on {port}");
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_recording_waits_on_disk_while_s3_is_down_and_survives_a_restart() {
    // Gated like every S3 test; moto itself was installed by scripts/moto.sh.
    if switchboard_tests::s3::url().is_none() {
        return;
    }
    switchboard_tests::init();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let moto = OwnMoto::start(port).await;
    let bucket = Bucket::new(&url, "rec-restart");
    bucket.create().await;
    let mut env = Env::start(EnvOptions {
        spec_extra: recordings_yaml(&bucket.name),
        aws: aws(&url),
        drain_seconds: 2,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    // S3 goes away during the call: the upload at its end fails.
    moto.stop();
    let script = vec![
        Step::WaitForAgent {
            min_heard_ms: 800,
            timeout_ms: 15_000,
        },
        Step::Silence { ms: 200 },
        Step::Hangup,
    ];
    let report = place_call(&env.call(script)).await.unwrap();
    check_call(&report);
    let sid = report.call_sid.clone();
    let queue = env.data_dir().join("recordings/queue");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric(
        &env.metrics().await,
        "switchboard_recording_upload_failures_total{reason=\"unreachable\"}",
    ) < 1.0
    {
        assert!(tokio::time::Instant::now() < deadline, "no failed upload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&env.metrics().await, "switchboard_recording_queue_depth"),
        1.0
    );
    // Drained within its 2 s: the recording stays queued on disk.
    env.stop_gateway().await;
    assert_eq!(
        files(&queue),
        vec![format!("{sid}.json"), format!("{sid}.wav")]
    );
    let wav_bytes = std::fs::metadata(queue.join(format!("{sid}.wav")))
        .unwrap()
        .len();

    // S3 is back (moto keeps nothing across restarts: the bucket is created again) and
    // the gateway starts again on the same data directory.
    let _moto = OwnMoto::start(port).await;
    bucket.create().await;
    env.gateway = Some(Gateway::start(&env.cli).await.unwrap());
    let record = recorded(env.gw(), &sid, Duration::from_secs(30)).await;
    let rec = record.recording.unwrap();
    let (_, body) = bucket.get(&rec.key).await;
    assert_eq!(body.len() as u64, wav_bytes);
    assert_eq!(parse_wav(&body).channels, 2);
    assert!(files(&queue).is_empty(), "{:?}", files(&queue));
    env.stop_gateway().await;
}

#[tokio::test]
async fn large_recordings_go_up_in_parts_and_expire_after_their_retention() {
    let Some(url) = switchboard_tests::s3::url() else {
        return;
    };
    switchboard_tests::init();
    use switchboard_gateway::recording::s3::{S3, Upload};
    let bucket = Bucket::new(&url, &unique_bucket("parts"));
    bucket.create().await;
    let dir = tempfile::tempdir().unwrap();
    // 11 MiB: two 8 MiB-or-less parts past a 5 MiB threshold.
    let path = dir.path().join("big.wav");
    let big: Vec<u8> = (0..11 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &big).unwrap();
    let s3 = S3::new(aws(&url)).with_multipart_threshold(5 * 1024 * 1024);
    let sid = "CA0123456789abcdef0123456789abcdef";
    let key = format!("calls/acme/2026/12/07/{sid}.wav");
    let size = s3
        .put(
            Upload {
                bucket: &bucket.name,
                key: &key,
                kms_key_id: None,
                tenant: "acme",
                call_sid: sid,
            },
            &path,
        )
        .await
        .unwrap();
    assert_eq!(size, big.len() as u64);
    let (headers, body) = bucket.get(&key).await;
    assert_eq!(body, big);
    assert_eq!(headers["x-amz-meta-call-sid"], sid);

    // Retention: a sweep as of 31 days later deletes the recording (and only keys of the
    // form the gateway writes) and clears the key on the record.
    bucket.put("calls/acme/notes.txt", "not ours").await;
    let env = Env::start(EnvOptions {
        aws: aws(&url),
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let gw = env.gw();
    gw.state
        .writer
        .submit(switchboard_store::StoreOp::Recording(
            switchboard_store::CallRecording {
                call_sid: sid.into(),
                tenant: "acme".into(),
                recording: switchboard_store::RecordingRef {
                    bucket: Some(bucket.name.clone()),
                    key: key.clone(),
                    duration_ms: 1,
                    bytes: size,
                },
            },
        ))
        .await;
    let spec = switchboard_crds::RecordingSpec {
        enabled: true,
        bucket: Some(bucket.name.clone()),
        prefix: Some("calls".into()),
        retention_days: 30,
        ..Default::default()
    };
    let sweeper = gw.state.recordings.sweeper();
    let now_s = jiff::Timestamp::now().as_second();
    assert_eq!(sweeper.sweep("acme", &spec, now_s).await.unwrap(), 0);
    assert_eq!(
        sweeper
            .sweep("acme", &spec, now_s + 31 * 86_400)
            .await
            .unwrap(),
        1
    );
    assert_eq!(bucket.list("calls/").await, vec!["calls/acme/notes.txt"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.state.store.get_call(sid).await.unwrap().unwrap();
        if r.recording.is_none() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "key not cleared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_uploaders_on_one_queue_directory_deliver_each_recording_once() {
    use std::sync::Arc;
    use switchboard_gateway::recording::metrics::RecordingMetrics;
    use switchboard_gateway::recording::queue::{Manifest, QueueOptions};
    use switchboard_gateway::recording::s3::S3;
    use switchboard_gateway::recording::{Destination, UploadQueue, claim};
    use switchboard_store::queue::QueueMetrics;
    use switchboard_store::{WriteBehind, WriteBehindConfig};

    let Some(url) = switchboard_tests::s3::url() else {
        return;
    };
    switchboard_tests::init();
    let bucket = Bucket::new(&url, &unique_bucket("shared"));
    bucket.create().await;
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    std::fs::create_dir_all(&queue).unwrap();
    // Entries as gateways leave them: a WAV and its manifest each.
    let sids: Vec<String> = (0..12u32)
        .map(|i| format!("CA{:032x}", 0xabc000 + i))
        .collect();
    let key = |sid: &str| format!("calls/acme/2026/12/07/{sid}.wav");
    for sid in &sids {
        let wav: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(queue.join(format!("{sid}.wav")), &wav).unwrap();
        let m = Manifest {
            call_sid: sid.clone(),
            tenant: "acme".into(),
            destination: Destination::S3 {
                bucket: bucket.name.clone(),
                key: key(sid),
                kms_key_id: None,
            },
            duration_ms: 4000,
            bytes: wav.len() as u64,
        };
        std::fs::write(
            queue.join(format!("{sid}.json")),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
    }
    let stale = Duration::from_secs(2);
    let set_age = |sid: &str, age: Duration| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(claim::path(&queue, sid))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - age)
            .unwrap();
    };
    // A pod that died mid-upload left a claim an hour old; a live pod holds another.
    let (dead, live) = (&sids[0], &sids[1]);
    assert_eq!(
        claim::claim(&queue, dead, "dead-pod", stale).unwrap(),
        claim::Claimed::Mine
    );
    set_age(dead, Duration::from_secs(3600));
    assert_eq!(
        claim::claim(&queue, live, "live-pod", stale).unwrap(),
        claim::Claimed::Mine
    );

    // Two uploaders (each with its own store and metrics) on the one directory.
    let mut uploaders = Vec::new();
    for name in ["pod-a", "pod-b"] {
        let own = dir.path().join(name);
        let store = switchboard_store::open(&format!(
            "sqlite:{}?mode=rwc",
            own.join("calls.db").display()
        ))
        .await
        .unwrap();
        let gauge = |n: &str| {
            prometheus::IntGauge::new(format!("{n}_{}", name.replace('-', "_")), "t").unwrap()
        };
        let (writer, _task) = WriteBehind::start(
            store,
            WriteBehindConfig::new(own.join("spool")),
            QueueMetrics {
                depth: gauge("depth"),
                spooled: gauge("spooled"),
                rejected: prometheus::IntCounterVec::new(
                    prometheus::Opts::new(format!("rejected_{}", name.replace('-', "_")), "t"),
                    &["reason"],
                )
                .unwrap(),
            },
        )
        .unwrap();
        let metrics = RecordingMetrics::register(&prometheus::Registry::new()).unwrap();
        let q = UploadQueue::start_with(
            queue.clone(),
            own.join("recordings"),
            Arc::new(S3::new(aws(&url))),
            writer,
            metrics.clone(),
            QueueOptions {
                owner: name.into(),
                stale_claim: stale,
                heartbeat: Duration::from_millis(200),
                rescan: Duration::from_millis(200),
            },
        )
        .unwrap();
        uploaders.push((q, metrics));
    }
    let delivered = |u: &[(UploadQueue, RecordingMetrics)]| -> Vec<u64> {
        u.iter()
            .map(|(_, m)| m.upload_seconds.get_sample_count())
            .collect()
    };
    let left = |q: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(q)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };

    // Every entry but the live-claimed one is delivered once, by one of the two.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        set_age(live, Duration::ZERO); // the live pod's heartbeat
        if delivered(&uploaders).iter().sum::<u64>() >= 11
            && left(&queue)
                == vec![
                    format!("{live}.claim"),
                    format!("{live}.json"),
                    format!("{live}.wav"),
                ]
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered: {:?} {:?}",
            delivered(&uploaders),
            left(&queue)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Past a few rescans, nothing is delivered twice.
    for _ in 0..10 {
        set_age(live, Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        delivered(&uploaders).iter().sum::<u64>(),
        11,
        "{:?}",
        delivered(&uploaders)
    );
    let mut expected: Vec<String> = sids[..]
        .iter()
        .filter(|s| *s != live)
        .map(|s| key(s))
        .collect();
    expected.sort();
    assert_eq!(bucket.list("calls/").await, expected);

    // The live pod dies (its claim stops moving): one of the two takes the entry over.
    set_age(live, Duration::from_secs(3600));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !left(&queue).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", left(&queue));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(delivered(&uploaders).iter().sum::<u64>(), 12);
    assert_eq!(bucket.list("calls/").await.len(), 12);
    for (q, _) in uploaders {
        assert_eq!(q.drain(tokio::time::Instant::now()).await, 0);
    }
}
