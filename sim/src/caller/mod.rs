//! A simulated Twilio caller, faithful to Twilio's published protocol.
//!
//! [`place_call`] does what Twilio does for an inbound call: a signed
//! `POST {gateway}/twilio/voice` webhook, then the TwiML answer is read, then a signed
//! WebSocket media stream (`connected`, `start`, then a 20 ms µ-law `media` frame in real
//! time for as long as the call lasts). The caller's ear is a playout clock that echoes
//! marks only once the audio before them has played; a [`Step`] script decides when the
//! caller speaks, waits, barges in, presses keys or hangs up. Anything a gateway sends
//! that Twilio would reject is recorded as a violation in the [`CallReport`].

mod call;
mod ids;
pub mod scenario;
mod script;
mod session;
mod status;
mod stream;
mod turns;
mod twiml;
pub(crate) mod xml;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::playout::{Playout, Tick};
pub use crate::signature::{SignatureMode, signing_url, twilio_signature};
pub use call::place_call;
pub use ids::new_sid;

pub use script::{BARGE_IN_WAIT_MS, Step, default_script, one_question};
pub use status::{StatusEvent, send_status, send_status_event};
pub use turns::{HeardTurn, Turns};
pub use twiml::{
    FollowUp, StreamTarget, Twiml, TwimlError, parse_follow_up, parse_twiml, resolve_stream_url,
};
pub use xml::XmlError;

/// What the person a `<Dial>` rings does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Person {
    /// Nobody picks up: `DialCallStatus=no-answer` after the ring timeout (shortened to
    /// `ring_ms` by the simulator).
    #[default]
    NoAnswer,
    /// The line is busy.
    Busy,
    /// Picks up and talks this many seconds, then hangs up (`completed`).
    Answers(u32),
}

/// One `<Dial>` the simulated Twilio ran.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DialReport {
    /// The `<Number>` or `<Sip>` dialled.
    pub to: String,
    /// `callerId`, when set.
    pub caller_id: Option<String>,
    /// `timeout`, seconds.
    pub timeout_s: u32,
    /// `DialCallStatus` sent to the action.
    pub status: String,
    /// How far into the call the dial started, ms after the webhook.
    pub at_ms: u64,
}

/// One simulated inbound call.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Gateway base URL, e.g. `http://127.0.0.1:8080`; the webhook is `{gateway}/twilio/voice`.
    pub gateway: String,
    /// `AccountSid` of the account that owns the called number.
    pub account_sid: String,
    /// That account's auth token: the `X-Twilio-Signature` key.
    pub auth_token: String,
    /// Caller number (E.164).
    pub from: String,
    /// Called number (E.164): the gateway's tenant routing key.
    pub to: String,
    /// `CallSid` to use; a random `CA…` when `None`.
    pub call_sid: Option<String>,
    /// What the caller does once the stream is up.
    pub script: Vec<Step>,
    /// Signature on the webhook and on the stream handshake.
    pub signature: SignatureMode,
    /// Limit for the webhook answer and for the WebSocket handshake.
    pub connect_timeout: Duration,
    /// Keep every byte of agent audio the caller heard in [`CallReport::heard_audio`].
    pub record_audio: bool,
    /// The Twilio REST simulator the gateway's REST calls reach: the call registers there
    /// and follows its updates (new TwiML, hang-up). `None`: REST updates cannot reach
    /// this call.
    pub rest: Option<crate::twilio_rest::TwilioRestSim>,
    /// What the person a `<Dial>` rings does.
    pub person: Person,
    /// How long a `<Dial>` rings before `no-answer`, at most, ms (Twilio rings the full
    /// `timeout`; tests need not wait that long).
    pub ring_ms: u64,
    /// What the caller does on a later media stream of the call (back with the agent
    /// after an unanswered transfer).
    pub return_script: Vec<Step>,
    /// Length of a voicemail the caller leaves at a `<Record>`, seconds.
    pub voicemail_secs: u32,
    /// When set, kept equal to the number of `script` steps the caller has begun on the
    /// call's first stream: something outside the call (a scenario that kills the
    /// gateway mid-call) can wait for a point of the script.
    pub progress: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            gateway: "http://127.0.0.1:8080".to_owned(),
            account_sid: "AC00000000000000000000000000000000".to_owned(),
            auth_token: String::new(),
            from: "+15551230000".to_owned(),
            to: "+15005550006".to_owned(),
            call_sid: None,
            script: default_script(false, None),
            signature: SignatureMode::Valid,
            connect_timeout: Duration::from_secs(10),
            record_audio: false,
            rest: None,
            person: Person::default(),
            ring_ms: 1_000,
            return_script: vec![Step::WaitAgentDone {
                quiet_ms: 800,
                timeout_ms: 20_000,
            }],
            voicemail_secs: 5,
            progress: None,
        }
    }
}

