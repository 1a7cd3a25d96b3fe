//! Draining in-process: the minimum window keeps the server answering webhooks with
//! readiness false, and a call answered by the webhook whose stream has not opened yet
//! keeps the drain going until it has streamed and ended.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_sim::caller::{new_sid, twilio_signature};
use switchboard_tests::{AUTH_TOKEN, Env, EnvOptions, start_message, stream_target};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_call_is_served_through_the_drain() {
    let mut opts = EnvOptions::default();
    opts.serve.drain_min_seconds = 2;
    let mut env = Env::start(opts).await.unwrap();
    let state = env.gw().state.clone();
    let gateway = env.gateway.take().unwrap();
    let stopping = tokio::spawn(gateway.drain_and_stop());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // In the window, with no call at all: readiness is false, webhooks are answered.
    let http = switchboard_sim::caller::http_client().unwrap();
    let ready = http
        .get(format!("{}/readyz", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let sid = new_sid("CA");
    let (status, twiml) = env.webhook(&sid).await.unwrap();
    assert_eq!(status, 200, "{twiml}");
    let (url, params) = stream_target(&twiml).unwrap();

    // Past the window the answered call (no stream yet) still holds the server up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !stopping.is_finished(),
        "the drain ended with an answered call whose stream had not opened"
    );
    assert_eq!(state.drain.active(), 1);

    // Its stream arrives late (Twilio retries, a slow carrier): the call is served.
    let mut ws = env
        .raw_stream(&url, Some(twilio_signature(AUTH_TOKEN, &url, &[])))
        .await
        .unwrap();
    ws.send(Message::text(start_message(&new_sid("MZ"), &sid, &params)))
        .await
        .unwrap();
    let greeted = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m
                && t.contains("\"media\"")
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(greeted, "the late stream got the greeting");
    ws.send(Message::text(r#"{"event":"stop","streamSid":"MZ1"}"#))
        .await
        .unwrap();
    let _ = ws.close(None).await;
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("the drain ends once the call has")
        .unwrap();
    let rec = state.store.get_call(&sid).await.unwrap().unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
}
