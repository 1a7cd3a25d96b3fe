//! `sim load`: many simulated Twilio calls through a relay (the gateway or the floor) to an
//! in-process Realtime responder, with relay latency measured frame by frame.
//!
//! Each call is 50 frames/s each way for its whole duration: the caller streams tagged
//! µ-law frames in real time and echoes marks by a playout clock; the responder talks
//! without pause. A frame's tag (see [`tag`]) names its stream and sequence number, and its
//! send time sits in a shared lock-free table, so the receiving side of the relay computes
//! the latency of that very frame. The run also samples the relay's CPU and RSS from
//! `/proc` (given its pid) and this process's own CPU, so a row can be told apart from one
//! where the load generator itself was the bottleneck.
//!
//! Modules: `tag` (frame tags), `timing` (send-time tables, histograms), `shared`
//! (counters), `twilio` (webhook, TwiML, stream messages), `caller` (one call; its playout
//! clock is [`crate::playout::TimedPlayout`]),
//! `ga` (Realtime events), `responder`, `scan` (reading a few fields of a JSON message),
//! `procfs`, `monitor` (sampling), `report`.

mod caller;
mod frames;
mod ga;
mod monitor;
mod procfs;
mod report;
mod responder;
mod scan;
mod shared;
mod tag;
mod timing;
mod twilio;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use report::{DirectionReport, GatewayReport, LoadReport, SetupReport};

use caller::{CallOutcome, CallSettings, Failure};
use responder::ResponderConfig;
use shared::Shared;

/// Longest ramp chosen by default.
const DEFAULT_MAX_RAMP: Duration = Duration::from_secs(10);
/// Calls started per second by the default ramp.
const DEFAULT_RAMP_RATE: f64 = 50.0;
/// One audio frame.
const FRAME: Duration = Duration::from_millis(20);
/// Before the first call: lets the monitor take its "before" sample.
const LEAD_IN: Duration = Duration::from_millis(300);
/// After the last call: how long responder sessions get to see their socket close.
const DRAIN: Duration = Duration::from_secs(3);

/// WebSocket settings of the load generator's sockets. Its messages are ~300 bytes; the
/// default 128 KiB read buffer is zero-filled before every read, which would make the
/// generator, not the relay, the bottleneck.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Relay base URL; webhooks go to `{gateway}/twilio/voice`.
    pub gateway: String,
    /// Called number.
    pub to: String,
    /// AccountSid of the account that owns the number.
    pub account_sid: String,
    /// Auth token that signs webhooks and stream handshakes.
    pub auth_token: String,
    /// Where the Realtime responder listens (the relay's Realtime URL points here).
    pub realtime_listen: SocketAddr,
    /// Concurrent calls.
    pub calls: usize,
    /// Media streamed per call.
    pub duration: Duration,
    /// Calls are started evenly over this; `None`: min(calls / 50, 10) s.
    pub ramp: Option<Duration>,
    /// The relay's pid, for its CPU and RSS.
    pub gateway_pid: Option<u32>,
    /// Held before each Realtime handshake is answered (a real connect to OpenAI takes
    /// hundreds of ms; locally it takes ~1 ms).
    pub realtime_delay: Duration,
    /// Time between the TwiML answer and the stream opening (Twilio's own latency).
    pub stream_delay: Duration,
    /// Responder talks right after `session.updated` instead of on `response.create`.
    pub talk_on_session_updated: bool,
    /// How far ahead of real time the responder's audio runs.
    pub lead: Duration,
    /// Limit for each webhook answer and stream handshake.
    pub connect_timeout: Duration,
    /// Label copied into the report.
    pub label: Option<String>,
}

