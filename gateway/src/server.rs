//! Starting and stopping a gateway (used by `main` and by in-process tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admission::Admissions;
use crate::aws::Aws;
use crate::cli::Cli;
use crate::drain::Drain;
use crate::edge::{self, ConnectionLimits, EdgeMetrics};
use crate::http::router;
use crate::knowledge;
use crate::metrics::Metrics;
use crate::preconnect::Parking;
use crate::realtime::WsBackend;
use crate::recording::{Recordings, S3};
use crate::secrets::{DEFAULT_SECRETS_DIR, SecretSource};
use crate::state::Sealing;
use crate::state::{AppState, Shared};
use crate::tenants::{Rotation, Tenants};
use crate::tools::{KnowledgeRunner, NoExternalTools, ToolRunner};
use crate::twilio::rest::TwilioRest;
use switchboard_store::queue::QueueMetrics;
use switchboard_store::{self as store, CallStore, SwappableStore, WriteBehind, WriteBehindConfig};

use crate::rotation::CallStoreUrl;

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
    /// The recordings directory or upload queue.
    #[error(transparent)]
    Recordings(#[from] crate::recording::RecordingError),
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
    sweeper: JoinHandle<()>,
    refresher: JoinHandle<()>,
    /// Keeps each encrypting tenant's reserve data key ([`crate::records::keep_reserves`]).
    reserves: JoinHandle<()>,
    /// Looks for post-call analyses that never finished ([`crate::records::analyses`]).
    analyses: JoinHandle<()>,
    shutdown: tokio::sync::watch::Sender<bool>,
    drain_timeout: Duration,
    drain_min: Duration,
}

