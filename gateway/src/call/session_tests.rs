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
        idle_reprompts: 2,
        wrap_up_ms: 10_000,
        end_grace_ms: 5_000,
        goodbye: "Thanks for calling, goodbye!".into(),
        external_tools: vec!["lookup".into()],
        record: false,
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
    assert!(
        h.rt(ServerEvent::SessionCreated { expires_at: None })
            .is_empty()
    );
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
    h.at(20).feed(Input::Media {
        timestamp_ms: 20,
        payload: payload.clone(),
        bytes: 160,
    });
    // 60 ms missing (frames at 40, 60, 80 never came)
    let out = h.at(100).feed(Input::Media {
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

/// A peer that jumps `media.timestamp` gets no more silence padded than the wall-clock
/// time that passed: frames 20 ms apart claiming 10 s gaps each, then a burst of frames at
/// one instant, then a stall pad followed by a gap it already covered.
#[test]
fn timestamp_jumps_pad_no_more_silence_than_real_time() {
    let mut h = Harness::new(None, true);
    let payload = STANDARD.encode([0x12u8; 160]);
    let padded = |out: &[Action]| -> u64 {
        out.iter()
            .map(|a| match a {
                Action::Observe(Observation::PaddedSilence(ms)) => *ms,
                _ => 0,
            })
            .sum()
    };
    let mut total = 0;
    let mut now = 0;
    let mut ts = 0;
    for _ in 0..100 {
        let out = h.at(now).feed(Input::Media {
            timestamp_ms: ts,
            payload: payload.clone(),
            bytes: 160,
        });
        total += padded(&out);
        now += 20;
        ts += 10_000;
    }
    // Before: 99 gaps of MAX_GAP_PAD_MS each (990 s of silence in 2 s).
    assert!(total <= now, "{total} ms padded in {now} ms");
    assert!(total > 0, "real elapsed time is still padded");
    // A burst: no time passes, so no gap is real.
    for _ in 0..50 {
        ts += 10_000;
        total += padded(&h.feed(Input::Media {
            timestamp_ms: ts,
            payload: payload.clone(),
            bytes: 160,
        }));
    }
    assert!(total <= now, "{total} ms padded in {now} ms");
    // A stall pad (1 s) during speech, then the late frame with a 5 s gap: the stall pad
    // already covered that second.
    h.rt(ServerEvent::SpeechStarted {
        audio_start_ms: 0,
        item_id: "u".into(),
    });
    let stall_at = now + 800;
    total += padded(&h.at(stall_at).feed(Input::Tick));
    let out = h.at(now + 1000).feed(Input::Media {
        timestamp_ms: ts + 5_000,
        payload: payload.clone(),
        bytes: 160,
    });
    total += padded(&out);
    assert!(
        total <= now + 1000,
        "{total} ms padded in {} ms",
        now + 1000
    );
}

/// A stream sending caller audio faster than real time gets MEDIA_AHEAD_MS ahead of the
/// wall clock and no further: the rest is dropped (and counted), not sent to the model.
#[test]
fn caller_audio_faster_than_real_time_is_dropped_past_the_allowance() {
    let mut h = Harness::new(None, true);
    let payload = STANDARD.encode([0x12u8; 160]);
    let send = |h: &mut Harness, ts: u64| -> bool {
        let out = h.feed(Input::Media {
            timestamp_ms: ts,
            payload: payload.clone(),
            bytes: 160,
        });
        let over = out.contains(&Action::Observe(Observation::Protocol("media_over_rate")));
        assert_eq!(realtime_msgs(&out).is_empty(), over);
        !over
    };
    // 20 s of audio at one instant.
    let mut forwarded = (0..1000).filter(|i| send(&mut h, i * 20)).count() as u64;
    assert_eq!(forwarded, MEDIA_AHEAD_MS / 20);
    // Real time passes: a second of audio is accepted again, not more.
    h.at(1000);
    forwarded += (1000..1100).filter(|i| send(&mut h, i * 20)).count() as u64;
    assert_eq!(forwarded, (MEDIA_AHEAD_MS + 1000) / 20);
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
fn a_recorded_call_reports_forwarded_audio_with_its_mark_and_the_clear() {
    let records = |actions: &[Action]| -> Vec<Recorded> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Record(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    };
    // Off: nothing to record, no copies made.
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "resp_1".into(),
    });
    assert!(records(&h.delta("resp_1", "item_1", 800)).is_empty());

    let mut s = settings(None, true);
    s.record = true;
    let mut h = Harness {
        s: CallSession::new(s, SID.into(), 0),
        now: 0,
    };
    h.rt(ServerEvent::ResponseCreated {
        response_id: "resp_1".into(),
    });
    let out = h.delta("resp_1", "item_1", 800);
    let first = mark_names(&out)[0].clone();
    assert_eq!(
        records(&out),
        vec![Recorded::AgentAudio {
            seq: 1,
            audio: vec![0x55; 800],
        }]
    );
    let out = h.delta("resp_1", "item_1", 800);
    let second = mark_names(&out)[0].clone();
    assert_eq!(
        records(&out),
        vec![Recorded::AgentAudio {
            seq: 2,
            audio: vec![0x55; 800],
        }]
    );
    // Its echo reaches the recorder by number; a name that is not ours does not, even
    // with one of our numbers.
    assert_eq!(
        records(&h.at(100).feed(Input::Mark(first.clone()))),
        vec![Recorded::Played { seq: 1 }]
    );
    assert!(records(&h.feed(Input::Mark(first))).is_empty());
    assert!(records(&h.feed(Input::Mark("item_1:200:g0:m2x".into()))).is_empty());
    assert!(records(&h.feed(Input::Mark("item_1:999:g0:m2".into()))).is_empty());
    let out = h.at(300).rt(ServerEvent::SpeechStarted {
        audio_start_ms: 250,
        item_id: "item_u1".into(),
    });
    assert_eq!(records(&out), vec![Recorded::Cleared]);
    // The echo of a mark the clear flushed: nothing played.
    assert!(records(&h.feed(Input::Mark(second))).is_empty());
    // A late delta of the cancelled response never played: not recorded.
    assert!(records(&h.delta("resp_1", "item_1", 800)).is_empty());

    // A done-mark's echo is no chunk's; an agent delta that is not base64 is neither
    // forwarded nor recorded.
    h.rt(ServerEvent::ResponseCreated {
        response_id: "resp_2".into(),
    });
    let out = h.delta("resp_2", "item_2", 160);
    let chunk = mark_names(&out)[0].clone();
    assert_eq!(
        records(&out),
        vec![Recorded::AgentAudio {
            seq: 3,
            audio: vec![0x55; 160],
        }]
    );
    let out = h.rt(ServerEvent::AudioDelta {
        response_id: "resp_2".into(),
        item_id: "item_2".into(),
        content_index: 0,
        delta: "AB==".into(),
    });
    assert_eq!(
        out,
        vec![Action::Observe(Observation::Protocol("openai_bad_audio"))]
    );
    let done = mark_names(&h.rt(ServerEvent::AudioDone {
        response_id: "resp_2".into(),
        item_id: "item_2".into(),
    }))[0]
        .clone();
    assert_eq!(
        records(&h.feed(Input::Mark(chunk))),
        vec![Recorded::Played { seq: 3 }]
    );
    assert!(records(&h.feed(Input::Mark(done))).is_empty());
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
    assert_eq!(ended(&out).map(|s| s.outcome), Some(Outcome::AgentHangup));
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

fn goodbye_requests(actions: &[Action]) -> Vec<Value> {
    realtime_msgs(actions)
        .into_iter()
        .filter(|m| {
            m["type"] == "response.create"
                && m["response"]["instructions"]
                    .as_str()
                    .is_some_and(|i| i.contains("Thanks for calling, goodbye!"))
        })
        .collect()
}

/// Plays one agent response `resp`/`item` fully: created, one delta, done; returns the
/// marks to echo.
fn play(h: &mut Harness, resp: &str, item: &str) -> Vec<String> {
    h.rt(ServerEvent::ResponseCreated {
        response_id: resp.into(),
    });
    let mut marks = mark_names(&h.delta(resp, item, 800));
    marks.extend(mark_names(&h.rt(ServerEvent::AudioDone {
        response_id: resp.into(),
        item_id: item.into(),
    })));
    h.rt(ServerEvent::ResponseDone {
        response_id: resp.into(),
        status: "completed".into(),
        usage: None,
    });
    marks
}

#[test]
fn max_duration_wraps_up_then_says_goodbye_after_the_current_sentence() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::SessionUpdated);
    // 10 s before the 60 s limit: a system note, once
    let out = h.at(50_000).feed(Input::Tick);
    let notes = realtime_msgs(&out);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["item"]["role"], "system");
    assert!(
        notes[0]["item"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("10 seconds")
    );
    assert!(realtime_msgs(&h.at(50_250).feed(Input::Tick)).is_empty());
    // the agent is mid-sentence at the limit: no goodbye yet, no end
    h.at(59_000).rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    let m1 = mark_names(&h.delta("r1", "i1", 800));
    let out = h.at(60_000).feed(Input::Tick);
    assert!(ended(&out).is_none() && goodbye_requests(&out).is_empty());
    let done = mark_names(&h.rt(ServerEvent::AudioDone {
        response_id: "r1".into(),
        item_id: "i1".into(),
    }));
    // the sentence's response ends: the goodbye is asked for
    let out = h.at(60_500).rt(ServerEvent::ResponseDone {
        response_id: "r1".into(),
        status: "completed".into(),
        usage: None,
    });
    assert_eq!(goodbye_requests(&out).len(), 1);
    h.feed(Input::Mark(m1[0].clone()));
    assert!(
        ended(&h.feed(Input::Mark(done[0].clone()))).is_none(),
        "goodbye not yet heard"
    );
    let marks = play(&mut h, "r2", "bye");
    let mut end = None;
    for m in marks {
        end = end.or(ended(&h.feed(Input::Mark(m))).map(|s| s.outcome));
    }
    assert_eq!(end, Some(Outcome::MaxDuration));
}

