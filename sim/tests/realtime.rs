//! The Realtime simulator driven by a real WebSocket client over loopback.
#![allow(clippy::unwrap_used, missing_docs)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_sim::mulaw;
use switchboard_sim::realtime::{RealtimeConfig, RealtimeSim, Turn};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(10);

struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every event received, in order.
    seen: Vec<Value>,
}

async fn sim(cfg: RealtimeConfig) -> RealtimeSim {
    RealtimeSim::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

fn fast(script: Vec<Turn>) -> RealtimeConfig {
    RealtimeConfig {
        script,
        speed: 50.0,
        ..RealtimeConfig::default()
    }
}

async fn connect_with(
    sim: &RealtimeSim,
    query: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, tungstenite::Error> {
    let mut req = format!("{}{query}", sim.url())
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(Client {
        ws,
        seen: Vec::new(),
    })
}

async fn connect(sim: &RealtimeSim) -> Client {
    let mut c = connect_with(
        sim,
        "?model=gpt-realtime",
        &[("authorization", "Bearer sk-test")],
    )
    .await
    .unwrap();
    let created = c.expect("session.created").await;
    assert_eq!(created["session"]["type"], "realtime");
    c
}

fn telephony_update(extra_input: Value) -> Value {
    let mut input = json!({
        "format": {"type": "audio/pcmu"},
        "transcription": {"model": "gpt-4o-mini-transcribe"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                           "silence_duration_ms": 500, "create_response": true,
                           "interrupt_response": true}
    });
    if let (Some(i), Some(e)) = (input.as_object_mut(), extra_input.as_object()) {
        for (k, v) in e {
            i.insert(k.clone(), v.clone());
        }
    }
    json!({"type": "session.update", "session": {
        "type": "realtime",
        "instructions": "You are a receptionist.",
        "audio": {"input": input,
                  "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
        "tools": [{"type": "function", "name": "search_knowledge_base",
                   "description": "Search the knowledge base.",
                   "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}]
    }})
}

impl Client {
    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn send_raw(&mut self, s: &str) {
        self.ws.send(Message::text(s.to_owned())).await.unwrap();
    }

    async fn audio(&mut self, bytes: &[u8]) {
        for frame in bytes.chunks(160) {
            self.send(
                json!({"type": "input_audio_buffer.append", "audio": STANDARD.encode(frame)}),
            )
            .await;
        }
    }

    /// The next server event, or `None` when the connection ends.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a server event")?;
            match msg.ok()? {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    self.seen.push(v.clone());
                    return Some(v);
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Reads until an event of type `kind` arrives and returns it.
    async fn expect(&mut self, kind: &str) -> Value {
        loop {
            let v = self
                .next()
                .await
                .unwrap_or_else(|| panic!("connection ended before {kind}"));
            if v["type"] == kind {
                return v;
            }
            assert_ne!(
                v["type"], "error",
                "unexpected error while waiting for {kind}: {v}"
            );
        }
    }

    /// Reads events up to and including the first of type `kind`.
    async fn collect_until(&mut self, kind: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self
                .next()
                .await
                .unwrap_or_else(|| panic!("connection ended before {kind}"));
            let done = v["type"] == kind;
            out.push(v);
            if done {
                return out;
            }
        }
    }

    /// Reads to the close frame and returns its code and reason.
    async fn close_frame(&mut self) -> (u16, String) {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for close")
                .expect("stream ended without a close frame")
                .unwrap();
            match msg {
                Message::Close(Some(f)) => return (f.code.into(), f.reason.to_string()),
                Message::Close(None) => return (1005, String::new()),
                Message::Text(t) => self.seen.push(serde_json::from_str(t.as_str()).unwrap()),
                _ => {}
            }
        }
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect()
}

fn audio_bytes(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .map(|e| STANDARD.decode(e["delta"].as_str().unwrap()).unwrap().len())
        .sum()
}

fn transcript(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_audio_transcript.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect()
}

/// One caller utterance: silence, speech, then enough silence to end the turn.
fn utterance(lead_ms: usize, speech_ms: usize) -> Vec<u8> {
    let mut a = mulaw::silence(lead_ms);
    a.extend(mulaw::speech(speech_ms, 1));
    a.extend(mulaw::silence(700));
    a
}

#[tokio::test]
async fn session_created_has_the_ga_default_shape() {
    let sim = sim(RealtimeConfig::default()).await;
    let mut c = connect_with(
        &sim,
        "?model=gpt-realtime",
        &[("authorization", "Bearer k")],
    )
    .await
    .unwrap();
    let created = c.next().await.unwrap();
    assert_eq!(created["type"], "session.created");
    let s = &created["session"];
    assert_eq!(s["object"], "realtime.session");
    assert!(s["id"].as_str().unwrap().starts_with("sess_"));
    assert_eq!(s["model"], "gpt-realtime");
    assert_eq!(s["output_modalities"], json!(["audio"]));
    assert_eq!(
        s["audio"]["input"]["format"],
        json!({"type": "audio/pcm", "rate": 24000})
    );
    assert_eq!(s["audio"]["output"]["voice"], "alloy");
    assert_eq!(s["audio"]["input"]["turn_detection"]["type"], "server_vad");
    assert_eq!(s["tools"], json!([]));
    assert!(s["expires_at"].as_u64().unwrap() > 1_700_000_000);
    assert!(created["event_id"].as_str().unwrap().starts_with("event_"));
}

#[tokio::test]
async fn ga_session_update_is_applied() {
    let sim = sim(RealtimeConfig::default()).await;
    let mut c = connect(&sim).await;
    c.send(telephony_update(json!({}))).await;
    let updated = c.expect("session.updated").await;
    let s = &updated["session"];
    assert_eq!(s["audio"]["input"]["format"]["type"], "audio/pcmu");
    assert_eq!(s["audio"]["output"]["voice"], "marin");
    assert_eq!(s["instructions"], "You are a receptionist.");
    assert_eq!(s["tools"][0]["name"], "search_knowledge_base");
    // Fields absent from a later update keep their values.
    c.send(json!({"type": "session.update", "session": {"type": "realtime", "instructions": "Short."}}))
        .await;
    let s2 = c.expect("session.updated").await;
    assert_eq!(s2["session"]["audio"]["output"]["voice"], "marin");
    assert_eq!(s2["session"]["instructions"], "Short.");
    let log = &sim.sessions()[0];
    assert_eq!(log.session["instructions"], "Short.");
    assert_eq!(log.model, "gpt-realtime");
    assert!(log.authorization_present);
    assert!(!log.beta_header);
}

#[tokio::test]
async fn handshake_requires_a_key_and_a_model() {
    let sim = sim(RealtimeConfig::default()).await;
    match connect_with(&sim, "?model=gpt-realtime", &[]).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401);
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["type"], "invalid_request_error");
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    match connect_with(&sim, "", &[("authorization", "Bearer k")]).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("expected 400, got {:?}", other.map(|_| ())),
    }
    assert!(sim.sessions().is_empty());
}

#[tokio::test]
async fn beta_header_is_refused_with_4000() {
    let sim = sim(RealtimeConfig::default()).await;
    let mut c = connect_with(
        &sim,
        "?model=gpt-realtime",
        &[
            ("authorization", "Bearer k"),
            ("openai-beta", "realtime=v1"),
        ],
    )
    .await
    .unwrap();
    let err = c.next().await.unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["code"], "beta_api_shape_disabled");
    let (code, reason) = c.close_frame().await;
    assert_eq!(code, 4000);
    assert_eq!(reason, "beta_api_shape_disabled");
    assert!(sim.wait_sessions_closed(1, WAIT).await);
    let log = &sim.sessions()[0];
    assert!(log.beta_header && log.closed);
}

#[tokio::test]
async fn session_update_without_type_is_an_error() {
    let sim = sim(RealtimeConfig::default()).await;
    let mut c = connect(&sim).await;
    c.send(json!({"type": "session.update", "event_id": "evt_1",
                  "session": {"instructions": "hi"}}))
        .await;
    let e = c.next().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["code"], "missing_required_parameter");
    assert_eq!(e["error"]["param"], "session.type");
    assert_eq!(e["error"]["event_id"], "evt_1");
}

