//! Named call-control scenarios (issue 13 §7): what the caller does, what the Realtime
//! simulator's model says, and what must have happened for the call to count as passed.
//!
//! `sim call --scenario NAME` places the call against a running gateway and exits
//! non-zero when a check fails; `sim realtime --scenario NAME` serves the model side of
//! the same scenario. The checks read the caller's own report (what it heard, which
//! TwiML Twilio would have run) and, when the admin API key is given, the gateway's
//! record of the call (`outcome`, `transfers`).

use std::time::Duration;

use serde_json::Value;

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
}

impl Scenario {
    /// Every scenario, in the order `--help` lists them.
    pub const ALL: &'static [Scenario] = &[
        Scenario::TransferAnswered,
        Scenario::TransferUnanswered,
        Scenario::EndCall,
        Scenario::Silence,
    ];

    /// The scenario's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::TransferAnswered => "transfer-answered",
            Scenario::TransferUnanswered => "transfer-unanswered",
            Scenario::EndCall => "end-call",
            Scenario::Silence => "silence",
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
        };
        RealtimeConfig {
            script,
            ..RealtimeConfig::default()
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
        expect(
            report.violations.is_empty(),
            format!("protocol violations: {:?}", report.violations),
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
            Scenario::EndCall | Scenario::Silence => {
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
                let want = if self == Scenario::EndCall {
                    "agent_hangup"
                } else {
                    "silence_timeout"
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
        let cfg = self.call(base);
        let report = place_call(&cfg).await?;
        let record = match api_key {
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
        let failed = self.check(&report, record.as_ref());
        Ok(ScenarioRun {
            report,
            record,
            failed,
        })
    }
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
