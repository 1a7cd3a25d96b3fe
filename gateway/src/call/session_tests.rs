//! State machine tests: no sockets, no clock — inputs and time in, actions out.

use serde_json::Value;

use super::*;

const SID: &str = "MZ00000000000000000000000000000001";

fn settings(greeting: Option<&str>, interruptible: bool) -> SessionSettings {
    SessionSettings {
        greeting: greeting.map(str::to_string),
        greeting_interruptible: interruptible,
        interruptible_update: r#"{"type":"session.update","session":{"type":"realtime"}}"#.into(),
        max_call_ms: 60_000,
        silence_timeout_ms: 0,
        external_tools: vec!["lookup".into()],
        transfer_targets: vec!["sales".into()],
        handoff_timeout_ms: 15_000,
    }
}

struct Harness {
    s: CallSession,
    now: u64,
}

impl Harness {
    fn new(greeting: Option<&str>, interruptible: bool) -> Self {
        Self {
            s: CallSession::new(settings(greeting, interruptible), SID.into(), 0),
            now: 0,
        }
    }
    fn at(&mut self, now: u64) -> &mut Self {
        self.now = now;
        self
    }
    fn feed(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        self.s.handle(self.now, input, &mut out);
        out
    }
    fn rt(&mut self, ev: ServerEvent) -> Vec<Action> {
        self.feed(Input::Realtime(ev))
    }
    fn delta(&mut self, resp: &str, item: &str, bytes: usize) -> Vec<Action> {
        self.rt(ServerEvent::AudioDelta {
            response_id: resp.into(),
            item_id: item.into(),
            content_index: 0,
            delta: STANDARD.encode(vec![0x55u8; bytes]),
        })
    }
}

fn twilio_msgs(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Twilio(t) => Some(serde_json::from_str(t).unwrap()),
            _ => None,
        })
        .collect()
}

fn realtime_msgs(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Realtime(t) => Some(serde_json::from_str(t).unwrap()),
            _ => None,
        })
        .collect()
}

fn mark_names(actions: &[Action]) -> Vec<String> {
    twilio_msgs(actions)
        .iter()
        .filter(|m| m["event"] == "mark")
        .map(|m| m["mark"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn ended(actions: &[Action]) -> Option<&CallSummary> {
    actions.iter().find_map(|a| match a {
        Action::End(s) => Some(s),
        _ => None,
    })
}

#[test]
fn greets_only_after_session_updated() {
    let mut h = Harness::new(Some("Thanks for calling Demo Dental."), true);
    assert!(h.rt(ServerEvent::SessionCreated).is_empty());
    let out = h.rt(ServerEvent::SessionUpdated);
    let rt = realtime_msgs(&out);
    assert_eq!(rt.len(), 1);
    assert_eq!(rt[0]["type"], "response.create");
    assert!(
        rt[0]["response"]["instructions"]
            .as_str()
            .unwrap()
            .contains("Thanks for calling Demo Dental.")
    );
    // a second session.updated does not greet twice
    assert!(realtime_msgs(&h.rt(ServerEvent::SessionUpdated)).is_empty());
}

#[test]
fn caller_audio_passes_through_and_gaps_are_padded() {
    let mut h = Harness::new(None, true);
    let payload = STANDARD.encode([0x12u8; 160]);
    let out = h.feed(Input::Media {
        timestamp_ms: 0,
        payload: payload.clone(),
        bytes: 160,
    });
    assert_eq!(
        realtime_msgs(&out),
        vec![serde_json::json!({"type":"input_audio_buffer.append","audio":payload})]
    );
    h.feed(Input::Media {
        timestamp_ms: 20,
        payload: payload.clone(),
        bytes: 160,
    });
    // 60 ms missing (frames at 40, 60, 80 never came)
    let out = h.feed(Input::Media {
        timestamp_ms: 100,
        payload: payload.clone(),
        bytes: 160,
    });
    let rt = realtime_msgs(&out);
    assert_eq!(rt.len(), 2);
    let pad = STANDARD.decode(rt[0]["audio"].as_str().unwrap()).unwrap();
    assert_eq!(pad.len(), 60 * 8);
    assert!(pad.iter().all(|&b| b == 0xFF));
    assert_eq!(rt[1]["audio"], payload.as_str());
    assert!(out.contains(&Action::Observe(Observation::PaddedSilence(60))));
}

#[test]
fn hostile_media_timestamps_saturate() {
    let mut h = Harness::new(None, true);
    let payload = STANDARD.encode([0x12u8; 160]);
    let mut padded = 0;
    for ts in [u64::MAX, u64::MAX, u64::MAX - 1, 0, u64::MAX - 25, 40] {
        let out = h.feed(Input::Media {
            timestamp_ms: ts,
            payload: payload.clone(),
            bytes: 160,
        });
        let rt = realtime_msgs(&out);
        assert_eq!(rt.last().unwrap()["audio"], payload.as_str(), "ts {ts}");
        for a in &out {
            if let Action::Observe(Observation::PaddedSilence(ms)) = a {
                assert!(*ms <= MAX_GAP_PAD_MS);
                padded += 1;
            }
        }
    }
    // The clock saturated at u64::MAX: nothing after it is a gap.
    assert_eq!(padded, 0);
}

#[test]
fn agent_audio_is_forwarded_with_a_unique_mark_per_chunk() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "resp_1".into(),
    });
    let a = h.delta("resp_1", "item_1", 800);
    let b = h.delta("resp_1", "item_1", 800);
    let ta = twilio_msgs(&a);
    assert_eq!(ta[0]["event"], "media");
    assert_eq!(ta[0]["streamSid"], SID);
    assert_eq!(
        STANDARD
            .decode(ta[0]["media"]["payload"].as_str().unwrap())
            .unwrap()
            .len(),
        800
    );
    assert_ne!(mark_names(&a), mark_names(&b));
}