impl Gateway {
    /// Loads tenants, opens the store, binds and starts serving.
    pub async fn start(cli: &Cli) -> Result<Self, StartError> {
        let secrets_dir = std::env::var_os("SWITCHBOARD_SECRETS_DIR")
            .map_or_else(|| PathBuf::from(DEFAULT_SECRETS_DIR), PathBuf::from);
        let aws = Arc::new(Aws::new(cli.aws.clone()));
        let secrets = SecretSource::new(secrets_dir, aws.clone());
        let rotation = Rotation {
            refresh_every: Duration::from_secs(cli.secrets_refresh_seconds.max(1)),
            grace: Duration::from_secs(cli.secret_rotation_grace_seconds),
            ..Rotation::default()
        };
        std::fs::create_dir_all(&cli.data_dir)?;
        let metrics = Metrics::new()?;
        let kbs = knowledge::read_manifests(&cli.knowledge)?;
        // Which knowledge bases each tenant's agent can search: every manifest loads or
        // the start fails, so the manifests say it before anything is opened.
        let knowledge_of = |tenant: &str| {
            kbs.iter()
                .filter(|kb| kb.spec.tenant == tenant)
                .map(|kb| kb.metadata.name.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        let tenants = Tenants::load(
            &cli.tenants,
            &cli.realtime_url,
            &secrets,
            &knowledge_of,
            cli.allow_unsigned_webhooks,
        )
        .await?;
        // A call store URL named in Secrets Manager is also where the operator's pgvector
        // tables are searched in place, so it is read before the knowledge bases open.
        let aws_url = match &cli.database_url {
            Some(_) => None,
            None => tenants.database_url_from_aws(&secrets).await?,
        };
        let knowledge = if kbs.is_empty() {
            None
        } else {
            let km = knowledge::KnowledgeMetrics::register(metrics.registry())?;
            let setup = knowledge::KnowledgeSetup {
                model_dir: cli.model_dir.as_deref(),
                data_dir: &cli.data_dir,
                database_url: cli.database_url.as_deref().or(aws_url.as_deref()),
                secrets: &secrets,
            };
            let loaded = knowledge::Knowledge::load_with(&kbs, setup, km)
                .await
                .map_err(|e| match e {
                    knowledge::KnowledgeError::NoModelDir => StartError::NoModelDir,
                    other => other.into(),
                })?;
            Some(Arc::new(loaded))
        };
        let tools: Arc<dyn ToolRunner> = match &knowledge {
            Some(k) => Arc::new(KnowledgeRunner(k.clone())),
            None => Arc::new(NoExternalTools),
        };
        let store_url = match (&cli.database_url, &aws_url) {
            (Some(url), _) | (None, Some(url)) => url.clone(),
            (None, None) => cli.store_url(),
        };
        // Every user of the store (the write-behind queue, the API) goes through the
        // swappable handle, so a rotated URL reaches them all.
        let swappable = Arc::new(SwappableStore::new(store::open(&store_url).await?));
        let call_store_url = aws_url.map(|url| CallStoreUrl::new(swappable.clone(), url));
        let store: Arc<dyn CallStore> = swappable;
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
                rejected: metrics.store_rejected.clone(),
            },
        )?;
        let s3 = Arc::new(
            S3::new(cli.aws.clone()).with_link_ttl(Duration::from_secs(cli.recording_link_seconds)),
        );
        let recordings_dir = cli
            .recordings_dir
            .clone()
            .unwrap_or_else(|| cli.data_dir.join("recordings"));
        let recordings = Arc::new(Recordings::start_with_dir(
            &cli.data_dir,
            &recordings_dir,
            s3,
            writer.clone(),
            metrics.registry(),
        )?);
        let listener = TcpListener::bind(cli.listen).await?;
        let addr = listener.local_addr()?;
        let public_base = match &cli.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{addr}"),
        };
        let drain = Arc::new(Drain::default());
        let analysis = Arc::new(crate::analysis::Analyzer::new(
            metrics.registry(),
            crate::analysis::RetryPolicy::default(),
            &cli.analysis_url,
        )?);
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
            drain: drain.clone(),
            tools,
            admissions: Admissions::new(
                Duration::from_secs(cli.stream_admission_seconds),
                cli.max_calls,
                drain,
            ),
            endings: Default::default(),
            access: crate::access::Access::new(cli.api_requests_per_second, cli.api_burst),
            recordings,
            secrets,
            rotation,
            aws,
            sealing: {
                let mut sealing = Sealing::new(cli.data_dir.join("sealing"));
                sealing.retry_for = Duration::from_secs(cli.seal_retry_seconds);
                sealing
            },
            twilio: TwilioRest::new(&cli.twilio_api_url)?,
            analysis,
            call_store_url,
            knowledge,
        });
        let refresher = tokio::spawn(refresh_secrets(state.clone()));
        let reserves = tokio::spawn(crate::records::keep_reserves(state.clone()));
        crate::records::resume_pending(&state);
        let analyses = tokio::spawn(crate::records::analyses::recover(state.clone()));
        let sweeper = tokio::spawn(sweep_recordings(state.clone()));
        let (shutdown, stop) = tokio::sync::watch::channel(false);
        let edge_metrics = EdgeMetrics::register(state.metrics.registry())?;
        let limits = ConnectionLimits::new(
            cli.serve.max_connections,
            cli.serve.max_connections_per_ip,
            cli.serve.trusted_proxies.clone(),
            edge_metrics.clone(),
        );
        let app = edge::layered(router(state.clone()), &cli.serve);
        let server = tokio::spawn(edge::serve(
            listener,
            app,
            cli.serve.clone(),
            limits,
            edge_metrics,
            stop,
        ));
        tracing::info!(%addr, public_url = state.public_base, tenants = state.tenants.all().count(), "gateway listening");
        Ok(Self {
            addr,
            state,
            server,
            writer_task,
            sweeper,
            shutdown,
            drain_timeout: Duration::from_secs(cli.drain_seconds),
            drain_min: cli.serve.drain_min(),
            refresher,
            reserves,
            analyses,
        })
    }

    /// Graceful shutdown: readiness goes false; the server keeps serving for at least
    /// `--drain-min-seconds` (load balancers still route here until the endpoint removal
    /// reaches them) and until every call has ended, answered calls whose stream has not
    /// opened yet included, or the drain deadline passes; then the server stops and
    /// queued records are flushed.
    pub async fn drain_and_stop(self) {
        let state = self.state.clone();
        let until = tokio::time::Instant::now() + self.drain_timeout;
        state.drain.start_draining();
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        tracing::info!(
            active_calls = state.drain.active(),
            min_s = self.drain_min.as_secs(),
            deadline_s = self.drain_timeout.as_secs(),
            "draining"
        );
        // Past the deadline calls are ended as they arrive: no point serving longer.
        tokio::time::sleep(self.drain_min.min(self.drain_timeout)).await;
        if tokio::time::timeout_at(deadline, state.drain.wait_idle())
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
        self.shutdown.send_replace(true);
        self.refresher.abort();
        self.reserves.abort();
        let _ = self.server.await;
        self.sweeper.abort();
        // Recordings of the calls just ended are queued; uploads go on within the
        // drain's deadline, the rest waits on disk for the next start.
        let left = state.recordings.drain(until).await;
        if left > 0 {
            tracing::warn!(
                recordings = left,
                "recordings left queued for the next start"
            );
        }
        // Records still waiting for KMS keep their files for the next start.
        state.sealing.stop();
        // Analyses still running are given back (claims released) for the next start or
        // another pod; a result already queued is flushed with the rest below.
        self.analyses.abort();
        crate::records::analyses::stop(&state).await;
        state.writer.clone().close(Duration::from_secs(30)).await;
        let _ = self.writer_task.await;
        tracing::info!("gateway stopped");
    }
}

