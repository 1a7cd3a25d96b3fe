//! Shared harness of the end-to-end tests: a real gateway (in-process, real sockets on
//! loopback) serving one tenant, the Realtime simulator it talks to, and helpers to place
//! simulated calls and read back what the gateway recorded.

pub mod knowledge;
pub mod kube;
pub mod operator;
pub mod s3;
pub mod services;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use switchboard_gateway::cli::Cli;
use switchboard_gateway::edge::ServeOptions;
use switchboard_gateway::server::Gateway;
use switchboard_sim::caller::scenario::{Scenario, ScenarioRun};
use switchboard_sim::caller::{CallConfig, SignatureMode, Step};
use switchboard_sim::realtime::{RealtimeConfig, RealtimeSim};
use switchboard_sim::twilio_rest::TwilioRestSim;
use switchboard_store::CallRecord;

/// The tenant's Twilio account.
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// The tenant's number.
pub const NUMBER: &str = "+15005550006";
/// The tenant's Twilio auth token.
pub const AUTH_TOKEN: &str = "e2e-auth-token-0123456789";
/// The tenant's admin API key (`spec.console.apiKeys`, name `test`).
pub const API_KEY: &str = "e2e-api-key-0123456789abcdef0123456789abcdef";
/// The greeting.
pub const GREETING: &str = "Thanks for calling Demo Dental, how can I help?";

/// How an [`Env`] is set up.
#[derive(Debug, Clone)]
pub struct EnvOptions {
    /// Realtime simulator behaviour.
    pub realtime: RealtimeConfig,
    /// Greeting and whether it may be interrupted; `None` for no greeting.
    pub greeting: Option<(String, bool)>,
    /// Call store (`None` = SQLite in the temp dir).
    pub database_url: Option<String>,
    /// `--max-calls`.
    pub max_calls: usize,
    /// `--no-preconnect`.
    pub no_preconnect: bool,
    /// Extra YAML lines under `spec.agent` (indented by 4 spaces).
    pub agent_extra: String,
    /// `--preconnect-ttl-seconds`.
    pub preconnect_ttl_seconds: u64,
    /// `--knowledge` manifests.
    pub knowledge: Vec<PathBuf>,
    /// Extra YAML lines under `spec.twilio` (indented by 4 spaces).
    pub twilio_extra: String,
    /// `--allow-unsigned-webhooks`.
    pub allow_unsigned_webhooks: bool,
    /// `--stream-admission-seconds`.
    pub stream_admission_seconds: u64,
    /// `--realtime-url` instead of the simulator's (e.g. a closed port: OpenAI unreachable).
    pub realtime_url: Option<String>,
    /// The HTTP server's timeouts, caps and drain window (the flags' defaults, except no
    /// minimum drain window: stopping a test gateway need not wait for load balancers).
    pub serve: ServeOptions,
    /// Extra YAML lines under `spec` (indented by 2 spaces), e.g. `pricing`.
    pub spec_extra: String,
    /// `--api-requests-per-second` (default 10).
    pub api_requests_per_second: Option<u32>,
    /// `--api-burst` (default 50).
    pub api_burst: Option<u32>,
    /// AWS SDK overrides of the gateway (moto's endpoint and keys).
    pub aws: switchboard_aws::AwsOptions,
    /// `--drain-seconds`.
    pub drain_seconds: u64,
    /// The `authToken` and `apiKey` references (YAML flow maps) instead of the files the
    /// harness writes (e.g. `{ awsSecretsManager: { secretId: s, key: twilio } }`).
    pub secret_refs: Option<(String, String)>,
    /// `--secrets-refresh-seconds`.
    pub secrets_refresh_seconds: u64,
    /// `--secret-rotation-grace-seconds`.
    pub secret_rotation_grace_seconds: u64,
    /// `--seal-retry-seconds`.
    pub seal_retry_seconds: u64,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            realtime: RealtimeConfig::default(),
            greeting: Some((GREETING.to_string(), true)),
            database_url: None,
            max_calls: 1000,
            no_preconnect: false,
            agent_extra: String::new(),
            preconnect_ttl_seconds: 15,
            knowledge: Vec::new(),
            twilio_extra: String::new(),
            allow_unsigned_webhooks: false,
            stream_admission_seconds: 60,
            realtime_url: None,
            serve: ServeOptions {
                drain_min_seconds: 0,
                ..ServeOptions::default()
            },
            spec_extra: String::new(),
            api_requests_per_second: None,
            api_burst: None,
            aws: Default::default(),
            drain_seconds: 60,
            secret_refs: None,
            secrets_refresh_seconds: 60,
            secret_rotation_grace_seconds: 300,
            seal_retry_seconds: 600,
        }
    }
}