#[test]
fn barge_in_clears_truncates_at_played_plus_50_and_drops_late_deltas() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "resp_1".into(),
    });
    let m1 = mark_names(&h.delta("resp_1", "item_1", 800))[0].clone();
    let m2 = mark_names(&h.delta("resp_1", "item_1", 800))[0].clone();
    let m3 = mark_names(&h.delta("resp_1", "item_1", 800))[0].clone();
    h.feed(Input::Mark(m1));
    h.feed(Input::Mark(m2)); // 200 ms heard of 300 ms sent
    let out = h.at(500).rt(ServerEvent::SpeechStarted {
        audio_start_ms: 400,
        item_id: "item_u1".into(),
    });
    let tw = twilio_msgs(&out);
    assert_eq!(
        tw,
        vec![serde_json::json!({"event":"clear","streamSid":SID})]
    );
    let rt = realtime_msgs(&out);
    assert_eq!(
        rt,
        vec![
            serde_json::json!({"type":"conversation.item.truncate","item_id":"item_1","content_index":0,"audio_end_ms":250})
        ]
    );
    assert!(out.contains(&Action::Observe(Observation::BargeIn)));
    // a delta of the cancelled response still in flight is not forwarded
    let late = h.delta("resp_1", "item_1", 800);
    assert!(twilio_msgs(&late).is_empty());
    assert!(late.contains(&Action::Observe(Observation::LateDeltaDropped)));
    // the echo of the cleared mark is not taken as playback, and is not an error
    assert!(h.feed(Input::Mark(m3)).is_empty());
    // the next response plays normally
    h.rt(ServerEvent::ResponseDone {
        response_id: "resp_1".into(),
        status: "cancelled".into(),
        usage: None,
    });
    h.rt(ServerEvent::ResponseCreated {
        response_id: "resp_2".into(),
    });
    assert_eq!(twilio_msgs(&h.delta("resp_2", "item_2", 160)).len(), 2);
    let s = h.feed(Input::Stop);
    let summary = ended(&s).unwrap();
    let agent: Vec<_> = summary
        .transcript
        .iter()
        .filter(|e| e.role == Role::Agent)
        .collect();
    assert!(agent[0].interrupted);
    assert_eq!(agent[0].heard_ms, Some(200));
    assert!(!agent[1].interrupted);
    assert_eq!(summary.barge_ins, 1);
}