#[tokio::test]
async fn beta_fields_are_refused_and_not_applied() {
    let sim = sim(RealtimeConfig::default()).await;
    let mut c = connect(&sim).await;
    c.send(json!({"type": "session.update", "session": {
        "type": "realtime", "instructions": "changed", "input_audio_format": "g711_ulaw"}}))
        .await;
    let e = c.next().await.unwrap();
    assert_eq!(e["error"]["code"], "unknown_parameter");
    assert_eq!(e["error"]["param"], "session.input_audio_format");
    c.send(json!({"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}}))
        .await;
    let e = c.next().await.unwrap();
    assert_eq!(e["error"]["param"], "session.voice");
    let log = &sim.sessions()[0];
    assert_ne!(log.session["instructions"], "changed");
    assert_eq!(log.errors_sent.len(), 2);
}

#[tokio::test]
async fn vad_detects_a_turn_and_the_script_answers() {
    let agent = "Yes, we are open from nine to five on Saturdays.";
    let sim = sim(fast(vec![Turn::say("Are you open on Saturday?", agent)])).await;
    let mut c = connect(&sim).await;
    c.send(telephony_update(json!({}))).await;
    c.expect("session.updated").await;
    c.audio(&utterance(1000, 1200)).await;

    let started = c.expect("input_audio_buffer.speech_started").await;
    let start = started["audio_start_ms"].as_i64().unwrap();
    assert!((start - 700).abs() <= 40, "audio_start_ms {start}");
    let stopped = c.expect("input_audio_buffer.speech_stopped").await;
    let end = stopped["audio_end_ms"].as_i64().unwrap();
    assert!((end - 2700).abs() <= 40, "audio_end_ms {end}");
    assert_eq!(stopped["item_id"], started["item_id"]);

    let events = c.collect_until("response.done").await;
    let t = types(&events);
    let pos = |k: &str| {
        t.iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    assert!(pos("input_audio_buffer.committed") < pos("conversation.item.added"));
    assert!(
        pos("conversation.item.done")
            < pos("conversation.item.input_audio_transcription.completed")
    );
    assert!(pos("conversation.item.input_audio_transcription.completed") < pos("response.created"));
    assert!(pos("response.created") < pos("response.output_item.added"));
    assert!(pos("response.content_part.added") < pos("response.output_audio.delta"));
    assert!(pos("response.output_audio.done") < pos("response.output_audio_transcript.done"));
    assert!(pos("response.content_part.done") < pos("response.output_item.done"));
    let transcription = &events[pos("conversation.item.input_audio_transcription.completed")];
    assert_eq!(transcription["transcript"], "Are you open on Saturday?");
    assert_eq!(transcription["item_id"], started["item_id"]);
    let user_item = &events[pos("conversation.item.added")]["item"];
    assert_eq!(user_item["role"], "user");
    assert_eq!(user_item["content"][0]["type"], "input_audio");

    assert_eq!(transcript(&events), agent);
    let expected_ms = (agent.chars().count() as u64 * 55).div_ceil(40) * 40;
    assert_eq!(audio_bytes(&events) as u64, expected_ms * 8);
    let done = events.last().unwrap();
    let r = &done["response"];
    assert_eq!(r["status"], "completed");
    assert_eq!(r["object"], "realtime.response");
    assert_eq!(r["output"][0]["content"][0]["transcript"], agent);
    assert!(r["output"][0]["content"][0].get("audio").is_none());
    let u = &r["usage"];
    let input = u["input_tokens"].as_u64().unwrap();
    let output = u["output_tokens"].as_u64().unwrap();
    assert_eq!(u["total_tokens"].as_u64().unwrap(), input + output);
    assert!(u["input_token_details"]["audio_tokens"].as_u64().unwrap() > 0);
    assert!(u["output_token_details"]["audio_tokens"].as_u64().unwrap() > 0);
    assert!(u["input_token_details"]["cached_tokens_details"].is_object());

    let log = &sim.sessions()[0];
    assert_eq!(log.responses.len(), 1);
    assert_eq!(log.responses[0].text, agent);
    assert_eq!(log.responses[0].generated_ms, expected_ms);
    assert_eq!(log.responses[0].status, "completed");
    assert!(!log.audio_before_session_update);
    assert_eq!(log.audio_bytes_in as usize, utterance(1000, 1200).len());
}

#[tokio::test]
async fn audio_before_session_update_is_recorded() {
    let sim = sim(RealtimeConfig::default()).await;
    let mut c = connect(&sim).await;
    c.audio(&mulaw::silence(40)).await;
    c.send(telephony_update(json!({}))).await;
    c.expect("session.updated").await;
    let log = &sim.sessions()[0];
    assert!(log.audio_before_session_update);
    assert_eq!(
        log.event_types(),
        vec!["input_audio_buffer.append", "session.update"]
    );
    assert_eq!(log.events[0]["bytes"], 320);
    assert_eq!(log.events[0]["count"], 2);
}

#[tokio::test]
async fn barge_in_cancels_after_late_deltas() {
    let long = "Our store is open every weekday from nine in the morning until five in the \
                afternoon, and on Saturdays from ten until four.";
    let cfg = RealtimeConfig {
        script: vec![Turn::say("When are you open?", long)],
        speed: 1.0,
        late_deltas_after_cancel: 2,
        ..RealtimeConfig::default()
    };
    let sim = sim(cfg).await;
    let mut c = connect(&sim).await;
    c.send(telephony_update(json!({}))).await;
    c.expect("session.updated").await;
    c.audio(&utterance(200, 600)).await;
    let created = c.expect("response.created").await;
    let response_id = created["response"]["id"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        c.expect("response.output_audio.delta").await;
    }
    // The caller talks over the answer.
    c.audio(&mulaw::speech(200, 1)).await;
    let events = c.collect_until("response.done").await;
    let started = events
        .iter()
        .position(|e| e["type"] == "input_audio_buffer.speech_started")
        .expect("speech_started");
    let late = events[started..]
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .count();
    assert_eq!(late, 2, "{:?}", types(&events[started..]));
    let t = types(&events[started..]);
    assert!(t.contains(&"response.output_audio.done"));
    let item_done = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(item_done["item"]["status"], "incomplete");
    let done = events.last().unwrap();
    assert_eq!(done["response"]["id"], response_id.as_str());
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"],
        json!({"type": "cancelled", "reason": "turn_detected"})
    );
    assert!(done["response"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
    // Nothing more from the cancelled response.
    c.audio(&mulaw::silence(100)).await;
    c.send(json!({"type": "input_audio_buffer.clear"})).await;
    let after = c.collect_until("input_audio_buffer.cleared").await;
    assert!(
        after
            .iter()
            .all(|e| e["response_id"] != response_id.as_str())
    );

    let log = &sim.sessions()[0];
    assert_eq!(log.responses[0].status, "cancelled");
    let sent = audio_bytes(&c.seen) as u64 / 8;
    assert_eq!(log.responses[0].generated_ms, sent);
    assert!(sent < (long.len() as u64 * 55) / 2);
}

#[tokio::test]
async fn truncate_is_checked_against_generated_audio() {
    let sim = sim(fast(vec![Turn::say(
        "Hi",
        "Hello there, how can I help you today?",
    )]))
    .await;
    let mut c = connect(&sim).await;
    c.send(telephony_update(json!({}))).await;
    c.expect("session.updated").await;
    c.audio(&utterance(100, 400)).await;
    let events = c.collect_until("response.done").await;
    let item_id = events
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap()["item"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let generated = audio_bytes(&events) as u64 / 8;

    c.send(
        json!({"type": "conversation.item.truncate", "event_id": "t1", "item_id": item_id,
                  "content_index": 0, "audio_end_ms": generated + 100}),
    )
    .await;
    let e = c.next().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["code"], "invalid_value");
    assert_eq!(e["error"]["event_id"], "t1");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already shorter than")
    );

    c.send(
        json!({"type": "conversation.item.truncate", "item_id": item_id,
                  "content_index": 0, "audio_end_ms": 800}),
    )
    .await;
    let t = c.next().await.unwrap();
    assert_eq!(t["type"], "conversation.item.truncated");
    assert_eq!(t["audio_end_ms"], 800);
    assert_eq!(t["item_id"], item_id.as_str());

    c.send(json!({"type": "conversation.item.retrieve", "item_id": item_id}))
        .await;
    let r = c.next().await.unwrap();
    let kept = r["item"]["content"][0]["transcript"].as_str().unwrap();
    assert!(
        kept.len() < "Hello there, how can I help you today?".len(),
        "{kept}"
    );

    c.send(
        json!({"type": "conversation.item.truncate", "item_id": "item_nope",
                  "content_index": 0, "audio_end_ms": 0}),
    )
    .await;
    assert_eq!(c.next().await.unwrap()["type"], "error");

    let log = &sim.sessions()[0];
    assert_eq!(log.truncates.len(), 3);
    assert!(!log.truncates[0].accepted);
    assert_eq!(log.truncates[0].generated_ms, generated);
    assert!(log.truncates[1].accepted);
    assert_eq!(log.truncates[1].audio_end_ms, 800);
}

#[tokio::test]
async fn function_call_round_trip() {
    let turn = Turn::call(
        "What is your return policy?",
        "search_knowledge_base",
        json!({"query": "return policy"}),
        "Our policy: {output}",
    );
    let sim = sim(fast(vec![turn])).await;
    let mut c = connect(&sim).await;
    c.send(telephony_update(json!({}))).await;
    c.expect("session.updated").await;
    c.audio(&utterance(100, 500)).await;
    let events = c.collect_until("response.done").await;
    let added = events
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap();
    assert_eq!(added["item"]["type"], "function_call");
    assert_eq!(added["item"]["name"], "search_knowledge_base");
    let args: String = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    let done = events
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done["arguments"].as_str().unwrap(), args);
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"query": "return policy"})
    );
    let call_id = done["call_id"].as_str().unwrap().to_owned();
    assert!(call_id.starts_with("call_"));
    assert_eq!(events.last().unwrap()["response"]["status"], "completed");
    assert_eq!(
        events.last().unwrap()["response"]["output"][0]["arguments"],
        args.as_str()
    );
    assert_eq!(audio_bytes(&events), 0);

    // The server waits for the output and an explicit response.create.
    c.send(json!({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": call_id, "output": "30 days with receipt."}}))
        .await;
    let added = c.expect("conversation.item.added").await;
    assert_eq!(added["item"]["type"], "function_call_output");
    c.expect("conversation.item.done").await;
    c.send(json!({"type": "response.create"})).await;
    let events = c.collect_until("response.done").await;
    assert_eq!(transcript(&events), "Our policy: 30 days with receipt.");

    c.send(json!({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_unknown", "output": "x"}}))
        .await;
    assert_eq!(c.next().await.unwrap()["type"], "error");

    let log = &sim.sessions()[0];
    assert_eq!(
        log.function_outputs,
        vec![(call_id, "30 days with receipt.".to_owned())]
    );
    assert_eq!(
        log.responses[0].function_calls[0].0,
        "search_knowledge_base"
    );
}

#[tokio::test]
async fn greeting_dtmf_and_single_active_response() {
    let sim = sim(RealtimeConfig {
        speed: 2.0,
        ..RealtimeConfig::default()
    })
    .await;
    let mut c = connect(&sim).await;
    c.send(telephony_update(json!({}))).await;
    c.expect("session.updated").await;
    c.send(json!({"type": "response.create", "response": {
        "instructions": "Say exactly: Thanks for calling Acme, how can I help?",
        "metadata": {"purpose": "greeting"}}}))
        .await;
    let created = c.expect("response.created").await;
    assert_eq!(created["response"]["metadata"]["purpose"], "greeting");
    c.send(json!({"type": "response.create", "event_id": "dup"}))
        .await;
    let e = c.expect("error").await;
    assert_eq!(
        e["error"]["code"],
        "conversation_already_has_active_response"
    );
    assert_eq!(e["error"]["event_id"], "dup");
    c.collect_until("response.done").await;
    // Deltas may have arrived before the error; everything seen so far is this response.
    assert_eq!(
        transcript(&c.seen),
        "Thanks for calling Acme, how can I help?"
    );

    c.send(json!({"type": "response.cancel"})).await;
    let e = c.next().await.unwrap();
    assert_eq!(e["error"]["code"], "response_cancel_not_active");

    c.send(
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "4"}]}}),
    )
    .await;
    c.expect("conversation.item.done").await;
    c.send(json!({"type": "response.create"})).await;
    let events = c.collect_until("response.done").await;
    assert_eq!(transcript(&events), "You entered 4.");
    assert_eq!(sim.sessions()[0].user_texts, vec!["4".to_owned()]);
}

#[tokio::test]
async fn client_cancel_reports_client_cancelled() {
    let sim = sim(RealtimeConfig {
        speed: 1.0,
        ..RealtimeConfig::default()
    })
    .await;
    let mut c = connect(&sim).await;
    c.send(json!({"type": "response.create", "response": {
        "instructions": "Say exactly: This is a fairly long sentence that takes a while to say."}}))
        .await;
    c.expect("response.output_audio.delta").await;
    c.send(json!({"type": "response.cancel"})).await;
    let done = c.expect("response.done").await;
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "client_cancelled"
    );
}