/// What happened on a simulated call, as the caller (and Twilio) saw it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CallReport {
    /// The call's `CallSid`.
    pub call_sid: String,
    /// The media stream's `StreamSid`, once a stream was started.
    pub stream_sid: Option<String>,
    /// Why the call was not connected to a stream (non-2xx webhook, `<Reject>`, `<Hangup>`, …).
    pub refused: Option<String>,
    /// HTTP status of the webhook answer.
    pub webhook_status: u16,
    /// The stream URL Twilio connected to (resolved, query dropped).
    pub stream_url: Option<String>,
    /// `<Parameter>`s from the TwiML, sent in `start.customParameters`.
    pub custom_parameters: BTreeMap<String, String>,
    /// Webhook sent → first agent audio received, in ms.
    pub setup_ms: Option<f64>,
    /// Agent turns as the caller heard them.
    pub turns: Vec<HeardTurn>,
    /// Silences inside agent turns, in ms, in order (see `Turns::silences_ms`): what a
    /// caller hears of a Realtime session replaced mid-answer.
    #[serde(default)]
    pub agent_silences_ms: Vec<u64>,
    /// All agent audio played to the caller, in ms.
    pub heard_ms_total: u64,
    /// `mark` messages received from the gateway.
    pub marks_received: u64,
    /// `mark` messages echoed back.
    pub marks_echoed: u64,
    /// `clear` messages received.
    pub clears: u32,
    /// Everything Twilio would have rejected or logged as a warning/error.
    pub violations: Vec<String>,
    /// The gateway ended the stream before the caller hung up.
    pub ended_by_gateway: bool,
    /// What the caller heard after the gateway ended the stream, as Twilio runs it (the
    /// `<Connect action>` answer, else the verbs after `</Connect>`): `<Say>` texts in
    /// order; Twilio's own "application error" message when the action request failed.
    #[serde(default)]
    pub heard_after_stream: Vec<String>,
    /// A `<Hangup/>` ended the call after the stream.
    #[serde(default)]
    pub hangup_after_stream: bool,
    /// REST updates that replaced the call's TwiML (each ended a media stream).
    #[serde(default)]
    pub redirects: u32,
    /// A REST `Status=completed` ended the call.
    #[serde(default)]
    pub rest_hangup: bool,
    /// When the last REST update that replaced the call's TwiML arrived, ms after the
    /// webhook (the hand-off benchmark's "call moved").
    #[serde(default)]
    pub redirect_at_ms: Option<u64>,
    /// When the last `mark` was echoed, i.e. the audio before it had played, ms after the
    /// webhook (the hand-off benchmark's "end of the sentence").
    #[serde(default)]
    pub last_mark_echo_ms: Option<u64>,
    /// `<Dial>`s run, in order.
    #[serde(default)]
    pub dials: Vec<DialReport>,
    /// Media streams opened (agent legs).
    #[serde(default)]
    pub streams: u32,
    /// Recording URLs of voicemails left at a `<Record>`.
    #[serde(default)]
    pub recordings: Vec<String>,
    /// Inbound `media` frames sent.
    pub frames_sent: u64,
    /// 20 ms slots whose frame was never sent because the simulator fell behind real time
    /// (a loaded machine); the stream shows them as a timestamp gap, like packet loss.
    pub frames_dropped: u64,
    /// Script waits that gave up (the caller then hung up).
    pub script_timeouts: Vec<String>,
    /// How long the media stream was open, in ms.
    pub stream_ms: u64,
    /// The agent audio the caller heard (µ-law), when [`CallConfig::record_audio`] is set.
    #[serde(skip)]
    pub heard_audio: Vec<u8>,
}

impl CallReport {
    /// The call reached a stream, followed its script to the end and nothing was
    /// violated.
    pub fn is_clean(&self) -> bool {
        self.refused.is_none() && self.violations.is_empty() && self.script_timeouts.is_empty()
    }
}

/// Why a simulated call could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The HTTP client could not be built (no TLS roots, …).
    #[error("http client: {0}")]
    Client(String),
    /// The gateway URL is unusable.
    #[error("bad gateway url {0:?}")]
    BadUrl(String),
    /// The webhook or status request failed in transport (refused, reset, timed out).
    #[error("http request failed")]
    Http(#[source] reqwest::Error),
    /// The webhook answered 2xx with something that is not TwiML the simulator can play.
    #[error("webhook answer is not usable TwiML")]
    Twiml(#[from] TwimlError),
    /// The media-stream WebSocket could not be opened.
    #[error("media stream {url}: {reason}")]
    StreamConnect {
        /// The stream URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The task running the call failed (panicked or was cancelled).
    #[error("call task: {0}")]
    Task(String),
}

/// The process-wide HTTP client the simulator uses (one connection pool and TLS setup for
/// every simulated call); binaries can share it for their own requests.
pub fn http_client() -> Result<reqwest::Client, CallError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    ensure_crypto_provider();
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| CallError::Client(e.to_string()))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// reqwest and tokio-tungstenite are built without a rustls provider; the workspace uses
/// ring. Installing fails harmlessly when the binary already did it.
pub(crate) fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
