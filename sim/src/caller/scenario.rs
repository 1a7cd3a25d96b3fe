//! Named call-control scenarios (issue 13 §7): what the caller does, what the Realtime
//! simulator's model says (its script and faults: a socket dropped mid-answer, a short
//! session lifetime, refused reconnects), the tenant settings a scenario needs
//! ([`Scenario::agent_yaml`]), and what must have happened for the call to count as
//! passed.
//!
//! `sim call --scenario NAME` places the call against a running gateway and exits
//! non-zero when a check fails; `sim realtime --scenario NAME` serves the model side of
//! the same scenario. The checks read the caller's own report (what it heard, which
//! TwiML Twilio would have run) and, when the admin API key is given, the gateway's
//! record of the call (`outcome`, `transfers`, `reconnects`, the transcript).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::call::APPLICATION_ERROR;
use super::{CallConfig, CallError, CallReport, Person, Step, http_client, place_call};
use crate::realtime::{RealtimeConfig, Turn};

/// The transfer target the scenarios' tenant declares (`spec.agent.transfer[].name`).
pub const TARGET: &str = "sales";
/// The agent's hand-off sentence in the transfer scenarios.
pub const HANDOFF: &str = "Connecting you to our sales team now, one moment please.";
/// The agent's goodbye in `end-call`.
pub const GOODBYE: &str = "Thanks for calling, goodbye!";
/// What the caller says to be transferred.
pub const ASK_FOR_SALES: &str = "Can I talk to someone in sales?";
/// What the caller says to end the call.
pub const SAY_BYE: &str = "That's all, thank you, bye.";
/// What the caller says first in `openai-drop`: the name the agent must still know after
/// the drop.
pub const SAY_NAME: &str = "Hi, my name is Ana.";
/// The answer cut by the dropped socket in `openai-drop`: long enough that the drop
/// (halfway through its audio) comes mid-sentence.
pub const LONG_ANSWER: &str = "Nice to meet you, Ana. We are open from nine in the morning to five in the afternoon on weekdays, and on Saturdays from ten until two.";
/// What the caller asks after the drop in `openai-drop`.
pub const ASK_NAME: &str = "What is my name?";
/// The agent's answer when it still knows the name.
pub const KNOWS_NAME: &str = "Your name is Ana.";
/// A Realtime session's lifetime in `session-limit` (the real API's is 60 minutes).
pub const SESSION_LIMIT_MS: u64 = 20_000;
/// Violations a stream cut by a killed gateway shows (the socket is reset, no close
/// frame): expected in `gateway-killed`.
const BROKEN_STREAM: &str = "stream broken without a close handshake";

/// How `gateway-killed` kills the gateway once the call is under way (e.g. SIGKILL to its
/// process); an error says why it could not.
pub type Kill = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// A scenario by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The caller asks for sales; the agent says the hand-off, the call moves to
    /// `<Dial>` after it was heard to the end, and the person answers.
    TransferAnswered,
    /// As above, but nobody answers: the caller is back with the agent on a second
    /// stream, whose model knows the conversation and the failed transfer.
    TransferUnanswered,
    /// The caller says goodbye; the agent's goodbye is heard to the end, then the call
    /// ends (`agent_hangup`) without the fallback.
    EndCall,
    /// The caller says nothing; the agent re-prompts, then says goodbye and ends the call
    /// (`silence_timeout`). The tenant needs a short `silenceTimeoutSeconds`.
    Silence,
    /// The OpenAI socket drops without a close frame halfway through the agent's answer:
    /// the call goes on on a new session, which knows the caller's name.
    OpenAiDrop,
    /// Every Realtime session ends after [`SESSION_LIMIT_MS`] (close 1001, as the real
    /// 60 minutes): the gateway rotates the session at a quiet moment before the limit,
    /// make-before-break, so the caller never waits on a reconnect.
    SessionLimit,
    /// The OpenAI socket drops and every reconnect is refused (HTTP 503): after its
    /// bounded attempts the gateway ends the stream and the caller hears the fallback.
    ReconnectsExhausted,
    /// The call reaches `maxCallDurationSeconds`: a wrap-up note before it, then the
    /// goodbye, heard to its end, and the hang-up (`max_duration`). The tenant needs
    /// [`Scenario::agent_yaml`]'s limits.
    MaxDuration,
    /// The gateway process is killed (SIGKILL) mid-call: the stream breaks and Twilio
    /// plays the fallback that followed `</Connect>` in the call's TwiML, fetching
    /// nothing from a gateway. `sim call` needs `--kill-pid`.
    GatewayKilled,
}

