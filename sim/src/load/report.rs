//! The result of a load run: a human table and a one-line JSON summary for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::caller::CallOutcome;
use super::monitor::{self, Sample};
use super::shared::{self, Shared};

/// Failures described in full (the rest are only counted).
const EXAMPLES: usize = 5;
/// Seconds after all calls are streaming before the CPU window opens.
const SETTLE_S: f64 = 1.0;

/// Relay latency in one direction, from send by one end of the run to receipt by the other.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DirectionReport {
    /// Tagged frames sent.
    pub frames_sent: u64,
    /// Tagged frames received on the other side.
    pub frames_received: u64,
    /// Received frames whose send time was unknown.
    pub unmatched: u64,
    /// Median, ms.
    pub p50_ms: Option<f64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Largest, ms.
    pub max_ms: Option<f64>,
}

/// Webhook sent → first agent audio, over calls that got audio.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SetupReport {
    /// Median, ms.
    pub p50: Option<f64>,
    /// 99th percentile, ms.
    pub p99: Option<f64>,
    /// Largest, ms.
    pub max: Option<f64>,
}

/// The relay process under test.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GatewayReport {
    /// Its process id.
    pub pid: u32,
    /// CPU over the steady window, % of one core.
    pub cpu_pct: Option<f64>,
    /// RSS before the first call, KiB.
    pub rss_before_kib: Option<u64>,
    /// Highest RSS sampled, KiB.
    pub rss_peak_kib: Option<u64>,
    /// (peak − before) / calls, KiB.
    pub rss_per_call_kib: Option<f64>,
}

/// Everything a load run measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadReport {
    /// Free-form label from the command line (e.g. `floor`, `gateway`).
    pub label: Option<String>,
    /// Calls placed.
    pub calls: usize,
    /// Media per call, s.
    pub duration_s: f64,
    /// Ramp-up, s.
    pub ramp_s: f64,
    /// Calls that streamed their whole duration and heard the agent.
    pub completed: usize,
    /// Calls that did not.
    pub failed: usize,
    /// Failed calls by reason.
    pub failures: BTreeMap<String, usize>,
    /// The first few failures in full.
    pub failure_examples: Vec<String>,
    /// Caller → model.
    pub inbound: DirectionReport,
    /// Model → caller.
    pub outbound: DirectionReport,
    /// Call setup.
    pub setup_ms: SetupReport,
    /// Caller frames sent more than 20 ms late (the load generator falling behind).
    pub late_frames: u64,
    /// Largest caller send lag, ms.
    pub max_send_lag_ms: f64,
    /// Relay messages Twilio would refuse (wrong streamSid, unknown event, bad JSON).
    pub protocol_errors: u64,
    /// Realtime sessions the responder accepted.
    pub responder_sessions: u64,
    /// Realtime handshakes the responder refused.
    pub responder_refused: u64,
    /// Length of the steady window CPU is measured over, s.
    pub window_s: Option<f64>,
    /// The relay process, when its pid was given.
    pub gateway: Option<GatewayReport>,
    /// This load generator's CPU over the same window, % of one core.
    pub loadgen_cpu_pct: Option<f64>,
    /// CPU every other process on the machine used over the window, % of one core. When it
    /// is not near 0, something else competed for the cores and the row is not clean.
    pub other_cpu_pct: Option<f64>,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms(us: f64) -> f64 {
    round3(us / 1000.0)
}

fn direction(d: &shared::Direction) -> DirectionReport {
    let q = |p: f64| d.latency.quantile_us(p).map(ms);
    DirectionReport {
        frames_sent: Shared::get(&d.sent),
        frames_received: Shared::get(&d.received),
        unmatched: Shared::get(&d.unmatched),
        p50_ms: q(0.50),
        p90_ms: q(0.90),
        p99_ms: q(0.99),
        max_ms: (d.latency.count() > 0).then(|| ms(d.latency.max_us() as f64)),
    }
}

/// Nearest-rank quantile of sorted durations, ms.
fn quantile_ms(sorted: &[Duration], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(round3(sorted[rank - 1].as_secs_f64() * 1000.0))
}

/// What the run was asked to do, for the report.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// Label.
    pub label: Option<String>,
    /// Calls.
    pub calls: usize,
    /// Media per call.
    pub duration: Duration,
    /// Ramp.
    pub ramp: Duration,
    /// Relay pid.
    pub gateway_pid: Option<u32>,
}