#[tokio::test]
async fn bad_frames_are_errors_and_the_session_survives() {
    let sim = sim(RealtimeConfig::default()).await;
    let mut c = connect(&sim).await;
    c.send_raw("{not json").await;
    assert_eq!(c.next().await.unwrap()["error"]["code"], "invalid_json");
    c.send(json!({"type": "response.frobnicate", "event_id": "x9"}))
        .await;
    let e = c.next().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_value");
    assert_eq!(e["error"]["event_id"], "x9");
    c.send(json!({"type": "input_audio_buffer.append", "audio": "@@not base64@@"}))
        .await;
    assert_eq!(c.next().await.unwrap()["error"]["param"], "audio");
    c.send(json!({"type": "input_audio_buffer.append", "audio": 5}))
        .await;
    assert_eq!(c.next().await.unwrap()["type"], "error");
    c.send(json!({"type": "input_audio_buffer.commit"})).await;
    assert_eq!(
        c.next().await.unwrap()["error"]["code"],
        "input_audio_buffer_commit_empty"
    );
    c.send(json!({"no_type": true})).await;
    assert_eq!(c.next().await.unwrap()["error"]["param"], "type");
    c.send(json!([1, 2, 3])).await;
    assert_eq!(c.next().await.unwrap()["type"], "error");
    c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(c.next().await.unwrap()["type"], "error");
    c.send(telephony_update(json!({}))).await;
    c.expect("session.updated").await;
    let log = &sim.sessions()[0];
    assert_eq!(log.errors_sent.len(), 8);
    assert!(!log.closed);
}