#[test]
fn truncate_is_clamped_to_audio_sent() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r".into(),
    });
    let m = mark_names(&h.delta("r", "i", 240))[0].clone(); // 30 ms
    h.feed(Input::Mark(m));
    let out = h.rt(ServerEvent::SpeechStarted {
        audio_start_ms: 0,
        item_id: "u".into(),
    });
    assert_eq!(realtime_msgs(&out)[0]["audio_end_ms"], 30);
}

#[test]
fn speech_with_nothing_playing_is_not_a_barge_in() {
    let mut h = Harness::new(None, true);
    let out = h.rt(ServerEvent::SpeechStarted {
        audio_start_ms: 0,
        item_id: "u".into(),
    });
    assert!(out.is_empty());
}

#[test]
fn non_interruptible_greeting_is_protected_then_interruptions_are_enabled() {
    let mut h = Harness::new(Some("Hello."), false);
    h.rt(ServerEvent::SessionUpdated);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "g".into(),
    });
    let m = mark_names(&h.delta("g", "gi", 800))[0].clone();
    let out = h.rt(ServerEvent::SpeechStarted {
        audio_start_ms: 0,
        item_id: "u".into(),
    });
    assert!(twilio_msgs(&out).is_empty(), "greeting must not be cleared");
    let done = mark_names(&h.rt(ServerEvent::AudioDone {
        response_id: "g".into(),
        item_id: "gi".into(),
    }))[0]
        .clone();
    h.rt(ServerEvent::ResponseDone {
        response_id: "g".into(),
        status: "completed".into(),
        usage: None,
    });
    h.feed(Input::Mark(m));
    let out = h.feed(Input::Mark(done));
    let rt = realtime_msgs(&out);
    assert_eq!(rt.len(), 1);
    assert_eq!(rt[0]["type"], "session.update");
}

#[test]
fn interruptible_greeting_can_be_cut() {
    let mut h = Harness::new(Some("Hello."), true);
    h.rt(ServerEvent::SessionUpdated);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "g".into(),
    });
    h.delta("g", "gi", 800);
    let out = h.rt(ServerEvent::SpeechStarted {
        audio_start_ms: 0,
        item_id: "u".into(),
    });
    assert_eq!(twilio_msgs(&out)[0]["event"], "clear");
}

#[test]
fn dtmf_reaches_the_model_and_response_waits_for_the_active_one() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    let out = h.feed(Input::Dtmf('5'));
    let rt = realtime_msgs(&out);
    assert_eq!(rt.len(), 1);
    assert_eq!(rt[0]["item"]["role"], "user");
    assert!(
        rt[0]["item"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("\"5\"")
    );
    let out = h.rt(ServerEvent::ResponseDone {
        response_id: "r1".into(),
        status: "completed".into(),
        usage: None,
    });
    assert_eq!(
        realtime_msgs(&out),
        vec![serde_json::json!({"type":"response.create"})]
    );
}

#[test]
fn unknown_tool_gets_an_error_output_and_a_new_response() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    let out = h.rt(ServerEvent::FunctionCall {
        response_id: "r1".into(),
        call_id: "call_1".into(),
        name: "launch".into(),
        arguments: "{}".into(),
    });
    let rt = realtime_msgs(&out);
    assert_eq!(rt[0]["item"]["type"], "function_call_output");
    assert_eq!(rt[0]["item"]["call_id"], "call_1");
    assert!(
        rt[0]["item"]["output"]
            .as_str()
            .unwrap()
            .contains("unknown tool")
    );
    let out = h.rt(ServerEvent::ResponseDone {
        response_id: "r1".into(),
        status: "completed".into(),
        usage: None,
    });
    assert_eq!(realtime_msgs(&out)[0]["type"], "response.create");
}