impl Scenario {
    /// Every scenario, in the order `--help` lists them.
    pub const ALL: &'static [Scenario] = &[
        Scenario::TransferAnswered,
        Scenario::TransferUnanswered,
        Scenario::EndCall,
        Scenario::Silence,
        Scenario::OpenAiDrop,
        Scenario::SessionLimit,
        Scenario::ReconnectsExhausted,
        Scenario::MaxDuration,
        Scenario::GatewayKilled,
    ];

    /// The scenario's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::TransferAnswered => "transfer-answered",
            Scenario::TransferUnanswered => "transfer-unanswered",
            Scenario::EndCall => "end-call",
            Scenario::Silence => "silence",
            Scenario::OpenAiDrop => "openai-drop",
            Scenario::SessionLimit => "session-limit",
            Scenario::ReconnectsExhausted => "reconnects-exhausted",
            Scenario::MaxDuration => "max-duration",
            Scenario::GatewayKilled => "gateway-killed",
        }
    }

    /// The lines under the tenant's `spec.agent` (indented by 4 spaces) the scenario
    /// needs: the `sales` transfer target, the silence or length limits.
    pub fn agent_yaml(self) -> &'static str {
        match self {
            Scenario::TransferAnswered | Scenario::TransferUnanswered => {
                "    transfer:\n      - name: sales\n        number: \"+15551230001\"\n        description: pricing and new orders\n        ringTimeoutSeconds: 10\n"
            }
            Scenario::Silence => "    silenceTimeoutSeconds: 3\n",
            Scenario::MaxDuration => {
                "    maxCallDurationSeconds: 10\n    silenceTimeoutSeconds: 0\n    callEnding:\n      wrapUpSeconds: 5\n"
            }
            Scenario::EndCall
            | Scenario::OpenAiDrop
            | Scenario::SessionLimit
            | Scenario::ReconnectsExhausted
            | Scenario::GatewayKilled => "",
        }
    }

    /// The scenario called `name`.
    pub fn parse(name: &str) -> Option<Scenario> {
        Self::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// The Realtime simulator's configuration for this scenario (its model's script).
    pub fn realtime(self) -> RealtimeConfig {
        let script = match self {
            Scenario::TransferAnswered | Scenario::TransferUnanswered => vec![Turn::call(
                ASK_FOR_SALES,
                "transfer_call",
                serde_json::json!({"target": TARGET, "reason": "pricing"}),
                HANDOFF,
            )],
            Scenario::EndCall => {
                let mut t = Turn::call(SAY_BYE, "end_call", serde_json::json!({}), "");
                t.agent = Some(GOODBYE.to_owned());
                t.agent_template = None;
                vec![t]
            }
            Scenario::Silence => Vec::new(),
            Scenario::OpenAiDrop => vec![
                Turn::say(SAY_NAME, LONG_ANSWER),
                Turn::say(ASK_NAME, "Your name is {name}."),
            ],
            Scenario::SessionLimit
            | Scenario::ReconnectsExhausted
            | Scenario::MaxDuration
            | Scenario::GatewayKilled => RealtimeConfig::default().script,
        };
        let base = RealtimeConfig {
            script,
            ..RealtimeConfig::default()
        };
        match self {
            // Response 1 is the greeting, 2 the long answer; only the first session.
            Scenario::OpenAiDrop => RealtimeConfig {
                drop_mid_response: Some(2),
                fault_sessions: Some(1),
                ..base
            },
            Scenario::SessionLimit => RealtimeConfig {
                session_max_ms: Some(SESSION_LIMIT_MS),
                ..base
            },
            Scenario::ReconnectsExhausted => RealtimeConfig {
                drop_mid_response: Some(1),
                refuse_after_sessions: Some(1),
                ..base
            },
            _ => base,
        }
    }

    /// `base` (gateway, number, credentials, REST simulator) with this scenario's caller.
    pub fn call(self, base: CallConfig) -> CallConfig {
        let greeting = Step::WaitAgentDone {
            quiet_ms: 300,
            timeout_ms: 10_000,
        };
        match self {
            Scenario::TransferAnswered | Scenario::TransferUnanswered => CallConfig {
                script: vec![
                    greeting,
                    Step::Say { ms: 1200 },
                    // The REST update ends the stream long before this runs out.
                    Step::Silence { ms: 20_000 },
                    Step::Hangup,
                ],
                person: if self == Scenario::TransferAnswered {
                    Person::Answers(3)
                } else {
                    Person::NoAnswer
                },
                ring_ms: 300,
                return_script: vec![
                    Step::WaitAgentDone {
                        quiet_ms: 300,
                        timeout_ms: 15_000,
                    },
                    Step::Hangup,
                ],
                ..base
            },
            Scenario::EndCall => CallConfig {
                script: vec![
                    greeting,
                    Step::Say { ms: 1200 },
                    // The gateway ends the call after the goodbye.
                    Step::Silence { ms: 20_000 },
                    Step::Hangup,
                ],
                ..base
            },
            Scenario::Silence => CallConfig {
                script: vec![Step::Silence { ms: 60_000 }, Step::Hangup],
                ..base
            },
            Scenario::OpenAiDrop => CallConfig {
                script: vec![
                    greeting,
                    Step::Say { ms: 1200 },
                    // Long enough to span the reconnect: the rest of the answer follows.
                    wait_done(1500),
                    Step::Say { ms: 1200 },
                    wait_done(500),
                    Step::Hangup,
                ],
                ..base
            },
            // A question and its answer, then silence across the rotation window (it
            // opens a third of the lifetime before the limit): a quiet moment comes
            // before the limit whether the answer ends before the window or inside it.
            Scenario::SessionLimit => CallConfig {
                script: ask_then_silence(greeting, 8_000),
                ..base
            },
            Scenario::ReconnectsExhausted => CallConfig {
                script: vec![Step::Silence { ms: 15_000 }, Step::Hangup],
                ..base
            },
            // The gateway ends the call at the limit, during the silence.
            Scenario::MaxDuration => CallConfig {
                script: ask_then_silence(greeting, 20_000),
                ..base
            },
            // Killed once the caller has heard the greeting and begun to speak
            // ([`KILL_AT_STEP`]).
            Scenario::GatewayKilled => CallConfig {
                script: vec![
                    greeting,
                    Step::Say { ms: 1200 },
                    Step::Silence { ms: 20_000 },
                    Step::Hangup,
                ],
                ..base
            },
        }
    }

    /// What did not go as the scenario says (empty: passed). `record` is the gateway's
    /// record (`GET /api/v1/calls/{sid}`), when it was fetched.
    pub fn check(self, report: &CallReport, record: Option<&Value>) -> Vec<String> {
        let mut failed = Vec::new();
        let mut expect = |ok: bool, what: String| {
            if !ok {
                failed.push(what);
            }
        };
        // A killed gateway resets the stream: that one is the scenario, not a fault.
        let violations: Vec<&String> = report
            .violations
            .iter()
            .filter(|v| !(self == Scenario::GatewayKilled && v.starts_with(BROKEN_STREAM)))
            .collect();
        expect(
            violations.is_empty(),
            format!("protocol violations: {violations:?}"),
        );
        let outcome = record.and_then(|r| r["outcome"].as_str());
        match self {
            Scenario::TransferAnswered => {
                expect(
                    report.dials.len() == 1,
                    format!("one <Dial>, got {:?}", report.dials),
                );
                expect(
                    report.dials.first().map(|d| d.status.as_str()) == Some("completed"),
                    format!("the person answered: {:?}", report.dials),
                );
                expect(
                    report.redirects == 1,
                    format!("one REST update moved the call, got {}", report.redirects),
                );
                expect(
                    report.turns.last().is_some_and(|t| !t.cut_by_clear),
                    "the hand-off sentence was heard to its end (not cleared)".into(),
                );
                expect(
                    report.streams == 1,
                    format!("no return stream, got {}", report.streams),
                );
                if record.is_some() {
                    expect(
                        outcome == Some("transferred"),
                        format!("outcome transferred, got {outcome:?}"),
                    );
                }
            }
            Scenario::TransferUnanswered => {
                expect(
                    report.dials.first().map(|d| d.status.as_str()) == Some("no-answer"),
                    format!("nobody answered: {:?}", report.dials),
                );
                expect(
                    report.streams == 2,
                    format!(
                        "back with the agent on a second stream, got {}",
                        report.streams
                    ),
                );
                expect(
                    report.script_timeouts.is_empty(),
                    format!("the agent spoke again: {:?}", report.script_timeouts),
                );
                if let Some(r) = record {
                    expect(
                        outcome == Some("caller_hangup"),
                        format!("outcome caller_hangup, got {outcome:?}"),
                    );
                    let status = r["transfers"][0]["dial_status"].as_str();
                    expect(
                        status == Some("no-answer"),
                        format!("the record keeps the failed transfer, got {status:?}"),
                    );
                }
            }
            Scenario::OpenAiDrop => {
                expect(
                    !report.ended_by_gateway && !report.rest_hangup,
                    "the call went on after the drop (the caller hung up)".into(),
                );
                expect(
                    report.script_timeouts.is_empty(),
                    format!("the agent answered each turn: {:?}", report.script_timeouts),
                );
                expect(
                    report.turns.len() >= 3,
                    format!(
                        "greeting, answer and the name heard, got {} turns",
                        report.turns.len()
                    ),
                );
                if let Some(r) = record {
                    expect(
                        outcome == Some("caller_hangup"),
                        format!("outcome caller_hangup, got {outcome:?}"),
                    );
                    let causes = reconnects(r);
                    expect(
                        causes == ["dropped"],
                        format!("one reconnect for the drop, got {causes:?}"),
                    );
                    expect(
                        said(r).contains(&KNOWS_NAME),
                        format!("the agent still knew the name: {:?}", said(r)),
                    );
                }
            }
            Scenario::SessionLimit => {
                expect(
                    !report.ended_by_gateway && !report.rest_hangup,
                    "the call went on past the session limit".into(),
                );
                expect(
                    report.script_timeouts.is_empty() && report.turns.len() >= 2,
                    format!(
                        "the caller was answered: {} turns, {:?}",
                        report.turns.len(),
                        report.script_timeouts
                    ),
                );
                if let Some(r) = record {
                    expect(
                        outcome == Some("caller_hangup"),
                        format!("outcome caller_hangup, got {outcome:?}"),
                    );
                    // A rotation connects the new session while the old one serves: no
                    // gap at all. A `session_limit` cause would be a session cut by the
                    // server, with the caller waiting on the reconnect.
                    let causes = reconnects(r);
                    expect(
                        !causes.is_empty() && causes.iter().all(|c| c == "rotation"),
                        format!("rotated before the limit, never cut by it: {causes:?}"),
                    );
                }
            }
            Scenario::ReconnectsExhausted => {
                expect(
                    report.ended_by_gateway,
                    "the gateway ended the stream".into(),
                );
                // 4 attempts with waits of 0, 250, 750 ms and 2 s, each refused at once.
                expect(
                    report.stream_ms < 12_000,
                    format!(
                        "bounded attempts, the stream lasted {} ms",
                        report.stream_ms
                    ),
                );
                expect(
                    report
                        .heard_after_stream
                        .first()
                        .is_some_and(|t| t != APPLICATION_ERROR),
                    format!("the fallback was heard: {:?}", report.heard_after_stream),
                );
                if record.is_some() {
                    expect(
                        outcome == Some("model_unavailable"),
                        format!("outcome model_unavailable, got {outcome:?}"),
                    );
                }
            }
            Scenario::GatewayKilled => {
                expect(
                    report.stream_sid.is_some() && report.ended_by_gateway,
                    "the stream broke mid-call".into(),
                );
                expect(
                    report
                        .heard_after_stream
                        .first()
                        .is_some_and(|t| t != APPLICATION_ERROR),
                    format!(
                        "the fallback after </Connect> was heard, not Twilio's application error: {:?}",
                        report.heard_after_stream
                    ),
                );
            }
            Scenario::EndCall | Scenario::Silence | Scenario::MaxDuration => {
                // Closing the stream or hanging up through the REST API: the gateway does
                // both, and which reaches the caller first is a race.
                expect(
                    report.ended_by_gateway || report.rest_hangup,
                    "the gateway ended the call".into(),
                );
                expect(
                    report.hangup_after_stream || report.rest_hangup,
                    "hung up without the fallback".into(),
                );
                expect(
                    report.heard_after_stream.is_empty(),
                    format!(
                        "no apology after the stream: {:?}",
                        report.heard_after_stream
                    ),
                );
                expect(
                    report.turns.last().is_some_and(|t| !t.cut_by_clear),
                    "the goodbye was heard to its end".into(),
                );
                let want = match self {
                    Scenario::EndCall => "agent_hangup",
                    Scenario::MaxDuration => "max_duration",
                    _ => "silence_timeout",
                };
                if record.is_some() {
                    expect(
                        outcome == Some(want),
                        format!("outcome {want}, got {outcome:?}"),
                    );
                }
            }
        }
        failed
    }
}

