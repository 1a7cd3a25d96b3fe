//! What every request and every call shares: the gateway's state, built once by
//! [`crate::server`] and handed to the HTTP handlers and the call tasks.

use std::sync::Arc;
use std::time::Duration;

use switchboard_store::{CallStore, WriteBehind};

use crate::access::Access;
use crate::admission::Admissions;
use crate::aws::Aws;
use crate::drain::Drain;
use crate::endings::Endings;
use crate::metrics::Metrics;
use crate::preconnect::Parking;
use crate::realtime::RealtimeBackend;
use crate::recording::Recordings;
use crate::secrets::SecretSource;
use crate::tenants::{Rotation, Tenants};
use crate::tools::ToolRunner;
use crate::twilio::rest::TwilioRest;

/// Everything handlers share.
pub struct Shared {
    /// Tenants served.
    pub tenants: Tenants,
    /// Metrics.
    pub metrics: Metrics,
    /// Pre-connected sessions.
    pub parking: Parking,
    /// How Realtime sessions are opened.
    pub backend: Arc<dyn RealtimeBackend>,
    /// Where records are written (never blocks a call).
    pub writer: WriteBehind,
    /// Where records are read from.
    pub store: Arc<dyn CallStore>,
    /// Public base URL (`https://gw.example.com`), no trailing slash.
    pub public_base: String,
    /// Concurrent call limit.
    pub max_calls: usize,
    /// Whether to pre-connect on the webhook.
    pub preconnect: bool,
    /// Shutdown state.
    pub drain: Arc<Drain>,
    /// Tools answered outside the call's state machine.
    pub tools: Arc<dyn ToolRunner>,
    /// Stream admissions issued by webhooks and consumed once by their streams.
    pub admissions: Arc<Admissions>,
    /// Transferred legs waiting for their `<Dial action>`, and how recent calls ended
    /// (for the `<Connect action>` of TwiML written by earlier versions).
    pub endings: Endings,
    /// Admin API rate limits and console sessions.
    pub access: Access,
    /// Call recordings and their upload queue.
    pub recordings: Arc<Recordings>,
    /// Where tenant secrets are re-read from.
    pub secrets: SecretSource,
    /// How often secrets are re-read and how long a replaced auth token stays valid.
    pub rotation: Rotation,
    /// AWS clients (KMS for encrypted records), built on first use.
    pub aws: Arc<Aws>,
    /// How records of tenants with `spec.encryption` are sealed before they are queued.
    pub sealing: Sealing,
    /// Twilio's REST API (call control: transfer, hang-up).
    pub twilio: TwilioRest,
    /// Post-call analysis (tenants with `spec.analysis`).
    pub analysis: Arc<crate::analysis::Analyzer>,
    /// The call store's database URL when it came from AWS Secrets Manager: re-read on
    /// the refresh schedule, the store swapped when it changed.
    pub call_store_url: Option<crate::rotation::CallStoreUrl>,
    /// Knowledge bases loaded (their embedder and Pinecone keys are re-read on the
    /// refresh schedule).
    pub knowledge: Option<Arc<crate::knowledge::Knowledge>>,
}

/// How records of encrypting tenants are sealed.
#[derive(Debug, Clone)]
pub struct Sealing {
    /// How long a record waits for KMS before it is stored without its sealed fields
    /// (only a record that found no reserve key: [`crate::records`]).
    pub retry_for: Duration,
    /// First retry delay (doubles up to 30 s).
    pub first_retry: Duration,
    /// Each encrypting tenant's reserve data key.
    pub reserves: Arc<crate::reserve::Reserves>,
    /// Where records sealed under a reserve key wait for KMS (`<data dir>/sealing`).
    pub dir: std::path::PathBuf,
    /// The tasks finishing those records (stopped at shutdown: their files stay for the
    /// next start).
    tasks: Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
}

impl Default for Sealing {
    /// Defaults with `sealing/` under the working directory (the server always passes
    /// `<data dir>/sealing`; this is for state built in tests).
    fn default() -> Self {
        Self::new(std::path::PathBuf::from("sealing"))
    }
}

impl Sealing {
    /// Defaults, with records waiting for KMS in `dir`.
    pub fn new(dir: std::path::PathBuf) -> Self {
        Self {
            retry_for: Duration::from_secs(600),
            first_retry: Duration::from_secs(1),
            reserves: Arc::default(),
            dir,
            tasks: Arc::default(),
        }
    }

    /// Runs `task` (finishing a pending record) until it ends or [`Sealing::stop`].
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Reap finished ones so the set does not grow with every outage.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Stops the tasks finishing pending records (at shutdown).
    pub fn stop(&self) {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .abort_all();
    }
}

/// Handler state.
pub type AppState = Arc<Shared>;

impl Shared {
    /// The WebSocket base for stream URLs (`wss://…` for an `https://` public URL).
    pub fn ws_base(&self) -> String {
        if let Some(rest) = self.public_base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.public_base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.public_base.clone()
        }
    }
}