#[test]
fn end_call_tool_hangs_up_after_the_goodbye_has_played() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    let m = mark_names(&h.delta("r1", "bye", 160))[0].clone();
    let done = mark_names(&h.rt(ServerEvent::AudioDone {
        response_id: "r1".into(),
        item_id: "bye".into(),
    }))[0]
        .clone();
    h.rt(ServerEvent::FunctionCall {
        response_id: "r1".into(),
        call_id: "c".into(),
        name: end_call::NAME.into(),
        arguments: "{}".into(),
    });
    assert!(
        ended(&h.rt(ServerEvent::ResponseDone {
            response_id: "r1".into(),
            status: "completed".into(),
            usage: None
        }))
        .is_none()
    );
    h.feed(Input::Mark(m));
    let out = h.feed(Input::Mark(done));
    assert_eq!(ended(&out).map(|s| s.outcome), Some(Outcome::AgentEnded));
    assert_eq!(ended(&out).unwrap().tool_calls[0].name, end_call::NAME);
}

#[test]
fn stalled_caller_audio_during_speech_is_padded_once() {
    let mut h = Harness::new(None, true);
    h.feed(Input::Media {
        timestamp_ms: 0,
        payload: STANDARD.encode([0u8; 160]),
        bytes: 160,
    });
    h.rt(ServerEvent::SpeechStarted {
        audio_start_ms: 0,
        item_id: "u".into(),
    });
    assert!(realtime_msgs(&h.at(500).feed(Input::Tick)).is_empty());
    let out = h.at(800).feed(Input::Tick);
    assert_eq!(
        STANDARD
            .decode(realtime_msgs(&out)[0]["audio"].as_str().unwrap())
            .unwrap()
            .len(),
        8000
    );
    assert!(realtime_msgs(&h.at(1100).feed(Input::Tick)).is_empty());
}

#[test]
fn limits_end_the_call() {
    let mut h = Harness::new(None, true);
    assert_eq!(
        ended(&h.at(60_000).feed(Input::Tick)).map(|s| s.outcome),
        Some(Outcome::MaxDuration)
    );
    assert!(h.s.is_ended());
    assert!(h.feed(Input::Stop).is_empty(), "nothing after the end");
    let mut h = Harness::new(None, true);
    h.s.settings.silence_timeout_ms = 5_000;
    assert!(ended(&h.at(4_000).feed(Input::Tick)).is_none());
    assert_eq!(
        ended(&h.at(5_000).feed(Input::Tick)).map(|s| s.outcome),
        Some(Outcome::Silence)
    );
}

#[test]
fn openai_failures_end_the_call_with_a_reason() {
    let mut h = Harness::new(None, true);
    let out = h.rt(ServerEvent::Error(crate::realtime::wire::ErrorBody {
        code: Some("session_expired".into()),
        ..Default::default()
    }));
    assert!(out.contains(&Action::Observe(Observation::OpenAiError(
        "session_expired".into()
    ))));
    let s = ended(&out).unwrap();
    assert_eq!(
        (s.outcome, s.detail.as_deref()),
        (Outcome::OpenAiError, Some("session_expired"))
    );
    let mut h = Harness::new(None, true);
    assert!(
        ended(&h.rt(ServerEvent::Error(Default::default()))).is_none(),
        "most errors are recoverable"
    );
    assert_eq!(
        ended(&h.feed(Input::RealtimeClosed)).map(|s| s.outcome),
        Some(Outcome::OpenAiError)
    );
    let mut h = Harness::new(None, true);
    assert_eq!(
        ended(&h.feed(Input::RealtimeClosed)).map(|s| s.outcome),
        Some(Outcome::OpenAiClosed)
    );
}