/// Runs the recordings' retention sweeper every hour (the first sweep a minute after
/// start) for each tenant that keeps recordings for a limited time.
async fn sweep_recordings(state: AppState) {
    tokio::time::sleep(Duration::from_secs(60)).await;
    let sweeper = state.recordings.sweeper();
    loop {
        let now_s = crate::clock::unix_ms() / 1000;
        for tenant in state.tenants.all() {
            let Some(spec) = tenant.spec.recordings.as_ref() else {
                continue;
            };
            match sweeper.sweep(&tenant.name, spec, now_s).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    tenant = tenant.name,
                    deleted = n,
                    "expired recordings deleted"
                ),
                Err(e) => {
                    tracing::warn!(tenant = tenant.name, error = %e, "recording retention sweep failed; next in an hour")
                }
            }
        }
        tokio::time::sleep(crate::recording::retention::SWEEP_INTERVAL).await;
    }
}

/// Re-reads every tenant's secrets, the call store's database URL (when it came from
/// AWS Secrets Manager) and the knowledge bases' embedder and Pinecone keys every
/// `rotation.refresh_every` (a rotated secret is picked up without a restart).
async fn refresh_secrets(state: AppState) {
    let mut tick = tokio::time::interval(state.rotation.refresh_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: the secrets were just read.
    tick.tick().await;
    loop {
        tick.tick().await;
        for t in state.tenants.all() {
            match t.refresh(&state.secrets, state.rotation.grace).await {
                Ok(true) => state
                    .metrics
                    .secret_refreshes
                    .with_label_values(&["changed"])
                    .inc(),
                Ok(false) => {}
                Err(e) => {
                    state
                        .metrics
                        .secret_refreshes
                        .with_label_values(&["failed"])
                        .inc();
                    tracing::warn!(tenant = t.name, error = %e, "re-reading tenant secrets failed; keeping the ones loaded");
                }
            }
        }
        let count = |result: &str| {
            state
                .metrics
                .secret_refreshes
                .with_label_values(&[result])
                .inc()
        };
        if let Some(db) = &state.call_store_url {
            match db.refresh(&state.tenants, &state.secrets).await {
                Ok(Some(url)) => {
                    count("changed");
                    let lookups = state.knowledge.as_ref().map(|k| k.set_database_url(&url));
                    if let Some(Err(e)) = lookups {
                        count("failed");
                        tracing::warn!(error = %e, "the knowledge lookups could not follow the rotated database URL");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    count("failed");
                    tracing::warn!(error = %e, "re-reading the database URL failed; the current call store stays");
                }
            }
        }
        if let Some(k) = &state.knowledge {
            let (changed, failed) = k.refresh_keys(&state.secrets).await;
            if changed > 0 {
                count("changed");
            }
            for e in failed {
                count("failed");
                tracing::warn!(error = %e, "re-reading a knowledge base key failed; keeping the one loaded");
            }
        }
    }
}
