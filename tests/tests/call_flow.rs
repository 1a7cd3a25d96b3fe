//! A simulated call end to end: Twilio caller ⇄ gateway ⇄ Realtime simulator, over real
//! sockets, with the record read back from the gateway's store.

use switchboard_sim::caller::{Step, place_call};
use switchboard_sim::realtime::{RealtimeConfig, Turn};
use switchboard_store::Role;
use switchboard_tests::{Env, EnvOptions, GREETING, metric};

const ANSWER: &str = "Yes, we are open from nine to five on Saturdays.";
const QUESTION: &str = "are you open on saturday";

fn options() -> EnvOptions {
    EnvOptions {
        realtime: RealtimeConfig {
            script: vec![
                Turn::say(QUESTION, ANSWER),
                Turn::say("thanks", "You're welcome. Goodbye!"),
            ],
            ..RealtimeConfig::default()
        },
        ..EnvOptions::default()
    }
}

fn hear_out() -> Step {
    Step::WaitAgentDone {
        quiet_ms: 400,
        timeout_ms: 15_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_is_heard_question_answered_and_recorded() {
    let env = Env::start(options()).await.unwrap();
    let script = vec![
        hear_out(),
        Step::Silence { ms: 200 },
        Step::Say { ms: 1200 },
        hear_out(),
        Step::Silence { ms: 200 },
        Step::Hangup,
    ];
    let report = place_call(&env.call(script)).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(
        report.turns.len(),
        2,
        "greeting and answer: {:#?}",
        report.turns
    );
    // The whole greeting and answer played (synthesised at 55 ms per character).
    assert!(report.turns[0].heard_ms >= 1500, "{:#?}", report.turns);
    assert!(report.turns[1].heard_ms >= 1500, "{:#?}", report.turns);
    assert!(!report.turns.iter().any(|t| t.cut_by_clear));
    assert!(
        report.marks_echoed > 0 && report.marks_echoed == report.marks_received,
        "{report:#?}"
    );

    // What OpenAI saw: GA session configured before any audio, pcmu both ways.
    assert!(
        env.realtime
            .wait_sessions_closed(1, std::time::Duration::from_secs(5))
            .await
    );
    let sessions = env.realtime.sessions();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(s.authorization_present && !s.beta_header);
    assert_eq!(s.model, "gpt-realtime");
    assert!(!s.audio_before_session_update);
    assert_eq!(s.session["type"], "realtime");
    assert_eq!(s.session["audio"]["input"]["format"]["type"], "audio/pcmu");
    assert_eq!(s.session["audio"]["output"]["format"]["type"], "audio/pcmu");
    assert!(s.errors_sent.is_empty(), "{:#?}", s.errors_sent);
    assert_eq!(s.responses[0].text, GREETING);
    // µ-law passes through: every byte the caller sent reached OpenAI.
    assert!(
        s.audio_bytes_in >= report.frames_sent * 160,
        "{} < {}",
        s.audio_bytes_in,
        report.frames_sent * 160
    );

    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("caller_hangup"));
    assert_eq!(rec.tenant, "demo");
    assert_eq!(rec.from.as_deref(), Some("+15551230000"));
    let texts: Vec<(Role, &str)> = rec
        .transcript
        .iter()
        .map(|e| (e.role, e.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        vec![
            (Role::Agent, GREETING),
            (Role::Caller, QUESTION),
            (Role::Agent, ANSWER)
        ]
    );
    assert!(
        rec.transcript
            .windows(2)
            .all(|w| w[0].start_ms <= w[1].start_ms)
    );
    assert!(
        rec.usage.responses >= 2 && rec.usage.total_tokens > 0,
        "{:?}",
        rec.usage
    );

    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "switchboard_calls_total{outcome=\"caller_hangup\"}"),
        1.0
    );
    assert!(
        metric(
            &m,
            "switchboard_frames_relayed_total{direction=\"inbound\"}"
        ) > 50.0
    );
    assert!(
        metric(
            &m,
            "switchboard_frames_relayed_total{direction=\"outbound\"}"
        ) > 10.0
    );
    assert_eq!(
        metric(&m, "switchboard_preconnect_total{result=\"adopted\"}"),
        1.0
    );
    assert_eq!(metric(&m, "switchboard_active_calls"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_clears_truncates_at_what_was_heard_and_drops_cancelled_audio() {
    // Generation at real time keeps the answer in progress when the caller talks over it,
    // so OpenAI cancels it and has deltas in flight (the hard case).
    let mut opts = options();
    opts.realtime.speed = 1.0;
    let env = Env::start(opts).await.unwrap();
    let script = vec![
        hear_out(),
        Step::Silence { ms: 200 },
        Step::Say { ms: 1200 },
        Step::BargeIn {
            after_heard_ms: 800,
            say_ms: 900,
        },
        hear_out(),
        Step::Silence { ms: 200 },
        Step::Hangup,
    ];
    let report = place_call(&env.call(script)).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.clears, 1, "{report:#?}");
    let cut = report
        .turns
        .iter()
        .find(|t| t.cut_by_clear)
        .expect("a turn cut by clear");
    let heard = cut.heard_ms_at_clear.unwrap();
    assert!(
        heard >= 800,
        "caller talked over the agent after 800 ms: {cut:?}"
    );

    assert!(
        env.realtime
            .wait_sessions_closed(1, std::time::Duration::from_secs(5))
            .await
    );
    let s = &env.realtime.sessions()[0];
    assert_eq!(s.truncates.len(), 1, "{:#?}", s.truncates);
    let t = &s.truncates[0];
    assert!(t.accepted, "{t:?}");
    // truncate = min(sent, played + 50): the playout clock's echoes lag what the caller
    // heard by at most a chunk (40 ms) plus a frame.
    let expected = (heard + 50).min(t.generated_ms);
    assert!(
        t.audio_end_ms.abs_diff(expected) <= 60,
        "truncate {} vs heard {heard}+50 (generated {})",
        t.audio_end_ms,
        t.generated_ms
    );
    assert!(s.errors_sent.is_empty(), "{:#?}", s.errors_sent);
    let cancelled = s
        .responses
        .iter()
        .filter(|r| r.status == "cancelled")
        .count();
    assert_eq!(cancelled, 1, "{:#?}", s.responses);

    let m = env.metrics().await;
    assert_eq!(metric(&m, "switchboard_barge_ins_total"), 1.0);
    // The simulator delivers one delta of the cancelled response after speech_started.
    assert!(
        metric(&m, "switchboard_late_deltas_dropped_total") >= 1.0,
        "{m}"
    );

    let rec = env.record(&report.call_sid).await.unwrap();
    assert_eq!(rec.barge_ins, 1);
    let interrupted: Vec<_> = rec.transcript.iter().filter(|e| e.interrupted).collect();
    assert_eq!(interrupted.len(), 1, "{:#?}", rec.transcript);
    assert_eq!(interrupted[0].role, Role::Agent);
    assert!(interrupted[0].heard_ms.unwrap().abs_diff(heard) <= 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_reaches_the_model_as_user_text() {
    let env = Env::start(options()).await.unwrap();
    let script = vec![
        hear_out(),
        Step::Dtmf { digit: '7' },
        Step::Silence { ms: 1500 },
        hear_out(),
        Step::Hangup,
    ];
    let report = place_call(&env.call(script)).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert!(
        env.realtime
            .wait_sessions_closed(1, std::time::Duration::from_secs(5))
            .await
    );
    let s = &env.realtime.sessions()[0];
    assert!(
        s.user_texts.iter().any(|t| t.contains("\"7\"")),
        "{:?}",
        s.user_texts
    );
    assert_eq!(
        s.responses.len(),
        2,
        "greeting, then an answer to the key press: {:#?}",
        s.responses
    );
    assert!(s.responses[1].text.contains('7'), "{:#?}", s.responses);
    assert!(
        report.heard_ms_total >= s.responses.iter().map(|r| r.generated_ms).sum::<u64>() - 100,
        "{report:#?}"
    );
}