#[test]
fn max_duration_plus_grace_ends_regardless() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::SessionUpdated);
    h.at(59_000).rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    h.delta("r1", "i1", 800);
    assert!(ended(&h.at(60_000).feed(Input::Tick)).is_none());
    assert!(ended(&h.at(64_750).feed(Input::Tick)).is_none());
    assert_eq!(
        ended(&h.at(65_000).feed(Input::Tick)).map(|s| s.outcome),
        Some(Outcome::MaxDuration)
    );
    assert!(h.s.is_ended());
    assert!(h.feed(Input::Stop).is_empty(), "nothing after the end");
}

#[test]
fn wall_clock_silence_says_goodbye_then_ends() {
    let mut h = Harness::new(None, true);
    h.s.settings.silence_timeout_ms = 5_000;
    h.rt(ServerEvent::SessionUpdated);
    assert!(goodbye_requests(&h.at(4_000).feed(Input::Tick)).is_empty());
    let out = h.at(5_000).feed(Input::Tick);
    assert_eq!(goodbye_requests(&out).len(), 1);
    assert!(ended(&out).is_none());
    let marks = play(&mut h, "r1", "bye");
    let mut end = None;
    for m in marks {
        end = end.or(ended(&h.feed(Input::Mark(m))).map(|s| s.outcome));
    }
    assert_eq!(end, Some(Outcome::SilenceTimeout));
}