/// One scenario's run: what the caller saw, the gateway's record, what failed.
#[derive(Debug)]
pub struct ScenarioRun {
    /// The caller's report.
    pub report: CallReport,
    /// The gateway's record, when an API key was given and it was found.
    pub record: Option<Value>,
    /// The checks that failed (empty: the call went as the scenario says).
    pub failed: Vec<String>,
}

impl ScenarioRun {
    /// The call went as the scenario says.
    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }
}

impl Scenario {
    /// Places the scenario's call (`base` with [`Scenario::call`]) and checks it; with
    /// `api_key`, the gateway's record is read back (retried while it has no outcome
    /// yet, or, for an unanswered transfer, no transfer yet) and checked too.
    pub async fn run(
        self,
        base: CallConfig,
        api_key: Option<&str>,
    ) -> Result<ScenarioRun, CallError> {
        self.run_killing(base, api_key, None).await
    }

    /// [`Scenario::run`]; `gateway-killed` calls `kill` once the caller has heard the
    /// greeting and begun to speak (and fails without one). The record of a killed
    /// gateway's call is not read (nothing answers the API).
    pub async fn run_killing(
        self,
        base: CallConfig,
        api_key: Option<&str>,
        kill: Option<Kill>,
    ) -> Result<ScenarioRun, CallError> {
        let mut cfg = self.call(base);
        let mut failed = Vec::new();
        let report = if self == Scenario::GatewayKilled {
            let progress = Arc::new(AtomicUsize::new(0));
            cfg.progress = Some(progress.clone());
            let call_cfg = cfg.clone();
            let mut call = tokio::spawn(async move { place_call(&call_cfg).await });
            // Mid-call: the greeting heard, the caller speaking (or the call over).
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let done = loop {
                tokio::select! {
                    r = &mut call => break Some(r),
                    _ = tick.tick() => {
                        if progress.load(Ordering::Relaxed) >= KILL_AT_STEP {
                            break None;
                        }
                    }
                }
            };
            let joined = match (done, kill) {
                (Some(r), _) => {
                    failed.push("the call ended before the gateway was killed".into());
                    r
                }
                (None, kill) => {
                    match kill.map(|k| k()) {
                        None => {
                            failed.push("no way to kill the gateway (sim call --kill-pid)".into())
                        }
                        Some(Err(e)) => failed.push(format!("could not kill the gateway: {e}")),
                        Some(Ok(())) => {}
                    }
                    call.await
                }
            };
            joined.map_err(|e| CallError::Task(e.to_string()))??
        } else {
            place_call(&cfg).await?
        };
        let record = match api_key {
            Some(_) if self == Scenario::GatewayKilled => None,
            Some(key) if report.stream_sid.is_some() => {
                fetch_record(&cfg.gateway, key, &report.call_sid, |r| {
                    // An unanswered transfer's record is complete once the return
                    // leg has ended (its outcome replaces `transferred`).
                    r["outcome"].is_string()
                        && (self != Scenario::TransferUnanswered
                            || (r["outcome"] != "transferred"
                                && r["transfers"].as_array().is_some_and(|t| !t.is_empty())))
                })
                .await
            }
            _ => None,
        };
        failed.extend(self.check(&report, record.as_ref()));
        Ok(ScenarioRun {
            report,
            record,
            failed,
        })
    }
}