/// A gateway and its Realtime simulator.
pub struct Env {
    /// The running gateway (taken by [`Env::stop_gateway`]).
    pub gateway: Option<Gateway>,
    /// The simulator.
    pub realtime: RealtimeSim,
    /// The Twilio REST simulator the gateway's `--twilio-api-url` points at; calls
    /// placed with [`Env::call`] follow its updates.
    pub twilio: TwilioRestSim,
    /// Data dir, tenant file, secrets.
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The CLI the gateway was started with (to restart it).
    pub cli: Cli,
}

/// Installs the TLS provider and a test log subscriber (once).
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Written in [`EnvOptions::spec_extra`], it becomes the same reference (YAML flow map)
/// the tenant's `spec.openai.apiKey` has, e.g. `analysis: { apiKey: $OPENAI_KEY_REF }`
/// (an analysis against a simulator must name its key: the OpenAI key is lent only to
/// OpenAI's own host).
pub const OPENAI_KEY_REF: &str = "$OPENAI_KEY_REF";

/// The tenant manifest used by the tests.
pub fn tenant_yaml(dir: &std::path::Path, opts: &EnvOptions) -> String {
    let greeting = match &opts.greeting {
        Some((text, interruptible)) => {
            format!("    greeting:\n      text: {text:?}\n      interruptible: {interruptible}\n")
        }
        None => String::new(),
    };
    let (token_ref, key_ref) = opts.secret_refs.clone().unwrap_or_else(|| {
        (
            format!(
                "{{ file: {:?} }}",
                dir.join("twilio-token").display().to_string()
            ),
            format!(
                "{{ file: {:?} }}",
                dir.join("openai-key").display().to_string()
            ),
        )
    });
    format!(
        "apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata:
  name: demo
spec:
  displayName: Demo Dental
  phoneNumbers: [\"{NUMBER}\"]
  agent:
    instructions: You are the receptionist of Demo Dental.
{greeting}{extra}  twilio:
    accountSid: {ACCOUNT_SID}
    authToken: {token}
{twilio_extra}  openai:
    apiKey: {key}
  console:
    apiKeys:
      - name: test
        secret:
          file: {api_key}
{spec_extra}",
        extra = opts.agent_extra,
        twilio_extra = opts.twilio_extra,
        spec_extra = opts.spec_extra.replace(OPENAI_KEY_REF, &key_ref),
        token = token_ref,
        key = key_ref,
        api_key = dir.join("api-key").display(),
    )
}

impl Env {
    /// Starts the simulator and a gateway on free loopback ports.
    pub async fn start(opts: EnvOptions) -> anyhow::Result<Env> {
        init();
        let dir = tempfile::tempdir()?;
        let realtime =
            RealtimeSim::start(SocketAddr::from(([127, 0, 0, 1], 0)), opts.realtime.clone())
                .await?;
        std::fs::write(dir.path().join("twilio-token"), AUTH_TOKEN)?;
        std::fs::write(dir.path().join("openai-key"), "sk-test-e2e")?;
        std::fs::write(dir.path().join("api-key"), API_KEY)?;
        let tenant = dir.path().join("demo.yaml");
        std::fs::write(&tenant, tenant_yaml(dir.path(), &opts))?;
        let twilio = TwilioRestSim::default();
        twilio.allow(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN);
        let (rest_addr, _) = twilio.serve(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let cli = Cli {
            tenants: vec![tenant],
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            realtime_url: opts.realtime_url.clone().unwrap_or_else(|| realtime.url()),
            analysis_url: switchboard_crds::DEFAULT_ANALYSIS_BASE_URL.into(),
            data_dir: dir.path().join("data"),
            recordings_dir: None,
            database_url: opts.database_url.clone(),
            max_calls: opts.max_calls,
            drain_seconds: opts.drain_seconds,
            preconnect_ttl_seconds: opts.preconnect_ttl_seconds,
            no_preconnect: opts.no_preconnect,
            knowledge: opts.knowledge.clone(),
            model_dir: std::env::var_os("SWITCHBOARD_MODEL_DIR").map(PathBuf::from),
            allow_unsigned_webhooks: opts.allow_unsigned_webhooks,
            stream_admission_seconds: opts.stream_admission_seconds,
            serve: opts.serve.clone(),
            api_requests_per_second: opts.api_requests_per_second.unwrap_or(10),
            api_burst: opts.api_burst.unwrap_or(50),
            secrets_refresh_seconds: opts.secrets_refresh_seconds,
            secret_rotation_grace_seconds: opts.secret_rotation_grace_seconds,
            seal_retry_seconds: opts.seal_retry_seconds,
            recording_link_seconds: 300,
            aws: opts.aws.clone(),
            twilio_api_url: format!("http://{rest_addr}"),
        };
        let gateway = Gateway::start(&cli).await?;
        let base = format!("http://{}", gateway.addr);
        Ok(Env {
            gateway: Some(gateway),
            realtime,
            twilio,
            dir,
            base,
            cli,
        })
    }

    /// `sim call --scenario NAME`'s code path ([`Scenario::run`]) against a new gateway
    /// serving the scenario's model (`sim realtime --scenario NAME`) with the tenant
    /// settings it names, the record read back through `/api/v1`. Panics (with the run)
    /// when the scenario did not pass or no record was read.
    pub async fn scenario_passes(scenario: Scenario) -> anyhow::Result<(Env, ScenarioRun)> {
        let env = Env::start(EnvOptions {
            realtime: scenario.realtime(),
            agent_extra: scenario.agent_yaml().into(),
            ..EnvOptions::default()
        })
        .await?;
        let run = scenario.run(env.call(Vec::new()), Some(API_KEY)).await?;
        assert!(
            run.record.is_some(),
            "{}: no record read back",
            scenario.name()
        );
        assert!(
            run.passed(),
            "{}: {:#?}\n{:#?}\n{:#?}",
            scenario.name(),
            run.failed,
            run.report,
            run.record
        );
        Ok((env, run))
    }

    /// A call to the tenant's number following `script`.
    pub fn call(&self, script: Vec<Step>) -> CallConfig {
        CallConfig {
            gateway: self.base.clone(),
            account_sid: ACCOUNT_SID.into(),
            auth_token: AUTH_TOKEN.into(),
            to: NUMBER.into(),
            script,
            signature: SignatureMode::Valid,
            rest: Some(self.twilio.clone()),
            ..CallConfig::default()
        }
    }

    /// The gateway (panics after [`Env::stop_gateway`]).
    pub fn gw(&self) -> &Gateway {
        self.gateway.as_ref().expect("gateway running")
    }

    /// Waits until the gateway's store has the finished record of `call_sid`.
    pub async fn record(&self, call_sid: &str) -> anyhow::Result<CallRecord> {
        finished_record(self.gw(), call_sid).await
    }

    /// Waits until the record of `call_sid` names its stored recording (uploaded, or
    /// moved into the data directory), 30 s at most.
    pub async fn recording(
        &self,
        call_sid: &str,
    ) -> anyhow::Result<switchboard_store::RecordingRef> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(r)) = self.gw().state.store.get_call(call_sid).await
                && let Some(rec) = r.recording
            {
                return Ok(rec);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("no recording on the record of {call_sid} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The gateway's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.gw().state.metrics.render()
    }

    /// Drains and stops the gateway.
    pub async fn stop_gateway(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.drain_and_stop().await;
        }
    }

    /// Path of the data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.cli.data_dir.clone()
    }
}

