//! Starting and stopping a gateway (used by `main` and by in-process tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admission::Admissions;
use crate::cli::Cli;
use crate::drain::Drain;
use crate::http::router;
use crate::knowledge;
use crate::metrics::Metrics;
use crate::preconnect::Parking;
use crate::realtime::WsBackend;
use crate::secrets::DEFAULT_SECRETS_DIR;
use crate::state::{AppState, Shared};
use crate::tenants::Tenants;
use crate::tools::{KnowledgeRunner, NoExternalTools, ToolRunner};
use crate::twilio::rest::TwilioRest;
use switchboard_store::queue::QueueMetrics;
use switchboard_store::{self as store, WriteBehind, WriteBehindConfig};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Tenant manifests or secrets.
    #[error(transparent)]
    Tenants(#[from] crate::tenants::TenantError),
    /// The call store.
    #[error("call store: {0}")]
    Store(#[from] store::StoreError),
    /// Metrics registration.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Listening socket or data directory.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Knowledge bases could not be loaded.
    #[error(transparent)]
    Knowledge(#[from] knowledge::KnowledgeError),
    /// `--knowledge` without a model for the local embedder.
    #[error(
        "--knowledge needs --model-dir (or SWITCHBOARD_MODEL_DIR): run scripts/model.sh, it prints the directory"
    )]
    NoModelDir,
    /// The Twilio REST client could not be built.
    #[error("twilio REST client: {0}")]
    TwilioRest(#[from] crate::twilio::rest::RestError),
}

/// A running gateway.
pub struct Gateway {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shared state (metrics, drain, store).
    pub state: AppState,
    server: JoinHandle<()>,
    writer_task: JoinHandle<()>,
    shutdown: Arc<tokio::sync::Notify>,
    drain_timeout: Duration,
}

impl Gateway {
    /// Loads tenants, opens the store, binds and starts serving.
    pub async fn start(cli: &Cli) -> Result<Self, StartError> {
        let secrets_dir = std::env::var_os("SWITCHBOARD_SECRETS_DIR")
            .map_or_else(|| PathBuf::from(DEFAULT_SECRETS_DIR), PathBuf::from);
        std::fs::create_dir_all(&cli.data_dir)?;
        let metrics = Metrics::new()?;
        let knowledge = if cli.knowledge.is_empty() {
            None
        } else {
            let kbs = knowledge::read_manifests(&cli.knowledge)?;
            let km = knowledge::KnowledgeMetrics::register(metrics.registry())?;
            let setup = knowledge::KnowledgeSetup {
                model_dir: cli.model_dir.as_deref(),
                data_dir: &cli.data_dir,
                database_url: cli.database_url.as_deref(),
                secrets_dir: &secrets_dir,
            };
            let loaded = knowledge::Knowledge::load_with(&kbs, setup, km)
                .await
                .map_err(|e| match e {
                    knowledge::KnowledgeError::NoModelDir => StartError::NoModelDir,
                    other => other.into(),
                })?;
            Some(Arc::new(loaded))
        };
        let knowledge_of = |tenant: &str| {
            knowledge
                .as_ref()
                .map(|k| k.bases_of(tenant))
                .unwrap_or_default()
        };
        let tenants = Tenants::load(
            &cli.tenants,
            &cli.realtime_url,
            &secrets_dir,
            &knowledge_of,
            cli.allow_unsigned_webhooks,
        )?;
        let tools: Arc<dyn ToolRunner> = match &knowledge {
            Some(k) => Arc::new(KnowledgeRunner(k.clone())),
            None => Arc::new(NoExternalTools),
        };
        let store = store::open(&cli.store_url()).await?;
        let (writer, writer_task) = WriteBehind::start(
            store.clone(),
            WriteBehindConfig {
                capacity: 4096,
                spool_dir: cli.data_dir.join("spool"),
                retry_interval: Duration::from_secs(1),
            },
            QueueMetrics {
                depth: metrics.store_queue_depth.clone(),
                spooled: metrics.store_spooled.clone(),
            },
        )?;
        let listener = TcpListener::bind(cli.listen).await?;
        let addr = listener.local_addr()?;
        let public_base = match &cli.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{addr}"),
        };
        let state: AppState = Arc::new(Shared {
            parking: Parking::new(
                Duration::from_secs(cli.preconnect_ttl_seconds),
                metrics.clone(),
            ),
            tenants,
            metrics,
            backend: Arc::new(WsBackend::default()),
            writer,
            store,
            public_base,
            max_calls: cli.max_calls,
            preconnect: !cli.no_preconnect,
            drain: Arc::new(Drain::default()),
            tools,
            admissions: Admissions::new(
                Duration::from_secs(cli.stream_admission_seconds),
                cli.max_calls,
            ),
            endings: Default::default(),
            twilio: TwilioRest::new(&cli.twilio_api_url)?,
        });
        let shutdown = Arc::new(tokio::sync::Notify::new());
        let stop = shutdown.clone();
        let app = router(state.clone());
        // Nagle's algorithm would hold each small real-time message (a mark behind a media
        // chunk) until the previous segment is acknowledged: off for a relay.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.notified().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
        tracing::info!(%addr, public_url = state.public_base, tenants = state.tenants.all().count(), "gateway listening");
        Ok(Self {
            addr,
            state,
            server,
            writer_task,
            shutdown,
            drain_timeout: Duration::from_secs(cli.drain_seconds),
        })
    }

    /// Graceful shutdown: readiness goes false, live calls continue until they end or the
    /// drain deadline passes, then the server stops and queued records are flushed.
    pub async fn drain_and_stop(self) {
        let state = self.state.clone();
        state.drain.start_draining();
        tracing::info!(
            active_calls = state.drain.active(),
            deadline_s = self.drain_timeout.as_secs(),
            "draining"
        );
        if tokio::time::timeout(self.drain_timeout, state.drain.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                active_calls = state.drain.active(),
                "drain deadline passed; ending remaining calls"
            );
            state.drain.fire_deadline();
            let _ = tokio::time::timeout(Duration::from_secs(10), state.drain.wait_idle()).await;
        }
        self.shutdown.notify_one();
        let _ = self.server.await;
        state.writer.clone().close(Duration::from_secs(30)).await;
        let _ = self.writer_task.await;
        tracing::info!("gateway stopped");
    }
}
