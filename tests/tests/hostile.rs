//! Hostile or broken input never panics the gateway and never disturbs other calls.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_sim::caller::{Step, new_sid, place_call, twilio_signature};
use switchboard_sim::realtime::{RealtimeConfig, Turn};
use switchboard_tests::{AUTH_TOKEN, Env, EnvOptions, metric, start_message, stream_target};
use tokio_tungstenite::tungstenite::Message;

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