#[test]
fn transcript_and_usage_are_kept_in_order() {
    let mut h = Harness::new(None, true);
    h.at(100).rt(ServerEvent::SpeechStarted {
        audio_start_ms: 80,
        item_id: "u1".into(),
    });
    h.at(1500).rt(ServerEvent::SpeechStopped {
        audio_end_ms: 1400,
        item_id: "u1".into(),
    });
    h.rt(ServerEvent::InputTranscript {
        item_id: "u1".into(),
        transcript: "are you open saturday".into(),
    });
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    let out = h.at(1900).delta("r1", "a1", 1600);
    assert!(out.contains(&Action::Observe(Observation::ResponseLatency(400))));
    h.rt(ServerEvent::AudioTranscriptDone {
        item_id: "a1".into(),
        transcript: "Yes, nine to five.".into(),
    });
    let usage = ResponseUsage {
        total_tokens: 30,
        input_tokens: 20,
        output_tokens: 10,
        ..Default::default()
    };
    h.rt(ServerEvent::ResponseDone {
        response_id: "r1".into(),
        status: "completed".into(),
        usage: Some(usage.clone()),
    });
    h.rt(ServerEvent::ResponseDone {
        response_id: "r0".into(),
        status: "completed".into(),
        usage: Some(usage),
    });
    let out = h.at(3000).feed(Input::Stop);
    let s = ended(&out).unwrap();
    assert_eq!(s.outcome, Outcome::CallerHangup);
    assert_eq!(s.transcript.len(), 2);
    assert_eq!(
        (
            s.transcript[0].role,
            s.transcript[0].text.as_str(),
            s.transcript[0].start_ms,
            s.transcript[0].end_ms
        ),
        (Role::Caller, "are you open saturday", 80, 1400)
    );
    assert_eq!(
        (
            s.transcript[1].role,
            s.transcript[1].text.as_str(),
            s.transcript[1].seq
        ),
        (Role::Agent, "Yes, nine to five.", 1)
    );
    assert_eq!(s.transcript[1].end_ms - s.transcript[1].start_ms, 200);
    assert_eq!(
        (
            s.usage.responses,
            s.usage.total_tokens,
            s.usage.input_tokens
        ),
        (2, 60, 40)
    );
}

#[test]
fn external_tool_result_survives_a_barge_in_and_waits_for_the_active_response() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    let out = h.at(1000).rt(ServerEvent::FunctionCall {
        response_id: "r1".into(),
        call_id: "call_9".into(),
        name: "lookup".into(),
        arguments: r#"{"query":"hours"}"#.into(),
    });
    assert_eq!(
        out,
        vec![Action::RunTool {
            call_id: "call_9".into(),
            name: "lookup".into(),
            arguments: r#"{"query":"hours"}"#.into()
        }]
    );
    h.rt(ServerEvent::ResponseDone {
        response_id: "r1".into(),
        status: "completed".into(),
        usage: None,
    });
    // The caller talks during the lookup; the model starts answering that.
    h.rt(ServerEvent::SpeechStarted {
        audio_start_ms: 900,
        item_id: "u".into(),
    });
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r2".into(),
    });
    let out = h.at(1012).feed(Input::ToolResult {
        call_id: "call_9".into(),
        output: r#"{"passages":[]}"#.into(),
    });
    let rt = realtime_msgs(&out);
    assert_eq!(rt.len(), 1, "output added, response deferred: {rt:?}");
    assert_eq!(rt[0]["item"]["call_id"], "call_9");
    let out = h.rt(ServerEvent::ResponseDone {
        response_id: "r2".into(),
        status: "completed".into(),
        usage: None,
    });
    assert_eq!(
        realtime_msgs(&out),
        vec![serde_json::json!({"type":"response.create"})]
    );
    let s = h.feed(Input::Stop);
    let rec = &ended(&s).unwrap().tool_calls[0];
    assert_eq!((rec.name.as_str(), rec.latency_ms), ("lookup", 12));
    // A result nobody asked for is ignored.
    let mut h = Harness::new(None, true);
    let out = h.feed(Input::ToolResult {
        call_id: "nope".into(),
        output: "{}".into(),
    });
    assert_eq!(
        out,
        vec![Action::Observe(Observation::Protocol(
            "unexpected_tool_result"
        ))]
    );
}

