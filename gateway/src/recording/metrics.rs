//! The recording metrics (registered in the gateway's registry).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Recording and upload metrics.
#[derive(Clone)]
pub struct RecordingMetrics {
    /// Recording events dropped because a call's writer fell behind.
    pub dropped: IntCounter,
    /// Caller audio refused for a timestamp past the call's limit.
    pub refused: IntCounter,
    /// Recordings that could not be written (their track files stay).
    pub write_errors: IntCounter,
    /// WAV bytes written.
    pub disk_bytes: IntCounter,
    /// Recordings waiting for upload (on disk).
    pub queue_depth: IntGauge,
    /// Upload duration (successful uploads).
    pub upload_seconds: Histogram,
    /// Bytes uploaded.
    pub upload_bytes: IntCounter,
    /// Failed upload attempts by reason.
    pub upload_failures: IntCounterVec,
    /// Recordings deleted by retention.
    pub expired: IntCounter,
    /// Agent audio sent to Twilio and held in memory until its mark echo says it played.
    pub agent_held_bytes: IntGauge,
    /// Agent audio waiting for its echo in the calls' staging files.
    pub agent_staged_bytes: IntGauge,
    /// Recording events handed to the writer thread and not yet taken by it.
    pub writer_queued_bytes: IntGauge,
    /// Recordings of calls a previous run did not finish, made at startup.
    pub salvaged: IntCounter,
}

impl RecordingMetrics {
    /// Creates and registers the metrics.
    pub fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            dropped: IntCounter::new(
                "switchboard_recording_events_dropped_total",
                "Recording events dropped because a call's writer fell behind",
            )?,
            refused: IntCounter::new(
                "switchboard_recording_audio_refused_total",
                "Caller audio not recorded: its timestamp is past the call's limit",
            )?,
            write_errors: IntCounter::new(
                "switchboard_recording_write_errors_total",
                "Recordings that could not be written to the local disk",
            )?,
            disk_bytes: IntCounter::new(
                "switchboard_recording_bytes_written_total",
                "WAV bytes written to the local disk",
            )?,
            queue_depth: IntGauge::new(
                "switchboard_recording_queue_depth",
                "Recordings on the local disk waiting for upload",
            )?,
            upload_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "switchboard_recording_upload_seconds",
                    "Duration of successful recording uploads",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            )?,
            upload_bytes: IntCounter::new(
                "switchboard_recording_upload_bytes_total",
                "Recording bytes uploaded",
            )?,
            upload_failures: IntCounterVec::new(
                Opts::new(
                    "switchboard_recording_upload_failures_total",
                    "Failed recording upload attempts by reason (retried)",
                ),
                &["reason"],
            )?,
            expired: IntCounter::new(
                "switchboard_recordings_expired_total",
                "Recordings deleted after their retention",
            )?,
            agent_held_bytes: IntGauge::new(
                "switchboard_recording_agent_held_bytes",
                "Agent audio of live calls held in memory until Twilio echoes that it played (about 2 KiB per call; the rest waits on disk)",
            )?,
            agent_staged_bytes: IntGauge::new(
                "switchboard_recording_agent_staged_bytes",
                "Agent audio of live calls waiting in their staging files until Twilio echoes that it played",
            )?,
            writer_queued_bytes: IntGauge::new(
                "switchboard_recording_writer_queued_bytes",
                "Recording events handed to the writer thread and not yet taken by it (grows when the writer falls behind)",
            )?,
            salvaged: IntCounter::new(
                "switchboard_recording_salvaged_total",
                "Recordings of calls a previous run did not finish (killed mid-call), made at startup from their track files",
            )?,
        };
        r.register(Box::new(m.dropped.clone()))?;
        r.register(Box::new(m.refused.clone()))?;
        r.register(Box::new(m.write_errors.clone()))?;
        r.register(Box::new(m.disk_bytes.clone()))?;
        r.register(Box::new(m.queue_depth.clone()))?;
        r.register(Box::new(m.upload_seconds.clone()))?;
        r.register(Box::new(m.upload_bytes.clone()))?;
        r.register(Box::new(m.upload_failures.clone()))?;
        r.register(Box::new(m.expired.clone()))?;
        r.register(Box::new(m.agent_held_bytes.clone()))?;
        r.register(Box::new(m.agent_staged_bytes.clone()))?;
        r.register(Box::new(m.writer_queued_bytes.clone()))?;
        r.register(Box::new(m.salvaged.clone()))?;
        Ok(m)
    }
}
