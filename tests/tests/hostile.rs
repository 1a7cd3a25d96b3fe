//! Hostile or broken input never panics the gateway and never disturbs other calls.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_gateway::edge::{Networks, ServeOptions};
use switchboard_sim::caller::{Step, new_sid, place_call, twilio_signature};
use switchboard_sim::realtime::{RealtimeConfig, Turn};
use switchboard_tests::{
    ACCOUNT_SID, AUTH_TOKEN, Env, EnvOptions, NUMBER, metric, start_message, stream_target,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn healthy_script() -> Vec<Step> {
    vec![
        Step::WaitAgentDone {
            quiet_ms: 400,
            timeout_ms: 15_000,
        },
        Step::Say { ms: 1200 },
        Step::WaitAgentDone {
            quiet_ms: 400,
            timeout_ms: 15_000,
        },
        Step::Hangup,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_counted_and_a_concurrent_call_is_unharmed() {
    let env = Env::start(EnvOptions {
        realtime: RealtimeConfig {
            script: vec![Turn::say("hello", "Hello, how can I help?")],
            ..RealtimeConfig::default()
        },
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let healthy = env.call(healthy_script());
    let healthy = tokio::spawn(async move { place_call(&healthy).await });

    // A stream that sends garbage after a valid start.
    let raw = |t: &str| Step::SendRaw {
        text: t.to_string(),
    };
    let hostile = env.call(vec![
        Step::Silence { ms: 200 },
        raw("this is not json"),
        raw("[1,2,3]"),
        raw("42"),
        raw(r#"{"event":"party","streamSid":"MZ1"}"#),
        raw(r#"{"event":"media","media":{"timestamp":"40","payload":"***not base64***"}}"#),
        raw(r#"{"event":"media","media":{"timestamp":"soon","payload":"/w=="}}"#),
        raw(r#"{"event":"dtmf","dtmf":{"digit":"ten"}}"#),
        raw(r#"{"event":"mark","mark":{"name":"never-sent"}}"#),
        Step::SendBinary {
            bytes: vec![0, 1, 2, 255],
        },
        Step::Silence { ms: 400 },
        Step::Hangup,
    ]);
    let hostile_report = place_call(&hostile).await.unwrap();
    assert!(
        hostile_report.violations.is_empty(),
        "the gateway itself stayed within protocol: {hostile_report:#?}"
    );

    // A stream that sends media before start, then an oversized frame.
    let sid = new_sid("CA");
    let (_, twiml) = env.webhook(&sid).await.unwrap();
    let (url, params) = stream_target(&twiml).unwrap();
    let mut ws = env
        .raw_stream(&url, Some(twilio_signature(AUTH_TOKEN, &url, &[])))
        .await
        .unwrap();
    ws.send(Message::text(
        r#"{"event":"media","media":{"timestamp":"0","payload":"/w=="}}"#,
    ))
    .await
    .unwrap();
    ws.send(Message::text(start_message(&new_sid("MZ"), &sid, &params)))
        .await
        .unwrap();
    let _ = ws.send(Message::text("x".repeat(200_000))).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;

    let healthy = healthy.await.unwrap().unwrap();
    assert!(healthy.is_clean(), "{healthy:#?}");
    assert!(healthy.turns.len() >= 2);
    let rec = env.record(&healthy.call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
    assert_eq!(rec.transcript.len(), 3, "{:#?}", rec.transcript);

    let rec = env.record(&hostile_report.call_sid).await.unwrap();
    assert_eq!(
        rec.outcome.as_deref(),
        Some("caller_hangup"),
        "garbage does not end a call"
    );

    let m = env.metrics().await;
    for (kind, at_least) in [
        ("invalid_json", 1.0),
        ("not_a_message", 2.0),
        ("unknown_event", 1.0),
        ("bad_payload", 1.0),
        ("bad_field", 2.0),
        ("binary_frame", 1.0),
        ("unknown_mark", 1.0),
        ("media_before_start", 1.0),
        ("twilio_socket_error", 1.0),
    ] {
        let got = metric(
            &m,
            &format!("switchboard_malformed_messages_total{{kind=\"{kind}\"}}"),
        );
        assert!(got >= at_least, "{kind}: {got}\n{m}");
    }
    // Invalid base64 never reached OpenAI: no session got an error for bad audio.
    assert!(
        env.realtime
            .wait_sessions_closed(3, Duration::from_secs(5))
            .await
    );
    for s in env.realtime.sessions() {
        assert!(s.errors_sent.is_empty(), "{:#?}", s.errors_sent);
    }
    assert_eq!(metric(&m, "switchboard_active_calls"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_media_timestamps_do_not_end_the_call() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    // One 20 ms frame of µ-law silence: a frame moves the media clock by 20 ms.
    const FRAME: &str = "/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////w==";
    let raw = |ts: &str| Step::SendRaw {
        text: format!(
            r#"{{"event":"media","sequenceNumber":"18446744073709551615","streamSid":"MZ1","media":{{"track":"inbound","chunk":"-3","timestamp":"{ts}","payload":"{FRAME}"}}}}"#
        ),
    };
    let report = place_call(&env.call(vec![
        Step::Silence { ms: 200 },
        raw("18446744073709551615"),
        raw("18446744073709551615"),
        raw("18446744073709551614"),
        raw("-1"),
        raw("99999999999999999999999"),
        raw("soon"),
        raw("0"),
        Step::WaitAgentDone {
            quiet_ms: 300,
            timeout_ms: 15_000,
        },
        Step::Silence { ms: 300 },
        Step::Hangup,
    ]))
    .await
    .unwrap();
    assert!(!report.ended_by_gateway, "{report:#?}");
    assert!(report.is_clean(), "{report:#?}");
    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
    assert!(
        metric(
            &env.metrics().await,
            "switchboard_malformed_messages_total{kind=\"bad_field\"}"
        ) >= 3.0
    );
}

/// Options for the edge tests: short timeouts, so a hostile client is cut quickly.
fn edge_options(adjust: impl FnOnce(&mut ServeOptions)) -> EnvOptions {
    let mut opts = EnvOptions::default();
    opts.serve.header_read_timeout_seconds = 1;
    opts.serve.request_timeout_seconds = 1;
    adjust(&mut opts.serve);
    opts
}

/// Reads until the server closes the connection or `within` passes; returns what it sent
/// and whether it closed.
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Slowloris: a client that trickles its request head a byte at a time is cut at the
/// header-read timeout (1 s here), however long it keeps trickling; the cut is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_cut_at_the_header_timeout() {
    let env = Env::start(edge_options(|_| {})).await.unwrap();
    let mut tcp = TcpStream::connect(env.gw().addr).await.unwrap();
    let head = b"POST /twilio/voice HTTP/1.1\r\nHost: gw\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let started = tokio::time::Instant::now();
    let mut cut = false;
    // 15 s of trickling unless the server cuts the connection first.
    for byte in head.iter().cycle().take(75) {
        if tcp.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        let (_, closed) = read_until_closed(&mut tcp, Duration::from_millis(200)).await;
        if closed {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "still open after {:?} of trickled headers",
        started.elapsed()
    );
    assert!(
        metric(&env.metrics().await, "switchboard_header_timeouts_total") >= 1.0,
        "{}",
        env.metrics().await
    );
    // The server is fine for everyone else.
    let http = switchboard_sim::caller::http_client().unwrap();
    let r = http
        .get(format!("{}/healthz", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A webhook body over the limit (64 KiB: Twilio's forms are 1–3 KiB) is refused 413
/// before anything reads it; a body announced and never sent is cut by the request
/// timeout (1 s here) with a 503; a request head over 32 KiB is refused 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_limit_and_never_sent_bodies_are_refused() {
    let env = Env::start(edge_options(|_| {})).await.unwrap();
    let url = format!("{}/twilio/voice", env.base);
    let params: Vec<(String, String)> = vec![
        ("CallSid".into(), new_sid("CA")),
        ("AccountSid".into(), ACCOUNT_SID.into()),
        ("From".into(), "+15551230000".into()),
        ("To".into(), NUMBER.into()),
        ("Padding".into(), "x".repeat(100 * 1024)),
    ];
    // Correctly signed: only the size is wrong.
    let sig = twilio_signature(AUTH_TOKEN, &url, &params);
    let http = switchboard_sim::caller::http_client().unwrap();
    let r = http
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let mut tcp = TcpStream::connect(env.gw().addr).await.unwrap();
    tcp.write_all(
        b"POST /twilio/voice HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nCallSid=CA",
    )
    .await
    .unwrap();
    let (answer, _) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "a body that never comes: {answer:?}"
    );
    assert_eq!(
        metric(&env.metrics().await, "switchboard_active_calls"),
        0.0
    );

    // A request head over 32 KiB (hyper's default allows ~400 KiB) is answered 431.
    let mut tcp = TcpStream::connect(env.gw().addr).await.unwrap();
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let _ = tcp.write_all(big.as_bytes()).await;
    let (answer, _) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "an oversized head: {answer:?}"
    );
}

/// One peer address may hold `--max-connections-per-ip` connections (4 here); the next
/// is answered 503 and closed at once, and counted. When one closes, the peer may connect
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_peer_cap_are_refused_and_counted() {
    let env = Env::start(edge_options(|s| {
        s.header_read_timeout_seconds = 30;
        s.max_connections_per_ip = 4;
        s.trusted_proxies = Networks::default();
    }))
    .await
    .unwrap();
    let addr = env.gw().addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut over = TcpStream::connect(addr).await.unwrap();
    let (answer, closed) = read_until_closed(&mut over, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(closed, "the refused connection is closed");
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            "switchboard_connections_refused_total{reason=\"max_connections_per_ip\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "switchboard_connections_open"), 4.0, "{m}");

    // One held connection makes a request and closes: its slot comes back.
    let mut first = held.remove(0);
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut first, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    drop(first);
    let http = switchboard_sim::caller::http_client().unwrap();
    let mut served = false;
    for _ in 0..50 {
        if let Ok(r) = http.get(format!("{}/healthz", env.base)).send().await
            && r.status() == 200
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "a closed connection gives its slot back");
}

/// A Twilio peer that stops reading while the agent speaks: the gateway's writes to it
/// block once the socket buffers are full. The call must not hang on it: it ends within
/// the write timeout (5 s) with outcome `twilio_write_timeout`, and its model session is
/// closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_peer_that_stops_reading_ends_its_call_with_a_reason() {
    let env = Env::start(EnvOptions {
        realtime: RealtimeConfig {
            // The greeting alone is ~16 minutes of audio in 1 s deltas, generated at
            // once: far more than any socket buffer holds.
            ms_per_char: 20_000,
            delta_ms: 1000,
            speed: 1000.0,
            ..RealtimeConfig::default()
        },
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let sid = new_sid("CA");
    let (_, twiml) = env.webhook(&sid).await.unwrap();
    let (url, params) = stream_target(&twiml).unwrap();
    // A small receive buffer, so the gateway's writes block sooner.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(env.gw().addr).await.unwrap();
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "x-twilio-signature",
        twilio_signature(AUTH_TOKEN, &url, &[]).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    ws.send(Message::text(start_message(&new_sid("MZ"), &sid, &params)))
        .await
        .unwrap();
    // From here on, nothing is read.
    let rec = env.record(&sid).await.unwrap();
    assert_eq!(
        rec.outcome.as_deref(),
        Some("twilio_write_timeout"),
        "{rec:#?}"
    );
    assert!(
        rec.detail.as_deref().unwrap_or("").contains("did not take"),
        "{rec:#?}"
    );
    assert!(
        env.realtime
            .wait_sessions_closed(1, Duration::from_secs(5))
            .await,
        "the model session was closed"
    );
    assert_eq!(
        metric(&env.metrics().await, "switchboard_active_calls"),
        0.0
    );
    drop(ws);
}

/// A stream that sends caller audio far faster than real time (60 s of frames at once):
/// the model gets at most the allowance ahead of the wall clock (5 s), the rest is
/// dropped and counted, and the call goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_audio_faster_than_real_time_is_not_forwarded() {
    let env = Env::start(EnvOptions {
        no_preconnect: true,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let sid = new_sid("CA");
    let (mut ws, params) = env.answer_and_open_stream(&sid).await.unwrap();
    let started = std::time::Instant::now();
    ws.send(Message::text(start_message(&new_sid("MZ"), &sid, &params)))
        .await
        .unwrap();
    // 20 ms of µ-law silence per frame, consecutive timestamps: only the rate is wrong.
    let payload = base64_frame();
    for i in 0..3000u64 {
        let frame = format!(
            r#"{{"event":"media","streamSid":"MZ1","media":{{"track":"inbound","chunk":"{i}","timestamp":"{}","payload":"{payload}"}}}}"#,
            i * 20
        );
        ws.send(Message::text(frame)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    ws.send(Message::text(r#"{"event":"stop","streamSid":"MZ1"}"#))
        .await
        .unwrap();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let rec = env.record(&sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
    assert!(
        env.realtime
            .wait_sessions_closed(1, Duration::from_secs(5))
            .await
    );
    let got_ms = env.realtime.sessions()[0].audio_bytes_in / 8;
    assert!(
        got_ms <= elapsed_ms + 5_000,
        "{got_ms} ms of caller audio forwarded in {elapsed_ms} ms (sent 60 000 ms)"
    );
    assert!(
        metric(
            &env.metrics().await,
            "switchboard_malformed_messages_total{kind=\"media_over_rate\"}"
        ) >= 1.0
    );
    drop(ws);
}

fn base64_frame() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([0xFFu8; 160])
}
