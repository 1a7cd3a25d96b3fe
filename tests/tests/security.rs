//! Signatures, routing refusals and streams that no webhook announced.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_sim::caller::{
    SignatureMode, Step, new_sid, place_call, send_status, twilio_signature,
};
use switchboard_tests::{
    ACCOUNT_SID, AUTH_TOKEN, Env, EnvOptions, GREETING, metric, start_message, stream_target,
};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_without_a_valid_signature_are_refused_and_open_nothing() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    for mode in [SignatureMode::Wrong, SignatureMode::Missing] {
        let mut cfg = env.call(vec![Step::Hangup]);
        cfg.signature = mode;
        let report = place_call(&cfg).await.unwrap();
        assert_eq!(report.webhook_status, 403, "{mode:?}: {report:#?}");
        assert!(report.stream_sid.is_none());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        env.realtime.sessions().is_empty(),
        "no Realtime session for a refused webhook"
    );
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "switchboard_signature_failures_total{route=\"voice\"}"),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "switchboard_webhook_responses_total{route=\"voice\",status=\"403\"}"
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_callbacks_must_be_signed_and_keep_the_newest_status() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let sid = new_sid("CA");
    assert_eq!(
        send_status(
            &env.base,
            ACCOUNT_SID,
            "not-the-token",
            &sid,
            "completed",
            Some(9),
            3
        )
        .await
        .unwrap(),
        403
    );
    // Out of order: completed (seq 3) arrives before in-progress (seq 1).
    assert_eq!(
        send_status(
            &env.base,
            ACCOUNT_SID,
            AUTH_TOKEN,
            &sid,
            "completed",
            Some(42),
            3
        )
        .await
        .unwrap(),
        204
    );
    assert_eq!(
        send_status(
            &env.base,
            ACCOUNT_SID,
            AUTH_TOKEN,
            &sid,
            "in-progress",
            None,
            1
        )
        .await
        .unwrap(),
        204
    );
    let gw = env.gw();
    assert!(gw.state.writer.flush(Duration::from_secs(5)).await);
    let rec = gw
        .state
        .store
        .get_call(&sid)
        .await
        .unwrap()
        .expect("record");
    assert_eq!(rec.status.as_deref(), Some("completed"));
    assert_eq!(rec.duration_s, Some(42));
    assert_eq!(
        metric(
            &env.metrics().await,
            "switchboard_signature_failures_total{route=\"status\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_callback_updates_the_record_of_a_real_call() {
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
    assert!(report.is_clean(), "{report:#?}");
    let secs = u32::try_from(report.stream_ms / 1000).unwrap();
    assert_eq!(
        send_status(
            &env.base,
            ACCOUNT_SID,
            AUTH_TOKEN,
            &report.call_sid,
            "completed",
            Some(secs),
            4
        )
        .await
        .unwrap(),
        204
    );
    env.record(&report.call_sid).await.unwrap();
    assert!(env.gw().state.writer.flush(Duration::from_secs(5)).await);
    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.status.as_deref(), Some("completed"));
    assert_eq!(rec.duration_s, Some(i64::from(secs)));
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
    assert!(!rec.transcript.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_handshake_must_be_signed() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let sid = new_sid("CA");
    let (status, twiml) = env.webhook(&sid).await.unwrap();
    assert_eq!(status, 200);
    let (url, _) = stream_target(&twiml).unwrap();
    for sig in [None, Some(twilio_signature("wrong-token", &url, &[]))] {
        let Err(err) = env.raw_stream(&url, sig).await else {
            panic!("handshake without a valid signature was accepted");
        };
        assert!(err.to_string().contains("403"), "{err}");
    }
    assert!(
        env.raw_stream(&url, Some(twilio_signature(AUTH_TOKEN, &url, &[])))
            .await
            .is_ok()
    );
    assert_eq!(
        metric(
            &env.metrics().await,
            "switchboard_signature_failures_total{route=\"stream\"}"
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_no_webhook_announced_is_closed_without_reaching_openai() {
    let env = Env::start(EnvOptions {
        no_preconnect: true,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    // A signed handshake for a call this gateway never answered, with a made-up token.
    let sid = new_sid("CA");
    let url = format!(
        "{}/twilio/stream/demo/{sid}",
        env.base.replace("http://", "ws://")
    );
    let mut ws = env
        .raw_stream(&url, Some(twilio_signature(AUTH_TOKEN, &url, &[])))
        .await
        .unwrap();
    let params = [("token".to_string(), "00".repeat(16))]
        .into_iter()
        .collect();
    ws.send(Message::text(
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
    ))
    .await
    .unwrap();
    ws.send(Message::text(start_message(&new_sid("MZ"), &sid, &params)))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                return true;
            }
        }
        true
    })
    .await;
    assert_eq!(closed, Ok(true));
    assert!(env.realtime.sessions().is_empty());
    assert_eq!(
        metric(
            &env.metrics().await,
            "switchboard_malformed_messages_total{kind=\"stream_without_webhook\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_numbers_are_refused_politely_and_capacity_answers_busy() {
    let env = Env::start(EnvOptions {
        max_calls: 1,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let mut cfg = env.call(vec![Step::Hangup]);
    cfg.to = "+15559999999".into();
    let report = place_call(&cfg).await.unwrap();
    assert_eq!(report.webhook_status, 200);
    assert!(
        report.refused.as_deref().unwrap_or("").contains("hangup"),
        "{report:#?}"
    );

    let long = env.call(vec![Step::Silence { ms: 3000 }, Step::Hangup]);
    let first = tokio::spawn(async move { place_call(&long).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let busy = place_call(&env.call(vec![Step::Hangup])).await.unwrap();
    assert!(
        busy.refused.as_deref().unwrap_or("").contains("busy"),
        "{busy:#?}"
    );
    assert!(first.await.unwrap().unwrap().is_clean());
}

/// A tenant without signature validation would hand a stream (and the tenant's OpenAI
/// key) to anyone: the gateway refuses to start with it unless told it is a laptop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_webhooks_are_served_only_with_the_laptop_flag() {
    let unsigned = EnvOptions {
        twilio_extra: "    validateSignatures: false\n".into(),
        ..EnvOptions::default()
    };
    let Err(err) = Env::start(unsigned.clone()).await else {
        panic!("a gateway started with an unsigned tenant and no --allow-unsigned-webhooks");
    };
    let msg = format!("{err:#}");
    assert!(msg.contains("demo.yaml"), "names the tenant file: {msg}");
    assert!(msg.contains("validateSignatures"), "{msg}");
    assert!(
        msg.contains("--allow-unsigned-webhooks"),
        "names the flag: {msg}"
    );

    let env = Env::start(EnvOptions {
        allow_unsigned_webhooks: true,
        ..unsigned
    })
    .await
    .unwrap();
    let mut cfg = env.call(vec![Step::Hangup]);
    cfg.signature = SignatureMode::Missing;
    let report = place_call(&cfg).await.unwrap();
    assert_eq!(report.webhook_status, 200, "{report:#?}");
    assert!(report.stream_sid.is_some(), "{report:#?}");
}

/// During an auth token rotation Twilio may sign with the secondary token: a tenant that
/// declares it accepts both, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_signed_with_the_secondary_token_are_accepted_during_rotation() {
    let secrets = tempfile::tempdir().unwrap();
    let secondary = "rotated-secondary-token-9876";
    let file = secrets.path().join("secondary");
    std::fs::write(&file, secondary).unwrap();
    let env = Env::start(EnvOptions {
        twilio_extra: format!("    secondaryAuthToken:\n      file: {}\n", file.display()),
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let mut cfg = env.call(vec![Step::Hangup]);
    cfg.auth_token = secondary.into();
    let report = place_call(&cfg).await.unwrap();
    assert_eq!(report.webhook_status, 200, "{report:#?}");
    assert!(
        report.stream_sid.is_some(),
        "the handshake signed with the secondary token was accepted too: {report:#?}"
    );
    cfg.auth_token = "neither-primary-nor-secondary".into();
    let report = place_call(&cfg).await.unwrap();
    assert_eq!(report.webhook_status, 403, "{report:#?}");
}

/// Opens the stream at `url` (signed) and sends `connected` and `start` with `params`.
async fn open_and_start(
    env: &Env,
    url: &str,
    call_sid: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> switchboard_tests::RawWs {
    open_and_start_at(env, url, url, call_sid, params).await
}

/// [`open_and_start`] connecting to `connect` with the signature of the public `url`
/// (a stream the load balancer sent to another replica).
async fn open_and_start_at(
    env: &Env,
    connect: &str,
    url: &str,
    call_sid: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> switchboard_tests::RawWs {
    let mut ws = env
        .raw_stream(connect, Some(twilio_signature(AUTH_TOKEN, url, &[])))
        .await
        .expect("signed handshake accepted");
    ws.send(Message::text(
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
    ))
    .await
    .expect("connected sent");
    ws.send(Message::text(start_message(
        &new_sid("MZ"),
        call_sid,
        params,
    )))
    .await
    .expect("start sent");
    ws
}

/// Whether the gateway closes `ws` within 5 s.
async fn closed_by_gateway(ws: &mut switchboard_tests::RawWs) -> bool {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await
    .is_ok()
}

/// A captured handshake (same CallSid, same token) cannot reopen a call: not while it is
/// live, not after it ended; a captured webhook cannot admit it again either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_stream_handshakes_are_refused_live_and_after_the_call() {
    // Without pre-connect a model session exists only once the stream was admitted.
    let env = Env::start(EnvOptions {
        no_preconnect: true,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let sid = new_sid("CA");
    let (status, twiml) = env.webhook(&sid).await.unwrap();
    assert_eq!(status, 200);
    let (url, params) = stream_target(&twiml).unwrap();
    let mut live = open_and_start(&env, &url, &sid, &params).await;
    // The call is up once its model session exists.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while env.realtime.sessions().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.realtime.sessions().len(), 1);

    let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
    let Err(err) = env.raw_stream(&url, Some(sig.clone())).await else {
        panic!("a second stream for a live call was accepted");
    };
    assert!(err.to_string().contains("409"), "{err}");
    let (status, _) = env.webhook(&sid).await.unwrap();
    assert_eq!(status, 409, "a replayed webhook for a live call");

    live.send(Message::text(
        serde_json::json!({"event": "stop", "sequenceNumber": "9", "streamSid": "MZ1",
            "stop": {"accountSid": ACCOUNT_SID, "callSid": sid}})
        .to_string(),
    ))
    .await
    .unwrap();
    let rec = env.record(&sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
    let Err(err) = env.raw_stream(&url, Some(sig.clone())).await else {
        panic!("a stream for an ended call was accepted");
    };
    assert!(err.to_string().contains("409"), "{err}");
    let (status, _) = env.webhook(&sid).await.unwrap();
    assert_eq!(status, 409, "a replayed webhook for an ended call");

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(env.realtime.sessions().len(), 1, "no second model session");
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "switchboard_stream_refusals_total{reason=\"replay\"}"),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "switchboard_stream_refusals_total{reason=\"webhook_replay\"}"
        ),
        2.0
    );
    let rec = env.record(&sid).await.unwrap();
    assert_eq!(
        rec.outcome.as_deref(),
        Some("caller_hangup"),
        "record intact"
    );
}

/// Two streams racing for one admission: exactly one becomes the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_admission_opens_one_stream_even_when_two_race() {
    let env = Env::start(EnvOptions {
        no_preconnect: true,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let sid = new_sid("CA");
    let (_, twiml) = env.webhook(&sid).await.unwrap();
    let (url, params) = stream_target(&twiml).unwrap();
    // Both handshakes complete before either sends `start`.
    let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
    let mut a = env.raw_stream(&url, Some(sig.clone())).await.unwrap();
    let mut b = env.raw_stream(&url, Some(sig)).await.unwrap();
    for ws in [&mut a, &mut b] {
        ws.send(Message::text(start_message(&new_sid("MZ"), &sid, &params)))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.realtime.sessions().len(), 1, "one model session");
    assert_eq!(
        metric(
            &env.metrics().await,
            "switchboard_stream_refusals_total{reason=\"replay\"}"
        ),
        1.0
    );
}

/// An admission not used within its lifetime is dead: the stream is closed before any
/// model session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_an_expired_admission_is_refused() {
    let env = Env::start(EnvOptions {
        no_preconnect: true,
        stream_admission_seconds: 1,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let sid = new_sid("CA");
    let (_, twiml) = env.webhook(&sid).await.unwrap();
    let (url, params) = stream_target(&twiml).unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut ws = open_and_start(&env, &url, &sid, &params).await;
    assert!(closed_by_gateway(&mut ws).await);
    assert!(env.realtime.sessions().is_empty());
    assert_eq!(
        metric(
            &env.metrics().await,
            "switchboard_stream_refusals_total{reason=\"expired\"}"
        ),
        1.0
    );
}

/// `--max-calls` is taken atomically at the webhook: of N+k concurrent webhooks exactly
/// N get a stream and k a busy signal; a stream without an admission never gets a slot;
/// the slots come back when the calls end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_webhooks_over_capacity_answer_busy_and_streams_need_a_slot() {
    const MAX: usize = 3;
    const EXTRA: usize = 5;
    let env = Env::start(EnvOptions {
        max_calls: MAX,
        no_preconnect: true,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let sids: Vec<String> = (0..MAX + EXTRA).map(|_| new_sid("CA")).collect();
    let answers = futures_util::future::join_all(sids.iter().map(|sid| env.webhook(sid))).await;
    let mut admitted = Vec::new();
    let mut busy = Vec::new();
    for (sid, answer) in sids.iter().zip(answers) {
        let (status, twiml) = answer.unwrap();
        assert_eq!(status, 200, "{twiml}");
        match stream_target(&twiml) {
            Ok(target) => admitted.push((sid.clone(), target)),
            Err(why) => {
                assert!(why.to_string().contains("busy"), "{why}");
                busy.push(sid.clone());
            }
        }
    }
    assert_eq!((admitted.len(), busy.len()), (MAX, EXTRA));

    // A stream for a call that got the busy signal, with a token borrowed from an
    // admitted call: no slot, no model session.
    let (_, (_, borrowed)) = &admitted[0];
    let url = format!(
        "{}/twilio/stream/demo/{}",
        env.base.replace("http://", "ws://"),
        busy[0]
    );
    let mut ws = open_and_start(&env, &url, &busy[0], borrowed).await;
    assert!(closed_by_gateway(&mut ws).await);

    let mut calls = Vec::new();
    for (sid, (url, params)) in &admitted {
        calls.push((sid.clone(), open_and_start(&env, url, sid, params).await));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while env.realtime.sessions().len() < MAX && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.realtime.sessions().len(), MAX);
    let (_, twiml) = env.webhook(&new_sid("CA")).await.unwrap();
    assert!(
        twiml.contains("busy"),
        "full while the calls are live: {twiml}"
    );

    for (sid, ws) in &mut calls {
        ws.send(Message::text(
            serde_json::json!({"event": "stop", "sequenceNumber": "9", "streamSid": "MZ1",
                "stop": {"accountSid": ACCOUNT_SID, "callSid": sid}})
            .to_string(),
        ))
        .await
        .unwrap();
    }
    for (sid, _) in &calls {
        env.record(sid).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while env.gw().state.admissions.slots_in_use() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.gw().state.admissions.slots_in_use(), 0);
    let (_, twiml) = env.webhook(&new_sid("CA")).await.unwrap();
    assert!(stream_target(&twiml).is_ok(), "slots came back: {twiml}");
}

/// Without a valid signature an unknown number and a served one get the same answer:
/// the gateway is no oracle of the numbers it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_known_numbers_are_indistinguishable_without_a_signature() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let url = format!("{}/twilio/voice", env.base);
    let answer = |to: &'static str, token: &'static str| {
        let url = url.clone();
        async move {
            let params: Vec<(String, String)> = [
                ("CallSid", new_sid("CA")),
                ("AccountSid", ACCOUNT_SID.to_string()),
                ("From", "+15551230000".to_string()),
                ("To", to.to_string()),
                ("CallStatus", "ringing".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let sig = twilio_signature(token, &url, &params);
            let resp = switchboard_sim::caller::http_client()
                .unwrap()
                .post(&url)
                .header("X-Twilio-Signature", sig)
                .form(&params)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or("").to_string());
            (status, ctype, resp.text().await.unwrap())
        }
    };
    let known = answer(switchboard_tests::NUMBER, "not-the-token").await;
    let unknown = answer("+15559999999", "not-the-token").await;
    assert_eq!(known.0, 403);
    assert_eq!(known, unknown);
    // Signed by the account's tenant, an unknown number still hears "not in service".
    let (status, _, body) = answer("+15559999999", AUTH_TOKEN).await;
    assert_eq!(status, 200);
    assert!(body.contains("not in service"), "{body}");
}

/// The close code the gateway ends `ws` with, within 5 s (`None`: no close frame).
async fn close_code(ws: &mut switchboard_tests::RawWs) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(frame) = m {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Whether the gateway sends `ws` agent audio (media frames) within 5 s; returns once the
/// audio has stopped for 300 ms.
async fn hears_audio(ws: &mut switchboard_tests::RawWs) -> bool {
    let mut heard = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let wait = if heard {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(5)
        };
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => heard |= t.contains(r#""event":"media""#),
            Ok(Some(Ok(_))) => {}
            Ok(_) | Err(_) => return heard,
        }
        if tokio::time::Instant::now() > deadline {
            return heard;
        }
    }
}

/// Sends Twilio's `stop` for `call_sid`.
async fn hang_up(ws: &mut switchboard_tests::RawWs, call_sid: &str) {
    ws.send(Message::text(
        serde_json::json!({"event": "stop", "sequenceNumber": "9", "streamSid": "MZ1",
            "stop": {"accountSid": ACCOUNT_SID, "callSid": call_sid}})
        .to_string(),
    ))
    .await
    .expect("stop sent");
}

/// Waits until the simulator has seen `n` model sessions (5 s at most); returns the count.
async fn sessions(env: &Env, n: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while env.realtime.sessions().len() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.realtime.sessions().len()
}

/// Replicas of one tenant behind one Service: replica A answers the webhook, the load
/// balancer sends the stream to replica B. B verifies the token and adopts the call
/// (with a call slot of its own); a replay on B is refused. A still holds its unused
/// admission: the documented residual risk is that the same token opens the call once
/// more there, once, within its lifetime; after that A refuses it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_webhook_another_replica_answered_becomes_the_call() {
    let env = Env::start(EnvOptions {
        no_preconnect: true,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let b = env.start_replica(|_| {}).await.unwrap();
    let sid = new_sid("CA");
    let (status, twiml) = env.webhook(&sid).await.unwrap();
    assert_eq!(status, 200);
    let (url, params) = stream_target(&twiml).unwrap();
    assert_eq!(env.gw().state.admissions.pending(), 1);

    let on_b = b.route(&url);
    let mut call = open_and_start_at(&env, &on_b, &url, &sid, &params).await;
    assert!(
        hears_audio(&mut call).await,
        "the caller hears the greeting"
    );
    assert_eq!(sessions(&env, 1).await, 1);
    assert_eq!(
        b.gateway.state.admissions.slots_in_use(),
        1,
        "B took a slot"
    );

    // Replayed on B, live: refused before the upgrade.
    let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
    let Err(err) = env.raw_stream(&on_b, Some(sig.clone())).await else {
        panic!("a second stream on B for a live call was accepted");
    };
    assert!(err.to_string().contains("409"), "{err}");

    hang_up(&mut call, &sid).await;
    let rec = b.record(&sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
    assert!(
        rec.transcript.iter().any(|e| e.text == GREETING),
        "{:#?}",
        rec.transcript
    );
    // Replayed on B after the call: still refused.
    let Err(err) = env.raw_stream(&on_b, Some(sig.clone())).await else {
        panic!("a stream on B for an ended call was accepted");
    };
    assert!(err.to_string().contains("409"), "{err}");
    assert_eq!(
        metric(
            &b.metrics(),
            "switchboard_stream_refusals_total{reason=\"replay\"}"
        ),
        2.0
    );

    // Replayed on A, which answered the webhook and never saw the stream: A consumes its
    // own admission, once (the residual risk of docs/operations.md, "Stream admission").
    let mut replay = open_and_start(&env, &url, &sid, &params).await;
    assert_eq!(sessions(&env, 2).await, 2, "A opened the call once");
    assert_eq!(env.gw().state.admissions.pending(), 0);
    let Err(err) = env.raw_stream(&url, Some(sig)).await else {
        panic!("a second replay on A was accepted");
    };
    assert!(err.to_string().contains("409"), "{err}");
    hang_up(&mut replay, &sid).await;
    env.record(&sid).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(env.realtime.sessions().len(), 2, "no third model session");
}

/// Two streams racing on a replica that did not answer the webhook: one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_streams_racing_on_another_replica_open_one_call() {
    let env = Env::start(EnvOptions {
        no_preconnect: true,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let b = env.start_replica(|_| {}).await.unwrap();
    let sid = new_sid("CA");
    let (_, twiml) = env.webhook(&sid).await.unwrap();
    let (url, params) = stream_target(&twiml).unwrap();
    let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
    let on_b = b.route(&url);
    let mut x = env.raw_stream(&on_b, Some(sig.clone())).await.unwrap();
    let mut y = env.raw_stream(&on_b, Some(sig)).await.unwrap();
    for ws in [&mut x, &mut y] {
        ws.send(Message::text(start_message(&new_sid("MZ"), &sid, &params)))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.realtime.sessions().len(), 1, "one model session");
    assert_eq!(b.gateway.state.admissions.slots_in_use(), 1);
    assert_eq!(
        metric(
            &b.metrics(),
            "switchboard_stream_refusals_total{reason=\"replay\"}"
        ),
        1.0
    );
}

/// A token past its expiry is refused on a replica that never saw its webhook too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_on_another_replica() {
    let env = Env::start(EnvOptions {
        no_preconnect: true,
        stream_admission_seconds: 1,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let b = env.start_replica(|_| {}).await.unwrap();
    let sid = new_sid("CA");
    let (_, twiml) = env.webhook(&sid).await.unwrap();
    let (url, params) = stream_target(&twiml).unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut ws = open_and_start_at(&env, &b.route(&url), &url, &sid, &params).await;
    assert_eq!(close_code(&mut ws).await, Some(1008));
    assert!(env.realtime.sessions().is_empty());
    assert_eq!(b.gateway.state.admissions.slots_in_use(), 0);
    assert_eq!(
        metric(
            &b.metrics(),
            "switchboard_stream_refusals_total{reason=\"expired\"}"
        ),
        1.0
    );
}

/// A replica adopting a stream takes its own `--max-calls` slot: when it has none left the
/// stream is closed busy (1013), counted as `busy`, and no model session is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_replica_refuses_an_adopted_stream_busy() {
    let env = Env::start(EnvOptions {
        no_preconnect: true,
        ..EnvOptions::default()
    })
    .await
    .unwrap();
    let b = env.start_replica(|cli| cli.max_calls = 1).await.unwrap();
    let (first, second) = (new_sid("CA"), new_sid("CA"));
    let (_, twiml) = env.webhook(&first).await.unwrap();
    let (url1, params1) = stream_target(&twiml).unwrap();
    let (_, twiml) = env.webhook(&second).await.unwrap();
    let (url2, params2) = stream_target(&twiml).unwrap();

    let mut live = open_and_start_at(&env, &b.route(&url1), &url1, &first, &params1).await;
    assert_eq!(sessions(&env, 1).await, 1);
    let mut busy = open_and_start_at(&env, &b.route(&url2), &url2, &second, &params2).await;
    assert_eq!(close_code(&mut busy).await, Some(1013), "a busy close");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(env.realtime.sessions().len(), 1, "no model session for it");
    assert_eq!(
        metric(
            &b.metrics(),
            "switchboard_stream_refusals_total{reason=\"busy\"}"
        ),
        1.0
    );
    hang_up(&mut live, &first).await;
    b.record(&first).await.unwrap();
}

/// `/twilio/status` is no oracle of the tenants either: an unknown account or number and
/// a bad signature on a served one get the same bare 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_callbacks_for_unknown_tenants_and_bad_signatures_look_alike() {
    let env = Env::start(EnvOptions::default()).await.unwrap();
    let url = format!("{}/twilio/status", env.base);
    let answer = |account: &'static str, to: Option<&'static str>, token: &'static str| {
        let url = url.clone();
        async move {
            let mut params: Vec<(String, String)> = [
                ("CallSid", new_sid("CA")),
                ("AccountSid", account.to_string()),
                ("CallStatus", "completed".to_string()),
                ("SequenceNumber", "3".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            if let Some(to) = to {
                params.push(("To".into(), to.into()));
            }
            let sig = twilio_signature(token, &url, &params);
            let resp = switchboard_sim::caller::http_client()
                .unwrap()
                .post(&url)
                .header("X-Twilio-Signature", sig)
                .form(&params)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or("").to_string());
            (status, ctype, resp.text().await.unwrap())
        }
    };
    const OTHER_ACCOUNT: &str = "AC99999999999999999999999999999999";
    let known = answer(
        ACCOUNT_SID,
        Some(switchboard_tests::NUMBER),
        "not-the-token",
    )
    .await;
    assert_eq!(known.0, 403);
    for (account, to) in [
        (ACCOUNT_SID, Some("+15559999999")),
        (ACCOUNT_SID, None),
        (OTHER_ACCOUNT, Some("+15559999999")),
        (OTHER_ACCOUNT, None),
    ] {
        assert_eq!(
            answer(account, to, "not-the-token").await,
            known,
            "{account} {to:?}"
        );
    }
    // An unknown account signed with some token of its own: still the same 403.
    assert_eq!(answer(OTHER_ACCOUNT, None, "its-own-token").await, known);
    // Signed by the tenant: by its number, and by its account for a number it no longer
    // declares.
    for to in [Some(switchboard_tests::NUMBER), Some("+15559999999"), None] {
        assert_eq!(answer(ACCOUNT_SID, to, AUTH_TOKEN).await.0, 204, "{to:?}");
    }
    assert_eq!(
        metric(
            &env.metrics().await,
            "switchboard_signature_failures_total{route=\"status\"}"
        ),
        6.0
    );
    assert_eq!(
        metric(
            &env.metrics().await,
            "switchboard_webhook_responses_total{route=\"status\",status=\"404\"}"
        ),
        0.0
    );
}
