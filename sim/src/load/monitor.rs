//! Samples CPU time, memory and live calls through the run, and picks the steady window
//! (every call streaming) that CPU figures are computed over.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::procfs::{self, Proc};
use super::shared::Shared;

/// Sampling period.
const PERIOD: Duration = Duration::from_millis(250);

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the run's epoch.
    pub t: f64,
    /// Calls streaming.
    pub streaming: u64,
    /// The gateway's CPU seconds so far.
    pub gateway_cpu: Option<f64>,
    /// The gateway's RSS, KiB.
    pub gateway_rss: Option<u64>,
    /// This process's CPU seconds so far.
    pub own_cpu: Option<f64>,
    /// Busy CPU seconds of the whole machine so far.
    pub machine_cpu: Option<f64>,
}

fn take(gateway: Option<u32>, shared: &Shared) -> Sample {
    let gw = gateway.map(Proc::Pid);
    Sample {
        t: shared.clock.now_ns() as f64 / 1e9,
        streaming: Shared::get(&shared.streaming),
        gateway_cpu: gw.and_then(Proc::cpu_seconds),
        gateway_rss: gw.and_then(Proc::rss_kib),
        own_cpu: Proc::SelfProc.cpu_seconds(),
        machine_cpu: procfs::machine_busy_seconds(),
    }
}

/// Samples every [`PERIOD`] until `stop` fires (or its sender is dropped), starting at once.
pub async fn run(
    gateway: Option<u32>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => samples.push(take(gateway, &shared)),
            _ = &mut stop => break,
        }
    }
    samples.push(take(gateway, &shared));
    samples
}

/// Indexes `(from, to)` of the steady window: from `settle` seconds after the number of
/// streaming calls first reached (almost) its peak to the last sample still there.
/// "Almost" allows 2 % of calls to have failed or finished early.
pub fn steady_window(samples: &[Sample], settle: f64) -> Option<(usize, usize)> {
    let peak = samples.iter().map(|s| s.streaming).max()?;
    if peak == 0 {
        return None;
    }
    let floor = peak - peak / 50;
    let first = samples.iter().position(|s| s.streaming >= floor)?;
    let last = samples.iter().rposition(|s| s.streaming >= floor)?;
    let settled = samples[first].t + settle;
    let from = (first..=last)
        .find(|&i| samples[i].t >= settled)
        .unwrap_or(first);
    (last > from).then_some((from, last))
}

/// CPU use over `samples[from..=to]` as a percentage of one core.
pub fn cpu_percent(
    samples: &[Sample],
    from: usize,
    to: usize,
    cpu: impl Fn(&Sample) -> Option<f64>,
) -> Option<f64> {
    let (a, b) = (samples.get(from)?, samples.get(to)?);
    let secs = b.t - a.t;
    (secs > 0.0).then_some(())?;
    Some((cpu(b)? - cpu(a)?) / secs * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: f64, streaming: u64, cpu: f64) -> Sample {
        Sample {
            t,
            streaming,
            gateway_cpu: Some(cpu),
            gateway_rss: Some(1000),
            own_cpu: None,
            machine_cpu: None,
        }
    }

    #[test]
    fn the_window_starts_after_settling_at_the_peak() {
        let samples = [
            s(0.0, 0, 0.0),
            s(1.0, 50, 0.1),
            s(2.0, 100, 0.3),
            s(3.0, 100, 0.6),
            s(4.0, 99, 0.9),
            s(5.0, 100, 1.2),
            s(6.0, 10, 1.3),
        ];
        let (from, to) = steady_window(&samples, 1.0).unwrap();
        assert_eq!((from, to), (3, 5));
        let pct = cpu_percent(&samples, from, to, |x| x.gateway_cpu).unwrap();
        assert!((pct - 30.0).abs() < 1e-9, "{pct}");
        assert_eq!(cpu_percent(&samples, from, to, |x| x.own_cpu), None);
    }

    #[test]
    fn no_window_without_calls_or_time() {
        assert_eq!(steady_window(&[], 1.0), None);
        assert_eq!(steady_window(&[s(0.0, 0, 0.0), s(1.0, 0, 0.0)], 1.0), None);
        assert_eq!(steady_window(&[s(0.0, 5, 0.0)], 1.0), None);
        // Too short to settle: the window is what there is.
        assert_eq!(
            steady_window(&[s(0.0, 5, 0.0), s(0.5, 5, 0.1)], 1.0),
            Some((0, 1))
        );
    }
}