/// Builds the report from the call outcomes, the shared counters and the samples.
pub fn build(
    facts: RunFacts,
    outcomes: &[CallOutcome],
    shared: &Shared,
    samples: &[Sample],
) -> LoadReport {
    let mut failures = BTreeMap::new();
    let mut failure_examples = Vec::new();
    let mut setups = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        if let Some(f) = &o.failure {
            *failures.entry(f.kind.clone()).or_insert(0) += 1;
            if failure_examples.len() < EXAMPLES {
                let detail: String = f.detail.chars().take(300).collect();
                failure_examples.push(format!("call {i}: {}: {detail}", f.kind));
            }
        }
        if let Some(s) = o.setup {
            setups.push(s);
        }
    }
    setups.sort();
    let failed: usize = failures.values().sum();
    let window = monitor::steady_window(samples, SETTLE_S);
    let pct = |f: fn(&Sample) -> Option<f64>| {
        window.and_then(|(a, b)| {
            monitor::cpu_percent(samples, a, b, f).map(|p| (p * 10.0).round() / 10.0)
        })
    };
    let other_cpu_pct = window.and_then(|(a, b)| {
        let all = monitor::cpu_percent(samples, a, b, |s| s.machine_cpu)?;
        let relay = monitor::cpu_percent(samples, a, b, |s| s.gateway_cpu).unwrap_or(0.0);
        let own = monitor::cpu_percent(samples, a, b, |s| s.own_cpu)?;
        Some(((all - relay - own).max(0.0) * 10.0).round() / 10.0)
    });
    let gateway = facts.gateway_pid.map(|pid| {
        let before = samples.first().and_then(|s| s.gateway_rss);
        let peak = samples.iter().filter_map(|s| s.gateway_rss).max();
        GatewayReport {
            pid,
            cpu_pct: pct(|s| s.gateway_cpu),
            rss_before_kib: before,
            rss_peak_kib: peak,
            rss_per_call_kib: match (before, peak) {
                (Some(b), Some(p)) if facts.calls > 0 => {
                    Some((p.saturating_sub(b) as f64 / facts.calls as f64 * 10.0).round() / 10.0)
                }
                _ => None,
            },
        }
    });
    LoadReport {
        label: facts.label,
        calls: facts.calls,
        duration_s: round3(facts.duration.as_secs_f64()),
        ramp_s: round3(facts.ramp.as_secs_f64()),
        completed: outcomes.len() - failed,
        failed,
        failures,
        failure_examples,
        inbound: direction(&shared.inbound),
        outbound: direction(&shared.outbound),
        setup_ms: SetupReport {
            p50: quantile_ms(&setups, 0.50),
            p99: quantile_ms(&setups, 0.99),
            max: setups.last().map(|d| round3(d.as_secs_f64() * 1000.0)),
        },
        late_frames: Shared::get(&shared.late_frames),
        max_send_lag_ms: ms(Shared::get(&shared.max_lag_us) as f64),
        protocol_errors: Shared::get(&shared.protocol_errors),
        responder_sessions: Shared::get(&shared.sessions),
        responder_refused: Shared::get(&shared.sessions_refused),
        window_s: window.map(|(a, b)| round3(samples[b].t - samples[a].t)),
        gateway,
        loadgen_cpu_pct: pct(|s| s.own_cpu),
        other_cpu_pct,
    }
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}{unit}"))
}

