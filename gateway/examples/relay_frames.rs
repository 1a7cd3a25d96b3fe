//! Micro-benchmark of the gateway's per-frame work, without sockets: the functions the
//! call task runs for every message of a call in steady state (docs/performance.md,
//! "Relay per-frame CPU").
//!
//! One round is what a call does every 20 ms: a Twilio `media` frame in (parsed, handed
//! to the session, `input_audio_buffer.append` out), a `response.output_audio.delta` in
//! (parsed, handed to the session, a Twilio `media` and a `mark` out) and the echo of
//! the previous round's mark (parsed, handed to the session). Messages are the load
//! generator's shapes (`sim load`). Prints ns per round, median of `--runs` runs.
//!
//! ```text
//! cargo run --release -p switchboard-gateway --example relay_frames -- [ROUNDS] [RUNS]
//! ```

use std::hint::black_box;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use switchboard_gateway::call::session::{Action, CallSession, Input};
use switchboard_gateway::realtime::wire::{self, ServerEvent};
use switchboard_gateway::tenants::SessionSettings;
use switchboard_gateway::twilio::media::{self, Inbound};

const SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

fn settings() -> SessionSettings {
    SessionSettings {
        greeting: None,
        greeting_interruptible: true,
        interruptible_update: r#"{"type":"session.update","session":{"type":"realtime"}}"#.into(),
        max_call_ms: u64::MAX / 4,
        silence_timeout_ms: 0,
        idle_reprompts: 2,
        wrap_up_ms: 0,
        end_grace_ms: 5_000,
        goodbye: "Goodbye!".into(),
        external_tools: Vec::new(),
        record: false,
        transfer_targets: Vec::new(),
        handoff_timeout_ms: 15_000,
    }
}

/// The session input of one Twilio text frame, as the call task makes it.
fn twilio_input(text: &str) -> Option<Input> {
    match media::parse(text) {
        Ok(Inbound::Media {
            timestamp_ms,
            payload,
            bytes,
        }) => Some(Input::Media {
            timestamp_ms,
            payload,
            bytes,
        }),
        Ok(Inbound::Mark { name }) => Some(Input::Mark(name)),
        _ => None,
    }
}

/// The session input of one Realtime text frame, as the call task makes it.
fn realtime_input(text: &str) -> Option<Input> {
    wire::parse_server_event(text).ok().map(Input::Realtime)
}

/// What the call task does with the actions: each text becomes a WebSocket message.
fn send(actions: &mut Vec<Action>, last_mark: &mut String) -> usize {
    let mut n = 0;
    for a in actions.drain(..) {
        match a {
            Action::Twilio(t) => {
                // The harness needs the mark's name to echo it: a plain search (mark names
                // are JSON-safe), so it adds next to nothing to the timed work.
                if let Some(rest) = t.strip_prefix(r#"{"event":"mark""#)
                    && let Some(at) = rest.find(r#""name":""#)
                {
                    let name = &rest[at + 8..];
                    last_mark.clear();
                    last_mark.push_str(&name[..name.find('"').unwrap_or(name.len())]);
                }
                let m = axum::extract::ws::Message::Text(t.into());
                n += black_box(m).into_data().len();
            }
            Action::Realtime(t) => {
                let m = tokio_tungstenite::tungstenite::Message::text(t);
                n += black_box(m).len();
            }
            _ => {}
        }
    }
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);

    let audio = STANDARD.encode([0x7fu8; 160]);
    let delta_prefix = concat!(
        r#"{"type":"response.output_audio.delta","response_id":"resp_000000000000000000001","#,
        r#""item_id":"item_000000000000000000001","output_index":0,"content_index":0,"#,
        r#""event_id":"event_000000000001_"#
    );
    let mut per_round = Vec::with_capacity(runs);
    for _ in 0..runs {
        // Messages are built before timing (the load generator's cost, not the gateway's).
        let medias: Vec<String> = (0..rounds)
            .map(|i| {
                format!(
                    r#"{{"event":"media","sequenceNumber":"{}","streamSid":"{SID}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{audio}"}}}}"#,
                    i + 3,
                    i + 1,
                    i * 20
                )
            })
            .collect();
        let deltas: Vec<String> = (0..rounds)
            .map(|i| format!(r#"{delta_prefix}{i}","delta":"{audio}"}}"#))
            .collect();
        let mut s = CallSession::new(settings(), SID.into(), 0);
        let mut out = Vec::with_capacity(8);
        for ev in [
            ServerEvent::SessionCreated { expires_at: None },
            ServerEvent::SessionUpdated,
            ServerEvent::ResponseCreated {
                response_id: "resp_000000000000000000001".into(),
            },
        ] {
            s.handle(0, Input::Realtime(ev), &mut out);
        }
        out.clear();
        let mut last_mark = String::new();
        let mut echo = String::new();
        let mut bytes = 0usize;
        let t0 = Instant::now();
        for i in 0..rounds {
            let now = i * 20;
            if let Some(input) = twilio_input(&medias[i as usize]) {
                s.handle(now, input, &mut out);
            }
            bytes += send(&mut out, &mut last_mark);
            if let Some(input) = realtime_input(&deltas[i as usize]) {
                s.handle(now, input, &mut out);
            }
            bytes += send(&mut out, &mut last_mark);
            // The echo as Twilio sends it (built here: it depends on the mark just sent).
            echo.clear();
            echo.push_str(r#"{"event":"mark","sequenceNumber":"9","streamSid":""#);
            echo.push_str(SID);
            echo.push_str(r#"","mark":{"name":""#);
            echo.push_str(&last_mark);
            echo.push_str(r#""}}"#);
            if let Some(input) = twilio_input(&echo) {
                s.handle(now, input, &mut out);
            }
            bytes += send(&mut out, &mut last_mark);
        }
        let el = t0.elapsed();
        black_box(bytes);
        assert!(!s.is_ended(), "the session ended during the benchmark");
        per_round.push(el.as_nanos() as f64 / rounds as f64);
    }
    per_round.sort_by(f64::total_cmp);
    println!(
        "relay_frames: {rounds} rounds x {runs} runs; ns per round (media in + delta in + mark echo): median {:.0}, min {:.0}, max {:.0}",
        per_round[per_round.len() / 2],
        per_round[0],
        per_round[per_round.len() - 1]
    );
}