/// Waits until `gateway`'s store has the finished record of `call_sid`.
async fn finished_record(gateway: &Gateway, call_sid: &str) -> anyhow::Result<CallRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(r)) = gateway.state.store.get_call(call_sid).await
            && r.outcome.is_some()
        {
            return Ok(r);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("no finished record of {call_sid} within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A second replica of the [`Env`]'s gateway: the same tenant (same auth token), the same
/// public URL (Twilio signs that URL whichever pod the load balancer picks), the same
/// Realtime simulator, its own port, data directory and in-process state. A stream URL
/// from the first gateway's TwiML reaches this replica through [`Replica::route`].
pub struct Replica {
    /// The running replica.
    pub gateway: Gateway,
    /// `http://127.0.0.1:PORT` of this replica (not its public URL).
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Env {
    /// Starts a second replica of this gateway; `adjust` changes its CLI (e.g.
    /// `max_calls`). Its store is SQLite in its own directory unless the [`Env`] uses a
    /// database URL, which the replica then shares.
    pub async fn start_replica(&self, adjust: impl FnOnce(&mut Cli)) -> anyhow::Result<Replica> {
        let dir = tempfile::tempdir()?;
        let mut cli = self.cli.clone();
        cli.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        cli.public_url = Some(self.base.clone());
        cli.data_dir = dir.path().join("data");
        adjust(&mut cli);
        let gateway = Gateway::start(&cli).await?;
        let base = format!("http://{}", gateway.addr);
        Ok(Replica {
            gateway,
            base,
            _dir: dir,
        })
    }
}

impl Replica {
    /// `url` (a stream URL of the shared public address) with its host and port replaced
    /// by this replica's: where the load balancer sends the connection.
    pub fn route(&self, url: &str) -> String {
        let (_, rest) = url.split_once("://").unwrap_or(("ws", url));
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        format!("{}{path}", self.base.replace("http://", "ws://"))
    }

    /// The replica's `/metrics` text.
    pub fn metrics(&self) -> String {
        self.gateway.state.metrics.render()
    }

    /// Waits until the replica's store has the finished record of `call_sid`.
    pub async fn record(&self, call_sid: &str) -> anyhow::Result<CallRecord> {
        finished_record(&self.gateway, call_sid).await
    }
}

/// The value of a metric line `name{labels} value` (0 when absent).
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// A raw WebSocket client stream (for hostile tests).
pub type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Env {
    /// Sends a correctly signed incoming-call webhook for `call_sid`; returns the HTTP
    /// status and the TwiML.
    pub async fn webhook(&self, call_sid: &str) -> anyhow::Result<(u16, String)> {
        let url = format!("{}/twilio/voice", self.base);
        let params: Vec<(String, String)> = [
            ("CallSid", call_sid),
            ("AccountSid", ACCOUNT_SID),
            ("From", "+15551230000"),
            ("To", NUMBER),
            ("CallStatus", "ringing"),
            ("ApiVersion", "2010-04-01"),
            ("Direction", "inbound"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sig = switchboard_sim::caller::twilio_signature(AUTH_TOKEN, &url, &params);
        let resp = switchboard_sim::caller::http_client()?
            .post(&url)
            .header("X-Twilio-Signature", sig)
            .form(&params)
            .send()
            .await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }

    /// Opens the media stream WebSocket at `url` with `signature` (None = no header).
    pub async fn raw_stream(
        &self,
        url: &str,
        signature: Option<String>,
    ) -> Result<RawWs, Box<tokio_tungstenite::tungstenite::Error>> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().map_err(Box::new)?;
        if let Some(sig) = signature
            && let Ok(v) = sig.parse()
        {
            req.headers_mut().insert("x-twilio-signature", v);
        }
        tokio_tungstenite::connect_async(req)
            .await
            .map(|(ws, _)| ws)
            .map_err(Box::new)
    }
}

impl Env {
    /// Answers a signed webhook for `call_sid` and opens its media stream with a valid
    /// handshake signature; returns the socket and the stream's custom parameters (for
    /// [`start_message`], which is not sent).
    pub async fn answer_and_open_stream(
        &self,
        call_sid: &str,
    ) -> anyhow::Result<(RawWs, std::collections::BTreeMap<String, String>)> {
        let (_, twiml) = self.webhook(call_sid).await?;
        let (url, params) = stream_target(&twiml)?;
        let sig = switchboard_sim::caller::twilio_signature(AUTH_TOKEN, &url, &[]);
        let ws = self.raw_stream(&url, Some(sig)).await?;
        Ok((ws, params))
    }
}

/// The stream URL and parameters of a `<Connect><Stream>` TwiML answer.
pub fn stream_target(
    twiml: &str,
) -> anyhow::Result<(String, std::collections::BTreeMap<String, String>)> {
    match switchboard_sim::caller::parse_twiml(twiml)? {
        switchboard_sim::caller::Twiml::Connect(t) => Ok((t.url, t.parameters)),
        switchboard_sim::caller::Twiml::Refused(why) => anyhow::bail!("refused: {why}"),
    }
}

/// A Twilio `start` message.
pub fn start_message(
    stream_sid: &str,
    call_sid: &str,
    params: &std::collections::BTreeMap<String, String>,
) -> String {
    serde_json::json!({
        "event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
        "start": {"accountSid": ACCOUNT_SID, "streamSid": stream_sid, "callSid": call_sid,
                  "tracks": ["inbound"], "customParameters": params,
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
    })
    .to_string()
}

/// The test Postgres URL ([`services::postgres`]) with a fresh schema as search path, or
/// `None` (after the gate's notice) when no Postgres was started.
///
/// # Panics
/// When no Postgres was started under `CI=true`.
pub fn pg_url(schema_hint: &str) -> Option<String> {
    let base = services::postgres()?;
    let schema = format!("t_{schema_hint}_{:08x}", rand_u32());
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// `url` with its host:port replaced by `addr` (to route through a [`Proxy`]).
pub fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (auth_host, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let auth = auth_host
        .rsplit_once('@')
        .map(|(a, _)| format!("{a}@"))
        .unwrap_or_default();
    format!("{scheme}://{auth}{addr}/{tail}")
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// A TCP proxy on loopback that can be cut (existing connections dropped, new ones
/// refused) and restored: a database that goes away and comes back.
pub struct Proxy {
    /// Where clients connect.
    pub addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    /// Starts forwarding to `target` (`host:port`).
    pub async fn start(target: String) -> anyhow::Result<Proxy> {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (up2, gen2) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::Acquire) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut cut = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            up,
            generation,
        })
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::Release);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::Release);
    }
}