impl LoadReport {
    /// The report as one line of JSON.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as a table for people.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let label = self.label.as_deref().unwrap_or("load");
        let _ = writeln!(
            s,
            "{label}: {} calls x {} s (ramp {} s): {} completed, {} failed",
            self.calls, self.duration_s, self.ramp_s, self.completed, self.failed
        );
        for (kind, n) in &self.failures {
            let _ = writeln!(s, "  failed {kind}: {n}");
        }
        for e in &self.failure_examples {
            let _ = writeln!(s, "    {e}");
        }
        let _ = writeln!(
            s,
            "  {:<22} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "relay latency", "sent", "received", "unmatched", "p50", "p90", "p99", "max"
        );
        for (name, d) in [
            ("inbound (caller->ai)", &self.inbound),
            ("outbound (ai->caller)", &self.outbound),
        ] {
            let _ = writeln!(
                s,
                "  {:<22} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
                name,
                d.frames_sent,
                d.frames_received,
                d.unmatched,
                opt(d.p50_ms, ""),
                opt(d.p90_ms, ""),
                opt(d.p99_ms, ""),
                opt(d.max_ms, "")
            );
        }
        let _ = writeln!(s, "  (latencies in ms)");
        let _ = writeln!(
            s,
            "  setup (webhook -> first audio): p50 {} p99 {} max {}",
            opt(self.setup_ms.p50, " ms"),
            opt(self.setup_ms.p99, " ms"),
            opt(self.setup_ms.max, " ms")
        );
        let _ = writeln!(
            s,
            "  load generator: {} late frames (max lag {:.2} ms), CPU {}",
            self.late_frames,
            self.max_send_lag_ms,
            opt(self.loadgen_cpu_pct, " %")
        );
        let _ = writeln!(
            s,
            "  other processes on this machine: CPU {}",
            opt(self.other_cpu_pct, " %")
        );
        let _ = writeln!(
            s,
            "  responder: {} sessions, {} refused; protocol errors seen by callers: {}",
            self.responder_sessions, self.responder_refused, self.protocol_errors
        );
        if let Some(g) = &self.gateway {
            let kib = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |x| format!("{x} KiB"));
            let _ = writeln!(
                s,
                "  relay pid {}: CPU {} over {}; RSS before {}, peak {}, per call {}",
                g.pid,
                opt(g.cpu_pct, " %"),
                opt(self.window_s, " s"),
                kib(g.rss_before_kib),
                kib(g.rss_peak_kib),
                opt(g.rss_per_call_kib, " KiB")
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::caller::Failure;

    #[test]
    fn report_counts_failures_and_quantiles() {
        let shared = Shared::new(4, 4, 1);
        for seq in 0..100u32 {
            let tag = crate::load::tag::Tag { stream: 0, seq };
            shared.inbound.sending(tag, 1_000_000);
            shared
                .inbound
                .received(tag, 1_000_000 + u64::from(seq + 1) * 100_000);
        }
        let ok = |ms: u64| CallOutcome {
            setup: Some(Duration::from_millis(ms)),
            failure: None,
        };
        let outcomes = vec![
            ok(100),
            ok(300),
            ok(200),
            CallOutcome {
                setup: None,
                failure: Some(Failure {
                    kind: "busy".into(),
                    detail: "<Reject/>".into(),
                }),
            },
        ];
        let samples = [
            Sample {
                t: 0.0,
                streaming: 0,
                gateway_cpu: Some(0.0),
                gateway_rss: Some(1000),
                own_cpu: Some(0.0),
                machine_cpu: Some(0.0),
            },
            Sample {
                t: 1.0,
                streaming: 3,
                gateway_cpu: Some(0.5),
                gateway_rss: Some(1300),
                own_cpu: Some(0.0),
                machine_cpu: Some(1.0),
            },
            Sample {
                t: 2.0,
                streaming: 3,
                gateway_cpu: Some(1.0),
                gateway_rss: Some(1400),
                own_cpu: Some(0.1),
                machine_cpu: Some(2.0),
            },
            Sample {
                t: 4.0,
                streaming: 3,
                gateway_cpu: Some(2.0),
                gateway_rss: Some(1350),
                own_cpu: Some(0.3),
                machine_cpu: Some(3.5),
            },
        ];
        let r = build(
            RunFacts {
                label: Some("t".into()),
                calls: 4,
                duration: Duration::from_secs(2),
                ramp: Duration::from_secs(1),
                gateway_pid: Some(7),
            },
            &outcomes,
            &shared,
            &samples,
        );
        assert_eq!((r.completed, r.failed), (3, 1));
        assert_eq!(r.failures.get("busy"), Some(&1));
        assert_eq!(r.setup_ms.p50, Some(200.0));
        assert_eq!(r.setup_ms.p99, Some(300.0));
        assert_eq!(r.inbound.frames_sent, 100);
        assert_eq!(r.inbound.frames_received, 100);
        let p50 = r.inbound.p50_ms.unwrap();
        assert!((p50 - 5.0).abs() < 0.1, "{p50}");
        assert_eq!(r.inbound.max_ms, Some(10.0));
        assert_eq!(r.outbound.p99_ms, None);
        let g = r.gateway.clone().unwrap();
        assert_eq!(g.cpu_pct, Some(50.0));
        assert_eq!(g.rss_per_call_kib, Some(100.0));
        assert_eq!(r.loadgen_cpu_pct, Some(10.0));
        // Machine 75 % = relay 50 % + load generator 10 % + 15 % someone else's.
        assert_eq!(r.other_cpu_pct, Some(15.0));
        assert_eq!(r.window_s, Some(2.0));
        let json: serde_json::Value = serde_json::from_str(&r.json_line()).unwrap();
        assert_eq!(json["gateway"]["cpu_pct"], 50.0);
        assert!(!r.json_line().contains('\n'));
        assert!(r.table().contains("failed busy: 1"));
    }
}