#[test]
fn invalid_agent_audio_is_not_forwarded() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r".into(),
    });
    let out = h.rt(ServerEvent::AudioDelta {
        response_id: "r".into(),
        item_id: "i".into(),
        content_index: 0,
        delta: "%%% not base64".into(),
    });
    assert_eq!(
        out,
        vec![Action::Observe(Observation::Protocol("openai_bad_audio"))]
    );
    // A good delta afterwards still plays, with the reused buffer holding only its bytes.
    let out = h.delta("r", "i", 160);
    assert_eq!(mark_names(&out).len(), 1);
    assert!(
        mark_names(&out)[0].starts_with("i:20:"),
        "{:?}",
        mark_names(&out)
    );
}

/// Plays one response `resp` of `bytes` audio on item `item` and echoes its marks.
fn play(h: &mut Harness, resp: &str, item: &str, bytes: usize) -> Vec<Action> {
    h.rt(ServerEvent::ResponseCreated {
        response_id: resp.into(),
    });
    let marks = mark_names(&h.delta(resp, item, bytes));
    let done = mark_names(&h.rt(ServerEvent::AudioDone {
        response_id: resp.into(),
        item_id: item.into(),
    }));
    let mut out = h.rt(ServerEvent::ResponseDone {
        response_id: resp.into(),
        status: "completed".into(),
        usage: None,
    });
    for m in marks.into_iter().chain(done) {
        out.extend(h.feed(Input::Mark(m)));
    }
    out
}

fn transfer_call(h: &mut Harness, resp: &str, args: &str) -> Vec<Action> {
    h.rt(ServerEvent::ResponseCreated {
        response_id: resp.into(),
    });
    let mut out = h.rt(ServerEvent::FunctionCall {
        response_id: resp.into(),
        call_id: "t1".into(),
        name: crate::tools::transfer_call::NAME.into(),
        arguments: args.into(),
    });
    out.extend(h.rt(ServerEvent::ResponseDone {
        response_id: resp.into(),
        status: "completed".into(),
        usage: None,
    }));
    out
}

#[test]
fn transfer_waits_until_the_hand_off_sentence_has_been_heard() {
    let mut h = Harness::new(None, true);
    let out = transfer_call(&mut h, "r1", r#"{"target":"sales","reason":"pricing"}"#);
    let rt = realtime_msgs(&out);
    assert_eq!(rt[0]["item"]["type"], "function_call_output");
    assert!(
        rt[0]["item"]["output"]
            .as_str()
            .unwrap()
            .contains("transferring")
    );
    assert_eq!(
        rt[1]["type"], "response.create",
        "the model says the hand-off"
    );
    assert!(ended(&out).is_none());
    // The hand-off sentence: the call moves only after its last mark is echoed.
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r2".into(),
    });
    let marks = mark_names(&h.delta("r2", "handoff", 1600));
    let done = mark_names(&h.rt(ServerEvent::AudioDone {
        response_id: "r2".into(),
        item_id: "handoff".into(),
    }));
    let out = h.rt(ServerEvent::ResponseDone {
        response_id: "r2".into(),
        status: "completed".into(),
        usage: None,
    });
    assert!(ended(&out).is_none(), "audio still playing");
    assert!(ended(&h.feed(Input::Mark(marks[0].clone()))).is_none());
    let out = h.feed(Input::Mark(done[0].clone()));
    assert_eq!(
        out.iter()
            .filter(|a| matches!(a, Action::Transfer { target } if target == "sales"))
            .count(),
        1
    );
    let s = ended(&out).unwrap();
    assert_eq!(
        (s.outcome, s.detail.as_deref()),
        (Outcome::Transferred, Some("sales"))
    );
    let transfer_at = out
        .iter()
        .position(|a| matches!(a, Action::Transfer { .. }))
        .unwrap();
    let end_at = out
        .iter()
        .position(|a| matches!(a, Action::End(_)))
        .unwrap();
    assert!(transfer_at < end_at, "moved before the stream closes");
}