#[test]
fn idle_timeouts_reprompt_the_declared_number_of_times_then_goodbye() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::SessionUpdated);
    for n in 0..2 {
        // the server re-prompts by itself: the gateway lets it
        let out = h.rt(ServerEvent::IdleTimeout);
        assert!(realtime_msgs(&out).is_empty(), "re-prompt {n}");
        let marks = play(&mut h, &format!("rp{n}"), &format!("rpi{n}"));
        for m in marks {
            h.feed(Input::Mark(m));
        }
    }
    // the third: the server's re-prompt is cancelled and the goodbye said instead
    h.rt(ServerEvent::IdleTimeout);
    let out = h.rt(ServerEvent::ResponseCreated {
        response_id: "rp3".into(),
    });
    assert_eq!(realtime_msgs(&out)[0]["type"], "response.cancel");
    assert!(
        h.delta("rp3", "x", 160)
            .contains(&Action::Observe(Observation::LateDeltaDropped))
    );
    let out = h.rt(ServerEvent::ResponseDone {
        response_id: "rp3".into(),
        status: "cancelled".into(),
        usage: None,
    });
    assert_eq!(goodbye_requests(&out).len(), 1);
    let marks = play(&mut h, "bye", "byei");
    let mut end = None;
    for m in marks {
        end = end.or(ended(&h.feed(Input::Mark(m))).map(|s| s.outcome));
    }
    assert_eq!(end, Some(Outcome::SilenceTimeout));
}