#[tokio::test]
async fn manual_turns_commit_and_respond_on_request() {
    let sim = sim(fast(vec![Turn::say("Hello?", "Hi, this is Acme.")])).await;
    let mut c = connect(&sim).await;
    c.send(telephony_update(json!({"turn_detection": null})))
        .await;
    let s = c.expect("session.updated").await;
    assert!(s["session"]["audio"]["input"]["turn_detection"].is_null());
    c.audio(&mulaw::speech(600, 1)).await;
    c.send(json!({"type": "input_audio_buffer.commit"})).await;
    let events = c
        .collect_until("conversation.item.input_audio_transcription.completed")
        .await;
    assert!(!types(&events).contains(&"input_audio_buffer.speech_started"));
    assert_eq!(events.last().unwrap()["transcript"], "Hello?");
    c.send(json!({"type": "response.create"})).await;
    let events = c.collect_until("response.done").await;
    assert_eq!(transcript(&events), "Hi, this is Acme.");
}

#[tokio::test]
async fn idle_timeout_prompts_the_caller() {
    let sim = sim(fast(vec![Turn::say("Hi", "Hello.")])).await;
    let mut c = connect(&sim).await;
    let mut update = telephony_update(json!({}));
    update["session"]["audio"]["input"]["turn_detection"]["idle_timeout_ms"] = json!(300);
    c.send(update).await;
    c.expect("session.updated").await;
    c.audio(&utterance(100, 400)).await;
    c.expect("response.done").await;
    let t = c.expect("input_audio_buffer.timeout_triggered").await;
    assert!(t["item_id"].as_str().unwrap().starts_with("item_"));
    let events = c.collect_until("response.done").await;
    assert_eq!(transcript(&events), "Are you still there?");
}