/// `gateway-killed` kills the gateway once the caller has begun this many steps (the
/// greeting heard, speaking).
const KILL_AT_STEP: usize = 2;

/// Hear `greeting` out, ask a question, hear the answer out, then stay silent for
/// `silence_ms` and hang up.
fn ask_then_silence(greeting: Step, silence_ms: u64) -> Vec<Step> {
    vec![
        greeting,
        Step::Say { ms: 1200 },
        wait_done(500),
        Step::Silence { ms: silence_ms },
        Step::Hangup,
    ]
}

fn wait_done(quiet_ms: u64) -> Step {
    Step::WaitAgentDone {
        quiet_ms,
        timeout_ms: 20_000,
    }
}

/// The record's reconnect causes.
fn reconnects(record: &Value) -> Vec<String> {
    record["reconnects"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// What the agent said, by the record's transcript.
fn said(record: &Value) -> Vec<&str> {
    record["transcript"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["role"] == "agent")
                .filter_map(|e| e["text"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// `GET {gateway}/api/v1/calls/{call_sid}` until `complete` holds (the record is written
/// behind the call), for up to 10 s; the last record read, if any.
async fn fetch_record(
    gateway: &str,
    api_key: &str,
    call_sid: &str,
    complete: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let client = http_client().ok()?;
    let url = format!("{gateway}/api/v1/calls/{call_sid}");
    let mut last = None;
    for _ in 0..40 {
        let got = client
            .get(&url)
            .bearer_auth(api_key)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(r) = got
            && r.status().is_success()
            && let Ok(body) = r.text().await
            && let Ok(v) = serde_json::from_str::<Value>(&body)
        {
            if complete(&v) {
                return Some(v);
            }
            last = Some(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()), Some(*s));
        }
        assert_eq!(Scenario::parse("nope"), None);
    }

    #[test]
    fn a_clean_report_without_the_transfer_fails_the_transfer_scenario() {
        let report = CallReport::default();
        assert!(!Scenario::TransferAnswered.check(&report, None).is_empty());
        let record = serde_json::json!({"outcome": "caller_hangup"});
        assert!(
            !Scenario::EndCall.check(&report, Some(&record)).is_empty(),
            "wrong outcome"
        );
    }
}
