//! The simulated caller against a tiny fake gateway written here: pacing, message shapes,
//! mark timing, barge-in accounting, refusals and violation detection.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use switchboard_sim::caller::{
    self, CallConfig, CallReport, SignatureMode, Step, send_status, twilio_signature,
};
use switchboard_sim::mulaw;

const TOKEN: &str = "test-auth-token";
const API_KEY: &str = "test-api-key-0123456789abcdef0123456789";
const ACCOUNT: &str = "AC11111111111111111111111111111111";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Everything the fake gateway saw and did, with arrival times.
#[derive(Default)]
struct Log {
    webhook: Vec<(String, String)>,
    status: Vec<(String, String)>,
    handshake_signed: Option<bool>,
    handshake_at: Option<Instant>,
    received: Vec<(Instant, Received)>,
    sent_marks: BTreeMap<String, Instant>,
    clears_sent: Vec<Instant>,
    record_requests: u32,
}

#[derive(Debug, Clone)]
enum Received {
    Text(Value),
    NotJson,
    Binary,
}

#[derive(Clone)]
struct Gw {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
}

impl Gw {
    async fn start() -> Gw {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw = Gw {
            addr: listener.local_addr().unwrap(),
            log: Arc::default(),
        };
        let app = Router::new()
            .route("/twilio/voice", post(voice))
            .route("/twilio/status", post(status))
            .route("/twilio/stream/{mode}", get(stream))
            .route("/api/v1/calls/{sid}", get(call_record))
            .with_state(gw.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        gw
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn texts(&self) -> Vec<(Instant, Value)> {
        let log = self.log.lock().unwrap();
        log.received
            .iter()
            .filter_map(|(t, r)| match r {
                Received::Text(v) => Some((*t, v.clone())),
                _ => None,
            })
            .collect()
    }
}

fn signed(headers: &HeaderMap, url: &str, params: &[(String, String)]) -> bool {
    headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sig| sig == twilio_signature(TOKEN, url, params))
}

async fn voice(
    State(gw): State<Gw>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    if !signed(&headers, &format!("{}/twilio/voice", gw.url()), &params) {
        return StatusCode::FORBIDDEN.into_response();
    }
    gw.log.lock().unwrap().webhook = params.clone();
    let to = params
        .iter()
        .find(|(k, _)| k == "To")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let twiml = match to.as_str() {
        "+15550000009" => {
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>"#
                .to_owned()
        }
        _ => {
            let mode = to.trim_start_matches("+1555000000");
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Connect><Stream url="ws://{}/twilio/stream/{mode}">
<Parameter name="tenant" value="acme &amp; co"/><Parameter name="to" value="{to}"/>
</Stream></Connect></Response>"#,
                gw.addr
            )
        }
    };
    ([("content-type", "text/xml")], twiml).into_response()
}

