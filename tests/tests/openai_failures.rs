//! When OpenAI fails or closes, the call ends cleanly: the caller is released and the
//! record says why.

use std::time::Duration;

use switchboard_sim::caller::{Step, place_call};
use switchboard_sim::realtime::{RealtimeConfig, ToolRequest, Turn};
use switchboard_tests::{Env, EnvOptions, metric};

fn long_call() -> Vec<Step> {
    vec![
        Step::WaitAgentDone {
            quiet_ms: 300,
            timeout_ms: 10_000,
        },
        Step::Silence { ms: 8_000 },
        Step::Hangup,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_and_close_move_the_call_to_a_new_session() {
    let env = Env::start(EnvOptions {
        realtime: RealtimeConfig {
            fail_after_ms: Some(3_000),
            fault_sessions: Some(1),
            ..RealtimeConfig::default()
        },
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let report = place_call(&env.call(long_call())).await.unwrap();
    assert!(!report.ended_by_gateway, "the call goes on: {report:#?}");
    assert!(report.is_clean(), "{report:#?}");
    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"), "{rec:#?}");
    assert_eq!(rec.reconnects, vec!["error".to_string()]);
    assert!(!rec.transcript.is_empty(), "the greeting is kept");
    assert_eq!(env.realtime.sessions().len(), 2);
    assert!(
        metric(
            &env.metrics().await,
            "switchboard_openai_errors_total{code=\"server_error\"}"
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limit_while_the_caller_talks_reconnects_with_its_cause() {
    let env = Env::start(EnvOptions {
        realtime: RealtimeConfig {
            session_max_ms: Some(3_000),
            ..RealtimeConfig::default()
        },
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    // Never a quiet moment before the limit: no rotation, the server ends the session
    // (`session_expired`, then close 1001).
    let report = place_call(&env.call(vec![
        Step::Say { ms: 4_500 },
        Step::WaitAgentDone {
            quiet_ms: 300,
            timeout_ms: 10_000,
        },
        Step::Hangup,
    ]))
    .await
    .unwrap();
    assert!(!report.ended_by_gateway, "{report:#?}");
    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"), "{rec:#?}");
    assert_eq!(
        rec.reconnects.first().map(String::as_str),
        Some("session_limit"),
        "{rec:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_hangup_closes_the_openai_session_at_once() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let report = place_call(&env.call(vec![
        Step::WaitAgentDone {
            quiet_ms: 300,
            timeout_ms: 10_000,
        },
        Step::Hangup,
    ]))
    .await
    .unwrap();
    assert!(report.is_clean());
    assert!(
        env.realtime
            .wait_sessions_closed(1, Duration::from_millis(1500))
            .await,
        "Realtime session still open after hang-up"
    );
    let s = &env.realtime.sessions()[0];
    assert!(
        s.close_reason.as_deref().unwrap_or("").contains("client"),
        "{:?}",
        s.close_reason
    );
}

/// A port nothing listens on: OpenAI unreachable.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    format!("ws://{addr}/v1/realtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_unreachable_caller_hears_the_apology_and_the_call_ends() {
    let env = Env::start(EnvOptions {
        realtime_url: Some(closed_port()),
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let report = place_call(&env.call(long_call())).await.unwrap();
    assert!(report.ended_by_gateway, "{report:#?}");
    assert!(report.stream_ms < 6_000, "released promptly: {report:#?}");
    assert_eq!(report.heard_after_stream.len(), 1, "{report:#?}");
    assert!(
        report.heard_after_stream[0].contains("sorry"),
        "{report:#?}"
    );
    assert!(report.hangup_after_stream, "{report:#?}");
    assert!(report.violations.is_empty(), "{report:#?}");
    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("openai_connect_failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_call_hangs_up_without_the_fallback() {
    let env = Env::start(EnvOptions {
        realtime: RealtimeConfig {
            script: vec![Turn {
                caller: "That's all, bye.".into(),
                agent: Some("Goodbye!".into()),
                tool: Some(ToolRequest {
                    name: "end_call".into(),
                    arguments: serde_json::json!({}),
                }),
                agent_template: None,
            }],
            ..RealtimeConfig::default()
        },
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let report = place_call(&env.call(vec![
        Step::WaitAgentDone {
            quiet_ms: 300,
            timeout_ms: 10_000,
        },
        Step::Say { ms: 1200 },
        Step::Silence { ms: 10_000 },
        Step::Hangup,
    ]))
    .await
    .unwrap();
    // The gateway closes the stream and hangs up through the REST API; the caller sees
    // either first.
    assert!(report.ended_by_gateway || report.rest_hangup, "{report:#?}");
    assert!(report.heard_after_stream.is_empty(), "{report:#?}");
    assert!(
        report.hangup_after_stream || report.rest_hangup,
        "{report:#?}"
    );
    assert!(report.violations.is_empty(), "{report:#?}");
    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("agent_hangup"));
    // The goodbye was heard to its last word before the call ended.
    let sessions = env.realtime.sessions();
    let goodbye = sessions[0]
        .responses
        .iter()
        .find(|r| r.text == "Goodbye!")
        .expect("goodbye spoken");
    let last = report.turns.last().expect("turns");
    assert!(!last.cut_by_clear, "{report:#?}");
    assert!(
        last.heard_ms + 40 >= goodbye.generated_ms,
        "heard {} of {} ms: {report:#?}",
        last.heard_ms,
        goodbye.generated_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_action_needs_a_signature_and_its_own_call_sid() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let sid = "CA0123456789abcdef0123456789abcdef";
    let url = format!("{}/twilio/after-stream/demo/{sid}", env.base);
    let client = switchboard_sim::caller::http_client().unwrap();
    let params = vec![("CallSid".to_string(), sid.to_string())];
    let unsigned = client.post(&url).form(&params).send().await.unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);
    let other = vec![(
        "CallSid".to_string(),
        "CAffffffffffffffffffffffffffffffff".to_string(),
    )];
    let sig =
        switchboard_sim::caller::twilio_signature(switchboard_tests::AUTH_TOKEN, &url, &other);
    let replayed = client
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status().as_u16(), 400);
    let sig =
        switchboard_sim::caller::twilio_signature(switchboard_tests::AUTH_TOKEN, &url, &params);
    let ok = client
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let body = ok.text().await.unwrap();
    assert!(
        body.contains("<Say>") && body.contains("<Hangup/>"),
        "{body}"
    );
}