#[test]
fn speech_resets_the_idle_reprompt_count() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::SessionUpdated);
    h.rt(ServerEvent::IdleTimeout);
    h.rt(ServerEvent::IdleTimeout);
    h.rt(ServerEvent::SpeechStarted {
        audio_start_ms: 0,
        item_id: "u".into(),
    });
    h.rt(ServerEvent::IdleTimeout);
    let out = h.rt(ServerEvent::ResponseCreated {
        response_id: "r".into(),
    });
    assert!(
        realtime_msgs(&out).is_empty(),
        "counted from the last speech"
    );
}

fn connects(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::ConnectRealtime))
        .count()
}

#[test]
fn a_dropped_socket_mid_answer_reconnects_with_history_and_resumes() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::SessionUpdated);
    h.at(1_000).rt(ServerEvent::SpeechStarted {
        audio_start_ms: 900,
        item_id: "u1".into(),
    });
    h.rt(ServerEvent::SpeechStopped {
        audio_end_ms: 1_900,
        item_id: "u1".into(),
    });
    h.rt(ServerEvent::InputTranscript {
        item_id: "u1".into(),
        transcript: "My name is Ana.".into(),
    });
    h.at(2_000).rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    h.rt(ServerEvent::AudioTranscriptDelta {
        item_id: "a1".into(),
        delta: "Nice to meet you, Ana. How".into(),
    });
    let m = mark_names(&h.delta("r1", "a1", 1600));
    // the socket drops mid-answer (no close frame)
    let out = h.at(2_300).feed(Input::RealtimeClosed { code: None });
    assert!(ended(&out).is_none(), "the call goes on");
    assert_eq!(connects(&out), 1);
    assert!(out.contains(&Action::DropRealtime));
    assert!(out.contains(&Action::Observe(Observation::OpenAiLost(cause::DROPPED))));
    // the unfinished item gets a done-mark: it finishes once its audio has played
    let done = mark_names(&out);
    assert_eq!(done.len(), 1);
    // caller audio meanwhile is kept (bounded), not sent anywhere
    let payload = STANDARD.encode([0x11u8; 160]);
    let out = h.at(2_320).feed(Input::Media {
        timestamp_ms: 2_320,
        payload: payload.clone(),
        bytes: 160,
    });
    assert!(realtime_msgs(&out).is_empty());
    // stale events of the old session are ignored
    assert!(h.delta("r1", "a1", 160).is_empty());
    // connected: switch, seed the history, then the kept audio
    let out = h.at(2_500).feed(Input::RealtimeConnected);
    assert_eq!(out[0], Action::SwitchRealtime);
    let rt = realtime_msgs(&out);
    let texts: Vec<String> = rt
        .iter()
        .filter(|m| m["type"] == "conversation.item.create")
        .map(|m| {
            m["item"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(texts[0], "My name is Ana.");
    assert_eq!(rt[0]["item"]["role"], "user");
    assert_eq!(rt[1]["item"]["role"], "assistant");
    assert_eq!(texts[1], "Nice to meet you, Ana. How—");
    assert_eq!(texts[2], RESUME_NOTE);
    assert_eq!(rt.last().unwrap()["audio"], payload);
    assert!(out.contains(&Action::Observe(Observation::Reconnected {
        cause: cause::DROPPED,
        gap_ms: 200
    })));
    // the new session is ready: the agent continues its answer
    let out = h.rt(ServerEvent::SessionUpdated);
    assert_eq!(realtime_msgs(&out)[0]["type"], "response.create");
    // old marks still echo in order and finish the old item
    h.feed(Input::Mark(m[0].clone()));
    assert!(matches!(h.s.playback.on_mark("nothing"), MarkEcho::Unknown));
    let out = h.feed(Input::Mark(done[0].clone()));
    assert!(ended(&out).is_none());
    assert!(!h.s.playback.is_playing());
    let s = ended(&h.feed(Input::Stop)).unwrap().clone();
    assert_eq!(s.reconnects, vec!["dropped".to_string()]);
}

#[test]
fn reconnect_attempts_back_off_and_end_with_model_unavailable() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::SessionUpdated);
    assert_eq!(
        connects(&h.at(1_000).feed(Input::RealtimeClosed { code: Some(1011) })),
        1
    );
    let mut now = 1_000;
    for (attempt, wait) in [(1u32, 250u64), (2, 750), (3, 2_000)] {
        let out = h
            .at(now + 10)
            .feed(Input::RealtimeConnectFailed("refused".into()));
        assert!(ended(&out).is_none(), "attempt {attempt}");
        assert_eq!(connects(&h.at(now + 10 + wait - 1).feed(Input::Tick)), 0);
        assert_eq!(connects(&h.at(now + 10 + wait).feed(Input::Tick)), 1);
        now += 10 + wait;
    }
    let out = h
        .at(now + 10)
        .feed(Input::RealtimeConnectFailed("refused".into()));
    let s = ended(&out).unwrap();
    assert_eq!(s.outcome, Outcome::ModelUnavailable);
    assert_eq!(s.detail.as_deref(), Some("refused"));
}