impl LoadConfig {
    /// The ramp: as configured, else min(calls / 50, 10) s.
    pub fn effective_ramp(&self) -> Duration {
        self.ramp.unwrap_or_else(|| {
            Duration::from_secs_f64(self.calls as f64 / DEFAULT_RAMP_RATE).min(DEFAULT_MAX_RAMP)
        })
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A setting is out of range.
    #[error("invalid load settings: {0}")]
    Config(String),
    /// The responder's address could not be bound.
    #[error("binding the Realtime responder to {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The HTTP client for webhooks could not be built.
    #[error("building the webhook client: {0}")]
    Http(#[from] reqwest::Error),
}

fn validate(cfg: &LoadConfig) -> Result<(), LoadError> {
    let bad = |why: &str| Err(LoadError::Config(why.to_owned()));
    if cfg.calls == 0 {
        return bad("--calls must be at least 1");
    }
    if u32::try_from(cfg.calls).is_err() {
        return bad("--calls is too large");
    }
    if cfg.duration < Duration::from_millis(20) {
        return bad("--duration must be at least one 20 ms frame");
    }
    if !(cfg.gateway.starts_with("http://") || cfg.gateway.starts_with("https://")) {
        return bad("--gateway must be an http:// or https:// URL");
    }
    Ok(())
}

/// Runs the load and returns what it measured. Failed calls are part of the report, not
/// errors; an error means the run could not start.
pub async fn run_load(cfg: LoadConfig) -> Result<LoadReport, LoadError> {
    validate(&cfg)?;
    // Webhooks may go to an https:// gateway; rustls needs its provider installed once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let calls = cfg.calls;
    // Pre-connect retries or refused handshakes can open more sessions than calls.
    let shared = Arc::new(Shared::new(calls, calls * 2 + 16, rand::random()));
    let listener = tokio::net::TcpListener::bind(cfg.realtime_listen)
        .await
        .map_err(|source| LoadError::Bind {
            addr: cfg.realtime_listen,
            source,
        })?;
    let responder = tokio::spawn(responder::serve(
        listener,
        ResponderConfig {
            handshake_delay: cfg.realtime_delay,
            talk_on_session_updated: cfg.talk_on_session_updated,
            lead: cfg.lead,
        },
        shared.clone(),
    ));
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .build()?;
    let settings = Arc::new(CallSettings {
        voice_url: format!("{}/twilio/voice", cfg.gateway.trim_end_matches('/')),
        to: cfg.to.clone(),
        account_sid: cfg.account_sid.clone(),
        auth_token: cfg.auth_token.clone(),
        duration: cfg.duration,
        stream_delay: cfg.stream_delay,
        timeout: cfg.connect_timeout,
    });
    let (stop_monitor, stop) = tokio::sync::oneshot::channel();
    let monitor = tokio::spawn(monitor::run(cfg.gateway_pid, shared.clone(), stop));

    let ramp = cfg.effective_ramp();
    let first = Instant::now() + LEAD_IN;
    let tasks: Vec<_> = (0..calls)
        .map(|i| {
            // Real calls start at unrelated moments, so their 20 ms frame clocks are out of
            // phase. An even ramp of 50 calls/s would put every call on the same phase and
            // turn each frame period into one burst; the golden-ratio sequence spreads the
            // phases evenly over the frame instead.
            let phase = FRAME.mul_f64((i as f64 * 0.618_033_988_75).fract());
            let offset = ramp.mul_f64(i as f64 / calls as f64) + phase;
            tokio::spawn(caller::run_call(
                u32::try_from(i).unwrap_or(u32::MAX),
                first + offset,
                settings.clone(),
                http.clone(),
                shared.clone(),
            ))
        })
        .collect();
    let mut outcomes = Vec::with_capacity(calls);
    for t in tasks {
        outcomes.push(t.await.unwrap_or_else(|e| CallOutcome {
            setup: None,
            failure: Some(Failure {
                kind: "task_failed".into(),
                detail: e.to_string(),
            }),
        }));
    }
    let deadline = Instant::now() + DRAIN;
    while Shared::get(&shared.sessions_open) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_monitor.send(());
    let samples = monitor.await.unwrap_or_default();
    responder.abort();
    Ok(report::build(
        report::RunFacts {
            label: cfg.label.clone(),
            calls,
            duration: cfg.duration,
            ramp,
            gateway_pid: cfg.gateway_pid,
        },
        &outcomes,
        &shared,
        &samples,
    ))
}

#[cfg(test)]
mod loopback_tests;