#[tokio::test]
async fn session_expiry_closes_with_1001() {
    let sim = sim(RealtimeConfig {
        session_max_ms: Some(300),
        ..RealtimeConfig::default()
    })
    .await;
    let mut c = connect(&sim).await;
    let e = c.expect("error").await;
    assert_eq!(e["error"]["code"], "session_expired");
    assert_eq!(
        e["error"]["message"],
        "Your session hit the maximum duration of 60 minutes."
    );
    assert_eq!(c.close_frame().await.0, 1001);
    assert!(sim.wait_sessions_closed(1, WAIT).await);
    assert_eq!(
        sim.sessions()[0].close_reason.as_deref(),
        Some("session_expired")
    );
}

#[tokio::test]
async fn injected_failure_closes_with_1011() {
    let sim = sim(RealtimeConfig {
        fail_after_ms: Some(100),
        ..RealtimeConfig::default()
    })
    .await;
    let mut c = connect(&sim).await;
    let e = c.expect("error").await;
    assert_eq!(e["error"]["type"], "server_error");
    assert_eq!(c.close_frame().await.0, 1011);
    assert!(sim.wait_sessions_closed(1, WAIT).await);
}

#[tokio::test]
async fn client_close_and_shutdown_are_recorded() {
    let sim = sim(RealtimeConfig::default()).await;
    let mut a = connect(&sim).await;
    let mut b = connect(&sim).await;
    a.ws.close(None).await.unwrap();
    assert!(sim.wait_sessions_closed(1, WAIT).await);
    assert!(
        !sim.wait_sessions_closed(2, Duration::from_millis(100))
            .await
    );
    let logs = sim.sessions();
    assert!(logs[0].closed);
    assert!(
        logs[0]
            .close_reason
            .as_deref()
            .unwrap()
            .starts_with("client closed")
    );
    assert!(!logs[1].closed);
    sim.shutdown();
    assert_eq!(b.close_frame().await.0, 1001);
}