#[test]
fn close_causes_are_told_apart() {
    for (code, error, want) in [
        (Some(1001), None, cause::SESSION_LIMIT),
        (None, Some("session_expired"), cause::SESSION_LIMIT),
        (Some(1011), Some("server_error"), cause::ERROR),
        (Some(1000), None, cause::CLOSED),
        (None, None, cause::DROPPED),
    ] {
        let mut h = Harness::new(None, true);
        let mut out = Vec::new();
        if let Some(e) = error {
            out = h.rt(ServerEvent::Error(crate::realtime::wire::ErrorBody {
                code: Some(e.into()),
                ..Default::default()
            }));
        }
        out.extend(h.feed(Input::RealtimeClosed { code }));
        assert!(ended(&out).is_none());
        assert!(
            out.contains(&Action::Observe(Observation::OpenAiLost(want))),
            "{code:?} {error:?}: {out:?}"
        );
        assert_eq!(connects(&out), 1, "one attempt, not one per signal");
    }
}

#[test]
fn the_session_is_rotated_at_a_quiet_moment_before_it_expires() {
    let mut h = Harness::new(None, true);
    h.s.set_unix_origin(1_000_000_000_000);
    // expires 60 s after now=0: rotation from 40 s on (the last third)
    h.rt(ServerEvent::SessionCreated {
        expires_at: Some(1_000_000_060),
    });
    h.rt(ServerEvent::SessionUpdated);
    assert_eq!(connects(&h.at(39_750).feed(Input::Tick)), 0);
    // the agent is speaking at 40 s: wait
    h.at(39_900).rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    assert_eq!(connects(&h.at(40_000).feed(Input::Tick)), 0);
    h.rt(ServerEvent::ResponseDone {
        response_id: "r1".into(),
        status: "completed".into(),
        usage: None,
    });
    let out = h.at(40_250).feed(Input::Tick);
    assert_eq!(connects(&out), 1);
    assert!(
        !out.contains(&Action::DropRealtime),
        "the old session serves meanwhile"
    );
    // the caller starts speaking before the new session is ready: it waits
    h.rt(ServerEvent::SpeechStarted {
        audio_start_ms: 0,
        item_id: "u".into(),
    });
    let out = h.at(40_400).feed(Input::RealtimeConnected);
    assert!(!out.contains(&Action::SwitchRealtime));
    h.rt(ServerEvent::SpeechStopped {
        audio_end_ms: 500,
        item_id: "u".into(),
    });
    h.rt(ServerEvent::InputTranscript {
        item_id: "u".into(),
        transcript: "hello".into(),
    });
    let marks = play(&mut h, "r2", "i2");
    for m in marks {
        h.feed(Input::Mark(m));
    }
    let out = h.at(41_000).feed(Input::Tick);
    assert_eq!(out[0], Action::DropRealtime);
    assert_eq!(out[1], Action::SwitchRealtime);
    let rt = realtime_msgs(&out);
    assert_eq!(rt[0]["item"]["content"][0]["text"], "hello");
    assert!(
        rt.iter().all(|m| m["item"]["role"] != "system"),
        "no note for a rotation"
    );
    assert!(out.contains(&Action::Observe(Observation::Reconnected {
        cause: cause::ROTATION,
        gap_ms: 0
    })));
    // no response is asked of the new session: nobody was waiting for one
    assert!(realtime_msgs(&h.rt(ServerEvent::SessionUpdated)).is_empty());
}