async fn status(
    State(gw): State<Gw>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> StatusCode {
    if !signed(&headers, &format!("{}/twilio/status", gw.url()), &params) {
        return StatusCode::FORBIDDEN;
    }
    gw.log.lock().unwrap().status = params;
    StatusCode::NO_CONTENT
}

/// The gateway's call record: 404 on the first request (records are written behind the
/// call), then a transcript.
async fn call_record(
    State(gw): State<Gw>,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let bearer = format!("Bearer {API_KEY}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let first = {
        let mut log = gw.log.lock().unwrap();
        log.record_requests += 1;
        log.record_requests == 1
    };
    if first {
        return StatusCode::NOT_FOUND.into_response();
    }
    let record = json!({"call_sid": sid, "outcome": "completed", "transcript": [
        {"role":"assistant","text":"Thanks for calling Acme.","start_ms":0,"end_ms":1000,"interrupted":false},
        {"role":"user","text":"When do you open?","start_ms":1700,"end_ms":3200,"interrupted":false},
        {"role":"assistant","text":"We open at nine","start_ms":3400,"end_ms":4200,"interrupted":true}
    ]});
    axum::Json(record).into_response()
}

async fn stream(
    State(gw): State<Gw>,
    Path(mode): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let ok = signed(
        &headers,
        &format!("ws://{}/twilio/stream/{mode}", gw.addr),
        &[],
    );
    {
        let mut log = gw.log.lock().unwrap();
        log.handshake_signed = Some(ok);
        log.handshake_at = Some(Instant::now());
    }
    if !ok {
        return StatusCode::FORBIDDEN.into_response();
    }
    ws.on_upgrade(move |socket| serve_stream(socket, mode, gw))
}

/// Fake gateway behaviours, chosen by the called number's last digit: 1 listens, 2 sends
/// invalid messages, 3 hangs up after 300 ms, 4 is a voice agent, 5 is 2 then 3.
async fn serve_stream(mut ws: WebSocket, mode: String, gw: Gw) {
    let mut agent = Agent::default();
    while let Some(Ok(msg)) = ws.recv().await {
        let now = Instant::now();
        let received = match &msg {
            Message::Text(t) => match serde_json::from_str::<Value>(t.as_str()) {
                Ok(v) => Received::Text(v),
                Err(_) => Received::NotJson,
            },
            Message::Binary(_) => Received::Binary,
            Message::Close(_) => break,
            _ => continue,
        };
        gw.log
            .lock()
            .unwrap()
            .received
            .push((now, received.clone()));
        let Received::Text(v) = received else {
            continue;
        };
        let event = v["event"].as_str().unwrap_or_default().to_owned();
        let sid = v["streamSid"].as_str().unwrap_or_default().to_owned();
        let replies = match (mode.as_str(), event.as_str()) {
            ("2", "start") => hostile(&sid),
            ("5", "start") => {
                for reply in hostile(&sid) {
                    let _ = ws.send(reply).await;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = ws.send(Message::Close(None)).await;
                break;
            }
            ("3", "start") => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = ws.send(Message::Close(None)).await;
                break;
            }
            ("4", _) => agent.on_event(&v, &gw),
            _ => Vec::new(),
        };
        for reply in replies {
            if ws.send(reply).await.is_err() {
                return;
            }
        }
    }
}

fn media(sid: &str, audio: &[u8]) -> Message {
    let v = json!({"event":"media","streamSid":sid,"media":{"payload":B64.encode(audio)}});
    Message::text(v.to_string())
}

fn mark(sid: &str, name: &str) -> Message {
    Message::text(json!({"event":"mark","streamSid":sid,"mark":{"name":name}}).to_string())
}

fn hostile(sid: &str) -> Vec<Message> {
    vec![
        Message::Binary(vec![1u8, 2, 3].into()),
        Message::text("{not json"),
        Message::text(json!({"event":"start","streamSid":sid}).to_string()),
        Message::text(json!({"event":"clear","streamSid":"MZ0123"}).to_string()),
        Message::text(
            json!({"event":"media","streamSid":sid,"media":{"payload":"%%%"}}).to_string(),
        ),
        Message::text(
            json!({"event":"media","streamSid":sid,"media":{"payload":"//8=","track":"outbound"}})
                .to_string(),
        ),
        // One valid message among them: it must not be flagged.
        media(sid, &[0xFF; 160]),
    ]
}

/// A minimal voice agent: a 1 s greeting, a 2 s answer after the caller's first question,
/// `clear` when the caller talks over an unfinished answer, then a 0.5 s reply; 0.3 s
/// after a keypress.
#[derive(Default)]
struct Agent {
    in_speech: bool,
    silent_frames: u32,
    answers: u32,
    answer_playing: bool,
}

impl Agent {
    fn on_event(&mut self, v: &Value, gw: &Gw) -> Vec<Message> {
        let sid = v["streamSid"].as_str().unwrap_or_default();
        match v["event"].as_str() {
            Some("start") => self.speak(sid, "greeting", 1000, gw),
            Some("dtmf") => self.speak(sid, "dtmf", 300, gw),
            Some("mark") => {
                if v["mark"]["name"] == "answer" {
                    self.answer_playing = false;
                }
                Vec::new()
            }
            Some("media") => {
                let audio = B64
                    .decode(v["media"]["payload"].as_str().unwrap_or_default())
                    .unwrap();
                let speech = mulaw::rms(&audio) > 1000.0;
                if speech {
                    self.silent_frames = 0;
                    if !self.in_speech {
                        self.in_speech = true;
                        if self.answer_playing {
                            self.answer_playing = false;
                            gw.log.lock().unwrap().clears_sent.push(Instant::now());
                            return vec![Message::text(
                                json!({"event":"clear","streamSid":sid}).to_string(),
                            )];
                        }
                    }
                } else if self.in_speech {
                    self.silent_frames += 1;
                    if self.silent_frames >= 10 {
                        self.in_speech = false;
                        self.answers += 1;
                        return if self.answers == 1 {
                            self.answer_playing = true;
                            self.speak(sid, "answer", 2000, gw)
                        } else {
                            self.speak(sid, "answer2", 500, gw)
                        };
                    }
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn speak(&self, sid: &str, name: &str, ms: usize, gw: &Gw) -> Vec<Message> {
        let audio = mulaw::speech(ms, 5);
        let mut out: Vec<Message> = audio.chunks(1600).map(|c| media(sid, c)).collect();
        out.push(mark(sid, name));
        gw.log
            .lock()
            .unwrap()
            .sent_marks
            .insert(name.to_owned(), Instant::now());
        out
    }
}

fn config(gw: &Gw, to: &str, script: Vec<Step>) -> CallConfig {
    CallConfig {
        gateway: gw.url(),
        account_sid: ACCOUNT.to_owned(),
        auth_token: TOKEN.to_owned(),
        from: "+15551230000".to_owned(),
        to: to.to_owned(),
        call_sid: None,
        script,
        signature: SignatureMode::Valid,
        connect_timeout: Duration::from_secs(5),
        record_audio: false,
        ..CallConfig::default()
    }
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_is_paced_in_real_time_with_twilio_shapes() {
    install_crypto();
    let gw = Gw::start().await;
    let cfg = config(
        &gw,
        "+15550000001",
        vec![Step::Silence { ms: 1000 }, Step::Hangup],
    );
    let report = caller::place_call(&cfg).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.webhook_status, 200);
    assert!(!report.ended_by_gateway);
    assert_eq!(report.frames_sent + report.frames_dropped, 50);
    assert!(report.frames_sent >= 45, "{}", report.frames_sent);

    let webhook: BTreeMap<_, _> = gw.log.lock().unwrap().webhook.iter().cloned().collect();
    assert_eq!(webhook["CallSid"], report.call_sid);
    assert_eq!(webhook["CallStatus"], "ringing");
    assert_eq!(webhook["AccountSid"], ACCOUNT);
    assert_eq!(gw.log.lock().unwrap().handshake_signed, Some(true));
    assert_eq!(report.custom_parameters["tenant"], "acme & co");

    let texts = gw.texts();
    let sid = report.stream_sid.clone().unwrap();
    assert_eq!(
        texts[0].1,
        json!({"event":"connected","protocol":"Call","version":"1.0.0"})
    );
    assert_eq!(
        texts[1].1,
        json!({"event":"start","sequenceNumber":"1","streamSid":sid,
            "start":{"accountSid":ACCOUNT,"streamSid":sid,"callSid":report.call_sid,
                "tracks":["inbound"],
                "customParameters":{"tenant":"acme & co","to":"+15550000001"},
                "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}})
    );
    let medias: Vec<_> = texts
        .iter()
        .filter(|(_, v)| v["event"] == "media")
        .collect();
    assert_eq!(medias.len() as u64, report.frames_sent);
    let mut last_ts = None;
    for (i, (_, v)) in medias.iter().enumerate() {
        assert_eq!(v["sequenceNumber"], (i + 2).to_string());
        assert_eq!(v["media"]["chunk"], (i + 1).to_string());
        assert_eq!(v["media"]["track"], "inbound");
        let payload = B64.decode(v["media"]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload, [mulaw::SILENCE; 160]);
        let ts: u64 = v["media"]["timestamp"].as_str().unwrap().parse().unwrap();
        assert_eq!(ts % 20, 0);
        assert!(last_ts.is_none_or(|l| ts > l));
        last_ts = Some(ts);
    }
    // Real time: the stream clock starts after the handshake, so no frame may arrive
    // before its timestamp has elapsed since then; and 1 s of audio takes about a second.
    let handshake = gw.log.lock().unwrap().handshake_at.unwrap();
    for (t, v) in &medias {
        let ts: u64 = v["media"]["timestamp"].as_str().unwrap().parse().unwrap();
        let wall = t.duration_since(handshake).as_millis() as u64;
        assert!(
            wall >= ts,
            "frame at {ts} ms arrived {wall} ms after the handshake"
        );
    }
    let span = medias
        .last()
        .unwrap()
        .0
        .duration_since(handshake)
        .as_millis();
    assert!((980..=1400).contains(&span), "1 s of frames took {span} ms");

    let (_, stop) = texts.last().unwrap();
    assert_eq!(
        *stop,
        json!({"event":"stop","sequenceNumber":(medias.len() + 2).to_string(),"streamSid":sid,
            "stop":{"accountSid":ACCOUNT,"callSid":report.call_sid}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_wait_for_playout_and_barge_in_is_measured() {
    install_crypto();
    let gw = Gw::start().await;
    let script = vec![
        Step::WaitForAgent {
            min_heard_ms: 200,
            timeout_ms: 5000,
        },
        Step::WaitAgentDone {
            quiet_ms: 200,
            timeout_ms: 5000,
        },
        Step::Say { ms: 400 },
        Step::BargeIn {
            after_heard_ms: 600,
            say_ms: 400,
        },
        Step::WaitAgentDone {
            quiet_ms: 200,
            timeout_ms: 5000,
        },
        Step::Hangup,
    ];
    let report = caller::place_call(&config(&gw, "+15550000004", script))
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.clears, 1);
    assert_eq!(report.marks_received, 3);
    assert_eq!(report.marks_echoed, 3);
    assert!(report.setup_ms.is_some_and(|ms| ms > 0.0 && ms < 1000.0));

    let turns = &report.turns;
    assert_eq!(turns.len(), 3, "{turns:#?}");
    assert_eq!(turns[0].heard_ms, 1000);
    assert!(!turns[0].cut_by_clear);
    assert!(turns[1].cut_by_clear);
    assert_eq!(turns[1].heard_ms_at_barge_in, Some(600));
    let at_clear = turns[1].heard_ms_at_clear.unwrap();
    assert!((600..=700).contains(&at_clear), "clear at {at_clear} ms");
    assert_eq!(turns[2].heard_ms, 500);
    assert!(turns[2].heard_ms_at_barge_in.is_none());
    assert_eq!(report.heard_ms_total, 1000 + turns[1].heard_ms + 500);

    let log = gw.log.lock().unwrap();
    let echoed = |name: &str| {
        log.received.iter().find_map(|(t, r)| match r {
            Received::Text(v) if v["event"] == "mark" && v["mark"]["name"] == name => {
                assert_eq!(v["streamSid"], json!(report.stream_sid));
                Some(*t)
            }
            _ => None,
        })
    };
    // The greeting's mark comes back only after its second of audio has played.
    let greeting = echoed("greeting").unwrap() - log.sent_marks["greeting"];
    assert!(
        greeting >= Duration::from_millis(990),
        "greeting mark after {greeting:?}"
    );
    // The answer's mark comes back as soon as the clear flushed it.
    let answer = echoed("answer").unwrap() - log.clears_sent[0];
    assert!(
        answer < Duration::from_millis(100),
        "answer mark {answer:?} after clear"
    );
    let answer2 = echoed("answer2").unwrap() - log.sent_marks["answer2"];
    assert!(
        answer2 >= Duration::from_millis(490),
        "answer2 mark after {answer2:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_protocol_violations_are_reported() {
    install_crypto();
    let gw = Gw::start().await;
    let cfg = config(&gw, "+15550000002", vec![Step::Silence { ms: 300 }]);
    let report = caller::place_call(&cfg).await.unwrap();
    assert_eq!(report.violations.len(), 6, "{:#?}", report.violations);
    assert!(report.violations[0].starts_with("31950"));
    assert!(
        report.violations[1..]
            .iter()
            .all(|v| v.starts_with("31951"))
    );
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("not the active stream"))
    );
    assert!(report.violations.iter().any(|v| v.contains("base64")));
    assert!(report.violations.iter().any(|v| v.contains("\"track\"")));
    assert!(!report.is_clean());
    assert!(report.turns.iter().all(|t| !t.cut_by_clear));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_bad_signatures() {
    install_crypto();
    let gw = Gw::start().await;
    let report = caller::place_call(&config(&gw, "+15550000009", vec![]))
        .await
        .unwrap();
    assert_eq!(report.refused.as_deref(), Some("reject (busy)"));
    assert_eq!(report.stream_sid, None);

    for mode in [SignatureMode::Wrong, SignatureMode::Missing] {
        let cfg = CallConfig {
            signature: mode,
            ..config(&gw, "+15550000001", vec![])
        };
        let report: CallReport = caller::place_call(&cfg).await.unwrap();
        assert_eq!(report.webhook_status, 403, "{mode:?}");
        assert_eq!(report.refused.as_deref(), Some("webhook answered HTTP 403"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_hanging_up_ends_the_call() {
    install_crypto();
    let gw = Gw::start().await;
    let cfg = config(&gw, "+15550000003", vec![Step::Silence { ms: 5000 }]);
    let started = Instant::now();
    let report = caller::place_call(&cfg).await.unwrap();
    assert!(report.ended_by_gateway);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(started.elapsed() < Duration::from_secs(3));
    // The caller did not hang up, so no `stop` was sent.
    assert!(gw.texts().iter().all(|(_, v)| v["event"] != "stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_and_raw_injections_reach_the_gateway() {
    install_crypto();
    let gw = Gw::start().await;
    let script = vec![
        Step::Dtmf { digit: '5' },
        Step::SendRaw {
            text: "{\"event\":\"bogus\"}".into(),
        },
        Step::SendBinary { bytes: vec![9, 9] },
        Step::Silence { ms: 100 },
    ];
    let report = caller::place_call(&config(&gw, "+15550000001", script))
        .await
        .unwrap();
    let sid = report.stream_sid.unwrap();
    let log = gw.log.lock().unwrap();
    let events: Vec<&Received> = log.received.iter().map(|(_, r)| r).collect();
    let Received::Text(dtmf) = events[2] else {
        panic!("{events:?}");
    };
    assert_eq!(
        *dtmf,
        json!({"event":"dtmf","sequenceNumber":"2","streamSid":sid,
            "dtmf":{"track":"inbound_track","digit":"5"}})
    );
    // The keypress takes its 20 ms slot; raw injections go out before the next frame.
    assert!(matches!(events[3], Received::Text(v) if v["event"] == "media"));
    assert!(matches!(events[4], Received::Text(v) if v["event"] == "bogus"));
    assert!(matches!(events[5], Received::Binary));
    assert!(matches!(events[6], Received::Text(v) if v["event"] == "media"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_callbacks_are_signed_twilio_forms() {
    install_crypto();
    let gw = Gw::start().await;
    let code = send_status(&gw.url(), ACCOUNT, TOKEN, "CA42", "completed", Some(17), 2)
        .await
        .unwrap();
    assert_eq!(code, 204);
    let params: BTreeMap<_, _> = gw.log.lock().unwrap().status.iter().cloned().collect();
    assert_eq!(params["CallSid"], "CA42");
    assert_eq!(params["CallStatus"], "completed");
    assert_eq!(params["CallDuration"], "17");
    assert_eq!(params["SequenceNumber"], "2");
    assert_eq!(params["CallbackSource"], "call-progress-events");
    assert!(params["Timestamp"].ends_with(" +0000"));
    let bad = send_status(&gw.url(), ACCOUNT, "wrong", "CA42", "completed", None, 3)
        .await
        .unwrap();
    assert_eq!(bad, 403);
}

async fn run_cli(gw: &Gw, to: &str, extra: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "call",
            "--gateway",
            &gw.url(),
            "--to",
            to,
            "--account-sid",
            ACCOUNT,
        ])
        .args(extra)
        .env("TWILIO_AUTH_TOKEN", TOKEN)
        .env("DEMO_API_KEY", API_KEY)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.success(), format!("{stdout}\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_call_reports_turns_and_the_gateway_transcript() {
    let gw = Gw::start().await;
    let (ok, out) = run_cli(&gw, "+15550000004", &["--barge-in", "--dtmf", "5"]).await;
    println!("{out}");
    assert!(ok, "{out}");
    assert!(out.contains("violations: none"), "{out}");
    // Greeting, the interrupted answer, the answer to the barge-in, the key press and the
    // farewell: the default conversation ends with a goodbye exchange.
    assert!(
        out.contains("in 5 turn(s); marks 5 received / 5 echoed"),
        "{out}"
    );
    assert!(out.contains("cut by clear"), "{out}");
    assert!(out.contains("transcript (3 entries)"), "{out}");
    assert!(out.contains("We open at nine [interrupted]"), "{out}");
    let log = gw.log.lock().unwrap();
    assert_eq!(log.record_requests, 2);
    let dtmf = log.received.iter().any(
        |(_, r)| matches!(r, Received::Text(v) if v["event"] == "dtmf" && v["dtmf"]["digit"] == "5"),
    );
    assert!(dtmf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_call_fails_on_violations_and_refusals() {
    let gw = Gw::start().await;
    let (ok, out) = run_cli(&gw, "+15550000005", &[]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("violations (6)"), "{out}");
    let (ok, out) = run_cli(&gw, "+15550000005", &["--json"]).await;
    assert!(!ok, "{out}");
    let json_end = out.rfind('}').unwrap();
    let v: Value = serde_json::from_str(&out[..=json_end]).unwrap();
    assert_eq!(v["report"]["violations"].as_array().unwrap().len(), 6);
    assert_eq!(v["report"]["ended_by_gateway"], true);
    assert_eq!(
        v["gateway_record"]["transcript"].as_array().unwrap().len(),
        3
    );
    let (ok, out) = run_cli(&gw, "+15550000009", &[]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("refused: reject (busy)"), "{out}");
}
