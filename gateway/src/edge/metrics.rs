//! The edge's own metrics, registered in the gateway's registry.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Connection metrics.
#[derive(Clone)]
pub struct EdgeMetrics {
    /// Open TCP connections (media streams included).
    pub open: IntGauge,
    /// Connections refused at accept, by cap (`max_connections`, `max_connections_per_ip`).
    pub refused: IntCounterVec,
    /// Connections closed because their request head did not arrive within
    /// `--header-read-timeout-seconds` (slow or idle clients).
    pub header_timeouts: IntCounter,
}

impl EdgeMetrics {
    /// Creates the metrics (unregistered).
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            open: IntGauge::new(
                "switchboard_connections_open",
                "Open TCP connections, media streams included",
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "switchboard_connections_refused_total",
                    "Connections refused at accept, by cap",
                ),
                &["reason"],
            )?,
            header_timeouts: IntCounter::new(
                "switchboard_header_timeouts_total",
                "Connections closed for not sending a request head in time",
            )?,
        })
    }

    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self::new()?;
        registry.register(Box::new(m.open.clone()))?;
        registry.register(Box::new(m.refused.clone()))?;
        registry.register(Box::new(m.header_timeouts.clone()))?;
        Ok(m)
    }
}