#[tokio::test]
async fn concurrent_sessions_follow_their_own_scripts() {
    let agent = "Yes, we are open.";
    let sim = sim(fast(vec![Turn::say("Open?", agent)])).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut c = connect(&sim).await;
        tasks.push(tokio::spawn(async move {
            c.send(telephony_update(json!({}))).await;
            c.expect("session.updated").await;
            c.audio(&utterance(100, 400)).await;
            let events = c.collect_until("response.done").await;
            transcript(&events)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), agent);
    }
    let logs = sim.sessions();
    assert_eq!(logs.len(), 20);
    assert!(
        logs.iter()
            .all(|l| l.responses.len() == 1 && l.errors_sent.is_empty())
    );
}

#[tokio::test]
async fn pcm_output_and_text_only_responses() {
    let sim = sim(fast(Vec::new())).await;
    let mut c = connect(&sim).await;
    // No session.update: the GA default output is 24 kHz PCM16.
    c.send(json!({"type": "response.create", "response": {"instructions": "Say exactly: Hi."}}))
        .await;
    let events = c.collect_until("response.done").await;
    assert_eq!(audio_bytes(&events), 400 * 48);
    assert_eq!(
        events.last().unwrap()["response"]["audio"]["output"]["format"]["type"],
        "audio/pcm"
    );

    c.send(json!({"type": "response.create", "response": {
        "output_modalities": ["text"], "conversation": "none",
        "instructions": "Say exactly: Just text."}}))
        .await;
    let events = c.collect_until("response.done").await;
    assert_eq!(audio_bytes(&events), 0);
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Just text.");
    assert!(!types(&events).contains(&"conversation.item.added"));
    let done = events.last().unwrap();
    assert!(done["response"]["conversation_id"].is_null());
    assert_eq!(
        done["response"]["output"][0]["content"][0]["type"],
        "output_text"
    );
}