#[test]
fn transfer_to_an_unknown_target_is_refused_and_the_call_goes_on() {
    let mut h = Harness::new(None, true);
    let out = transfer_call(&mut h, "r1", r#"{"target":"ceo"}"#);
    let rt = realtime_msgs(&out);
    assert!(
        rt[0]["item"]["output"]
            .as_str()
            .unwrap()
            .contains("unknown target")
    );
    play(&mut h, "r2", "sorry", 160);
    assert!(!h.s.is_ended());
    assert!(ended(&h.at(60_000 - 1).feed(Input::Tick)).is_none());
}

#[test]
fn a_hand_off_that_is_never_heard_moves_the_call_at_the_timeout() {
    let mut h = Harness::new(None, true);
    transfer_call(&mut h, "r1", r#"{"target":"sales"}"#);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r2".into(),
    });
    h.delta("r2", "handoff", 1600);
    assert!(ended(&h.at(14_999).feed(Input::Tick)).is_none());
    let out = h.at(15_000).feed(Input::Tick);
    assert!(out.iter().any(|a| matches!(a, Action::Transfer { .. })));
    assert_eq!(ended(&out).map(|s| s.outcome), Some(Outcome::Transferred));
}

#[test]
fn a_return_leg_starts_with_the_history_and_keeps_one_record() {
    let earlier = TranscriptEntry {
        seq: 0,
        role: Role::Caller,
        text: "My name is Ada.".into(),
        start_ms: 100,
        end_ms: 900,
        interrupted: false,
        heard_ms: None,
    };
    let resume = Resume {
        seed: vec![r#"{"type":"conversation.item.create"}"#.into()],
        transcript: vec![earlier.clone()],
        tool_calls: Vec::new(),
        usage: Usage {
            responses: 2,
            ..Usage::default()
        },
        barge_ins: 1,
        offset_ms: 30_000,
    };
    let mut s = CallSession::resume(settings(Some("Hello!"), true), SID.into(), 0, resume);
    let mut out = Vec::new();
    s.handle(0, Input::Realtime(ServerEvent::SessionUpdated), &mut out);
    let rt = realtime_msgs(&out);
    assert_eq!(rt[0]["type"], "conversation.item.create", "history first");
    assert_eq!(rt[1]["type"], "response.create");
    assert!(
        rt[1].get("response").is_none(),
        "no greeting on a return leg: {}",
        rt[1]
    );
    let mut h = Harness { s, now: 0 };
    h.rt(ServerEvent::SpeechStopped {
        audio_end_ms: 0,
        item_id: "u2".into(),
    });
    h.rt(ServerEvent::InputTranscript {
        item_id: "u2".into(),
        transcript: "Just take a message.".into(),
    });
    let out = h.feed(Input::Stop);
    let s = ended(&out).unwrap();
    assert_eq!(s.outcome, Outcome::CallerHangup);
    assert_eq!(s.transcript[0], earlier);
    assert_eq!(s.transcript[1].text, "Just take a message.");
    assert!(
        s.transcript[1].start_ms >= 30_000,
        "this leg's times follow the first"
    );
    assert_eq!(s.transcript[1].seq, 1);
    assert_eq!((s.usage.responses, s.barge_ins), (2, 1));
}

#[test]
fn an_unheard_goodbye_ends_the_call_at_the_timeout() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    h.delta("r1", "bye", 1600);
    h.rt(ServerEvent::FunctionCall {
        response_id: "r1".into(),
        call_id: "c".into(),
        name: end_call::NAME.into(),
        arguments: "{}".into(),
    });
    assert!(ended(&h.at(10_000).feed(Input::Tick)).is_none());
    let out = h.at(15_000).feed(Input::Tick);
    assert_eq!(ended(&out).map(|s| s.outcome), Some(Outcome::AgentEnded));
}