#[test]
fn a_tool_result_during_a_reconnect_reaches_the_new_session_as_history() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::SessionUpdated);
    h.rt(ServerEvent::FunctionCall {
        response_id: "r".into(),
        call_id: "c1".into(),
        name: "lookup".into(),
        arguments: "{}".into(),
    });
    h.feed(Input::RealtimeClosed { code: None });
    let out = h.feed(Input::ToolResult {
        call_id: "c1".into(),
        output: "{\"hours\":\"9-5\"}".into(),
    });
    assert!(realtime_msgs(&out).is_empty(), "no session to send it to");
    let out = h.feed(Input::RealtimeConnected);
    let rt = realtime_msgs(&out);
    assert_eq!(rt[0]["item"]["type"], "function_call");
    assert_eq!(rt[1]["item"]["type"], "function_call_output");
    assert_eq!(rt[1]["item"]["output"], "{\"hours\":\"9-5\"}");
    assert_eq!(
        realtime_msgs(&h.rt(ServerEvent::SessionUpdated))[0]["type"],
        "response.create",
        "the new session answers the output"
    );
}

#[test]
fn a_barge_in_on_old_audio_after_a_switch_truncates_nothing() {
    let mut h = Harness::new(None, true);
    h.rt(ServerEvent::SessionUpdated);
    h.rt(ServerEvent::ResponseCreated {
        response_id: "r1".into(),
    });
    h.delta("r1", "a_old", 1600);
    h.feed(Input::RealtimeClosed { code: None });
    h.feed(Input::RealtimeConnected);
    h.rt(ServerEvent::SessionUpdated);
    let out = h.rt(ServerEvent::SpeechStarted {
        audio_start_ms: 0,
        item_id: "u".into(),
    });
    assert_eq!(twilio_msgs(&out)[0]["event"], "clear");
    assert!(
        realtime_msgs(&out)
            .iter()
            .all(|m| m["type"] != "conversation.item.truncate"),
        "{out:?}"
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
fn play_heard(h: &mut Harness, resp: &str, item: &str, bytes: usize) -> Vec<Action> {
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
    // The leg's record comes first: the task parks it for the return leg before it
    // moves the call (a transfer nobody answers can bring the caller back on a new
    // stream as soon as the call has moved, before this task has finished).
    assert!(
        end_at < transfer_at,
        "the record to park comes before the move: {out:?}"
    );
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
    play_heard(&mut h, "r2", "sorry", 160);
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
        earlier: vec![history::Turn::Caller {
            text: "My name is Ada.".into(),
        }],
        note: "[The transfer failed.]".into(),
        transcript: vec![earlier.clone()],
        tool_calls: Vec::new(),
        usage: Usage {
            responses: 2,
            ..Usage::default()
        },
        barge_ins: 1,
        reconnects: vec!["dropped".into()],
        offset_ms: 30_000,
    };
    let mut s = CallSession::resume(settings(Some("Hello!"), true), SID.into(), 0, resume);
    let mut out = Vec::new();
    s.handle(0, Input::Realtime(ServerEvent::SessionUpdated), &mut out);
    let rt = realtime_msgs(&out);
    assert_eq!(rt[0]["type"], "conversation.item.create", "history first");
    assert_eq!(rt[0]["item"]["content"][0]["text"], "My name is Ada.");
    assert_eq!(rt[1]["item"]["role"], "system", "then the note");
    assert_eq!(rt[2]["type"], "response.create");
    assert!(
        rt[2].get("response").is_none(),
        "no greeting on a return leg: {}",
        rt[2]
    );
    assert_eq!(rt.len(), 3);
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
    assert_eq!(s.reconnects, vec!["dropped".to_string()]);
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
    assert_eq!(ended(&out).map(|s| s.outcome), Some(Outcome::AgentHangup));
}
