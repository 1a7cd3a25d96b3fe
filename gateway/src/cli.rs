//! The gateway's command line (a public interface: keep flags and variables stable).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::edge::ServeOptions;

/// Serve Twilio calls for one or more VoiceTenants through the OpenAI Realtime API.
#[derive(Debug, Clone, Parser)]
#[command(name = "gateway", version, about)]
pub struct Cli {
    /// VoiceTenant manifest(s) to serve (repeat the flag; the env var takes a comma list).
    #[arg(
        long = "tenant",
        env = "SWITCHBOARD_TENANT",
        value_delimiter = ',',
        required = true
    )]
    pub tenants: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Public base URL Twilio uses to reach this gateway (signatures are checked against
    /// it). Default: http://<listen>.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Realtime WebSocket URL for tenants that do not set `openai.realtimeUrl`
    /// (`?model=` is added).
    #[arg(
        long,
        env = "SWITCHBOARD_REALTIME_URL",
        default_value = "wss://api.openai.com/v1/realtime"
    )]
    pub realtime_url: String,
    /// Chat Completions base URL of post-call analysis for tenants whose `spec.analysis`
    /// sets no `baseUrl` (`/chat/completions` is added): the simulator's on a laptop.
    #[arg(
        long,
        env = "SWITCHBOARD_ANALYSIS_URL",
        default_value = switchboard_crds::DEFAULT_ANALYSIS_BASE_URL
    )]
    pub analysis_url: String,
    /// Directory for the embedded database and the write-behind spool.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Where finished recordings wait for their upload (`queue/`) and where recordings of
    /// tenants without a bucket are kept; default `<data dir>/recordings`. In a cluster a
    /// volume shared by the tenant's pods that outlives them (what one pod left, another
    /// uploads: entries are claimed, each is delivered once). Live calls' track files stay
    /// under the data directory; a finished WAV is copied across when this is another
    /// file system.
    #[arg(long, env = "SWITCHBOARD_RECORDINGS_DIR")]
    pub recordings_dir: Option<PathBuf>,
    /// Call store URL (`postgres://…` or `sqlite:…`). Default: SQLite in the data dir.
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Concurrent calls accepted before new calls get a busy signal.
    #[arg(long, env = "SWITCHBOARD_MAX_CALLS", default_value_t = 1000)]
    pub max_calls: usize,
    /// On SIGTERM, how long live calls may continue before they are ended, seconds.
    #[arg(long, env = "SWITCHBOARD_DRAIN_SECONDS", default_value_t = 3600)]
    pub drain_seconds: u64,
    /// How long a pre-connected Realtime session waits for its media stream, seconds.
    #[arg(long, env = "SWITCHBOARD_PRECONNECT_TTL_SECONDS", default_value_t = 15)]
    pub preconnect_ttl_seconds: u64,
    /// Turn off pre-connecting to the Realtime API on the webhook (for measurements).
    #[arg(long, env = "SWITCHBOARD_NO_PRECONNECT")]
    pub no_preconnect: bool,
    /// KnowledgeBase manifest(s) to ingest into the embedded store at start (laptop mode;
    /// repeat the flag, the env var takes a comma list).
    #[arg(
        long = "knowledge",
        env = "SWITCHBOARD_KNOWLEDGE",
        value_delimiter = ','
    )]
    pub knowledge: Vec<PathBuf>,
    /// Directory holding the all-MiniLM-L6-v2 model (model.safetensors, tokenizer.json,
    /// config.json) for the local embedder; `scripts/model.sh` fetches it and prints it.
    #[arg(long, env = "SWITCHBOARD_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Serve tenants that set `spec.twilio.validateSignatures: false` (laptop mode only).
    /// Without signatures anyone who can reach the gateway gets a media stream and spends
    /// the tenant's OpenAI key, so a gateway refuses to start with such a tenant unless
    /// this flag is given; the operator never sets it.
    #[arg(long, env = "SWITCHBOARD_ALLOW_UNSIGNED_WEBHOOKS")]
    pub allow_unsigned_webhooks: bool,
    /// How long the stream admission a webhook issues stays valid, seconds: Twilio opens
    /// the stream right after the TwiML, so a short window limits what a leaked token is
    /// worth.
    #[arg(
        long,
        env = "SWITCHBOARD_STREAM_ADMISSION_SECONDS",
        default_value_t = 60
    )]
    pub stream_admission_seconds: u64,
    /// Timeouts, connection caps and the drain window of the HTTP server.
    #[command(flatten)]
    pub serve: ServeOptions,
    /// Admin API (`/api/v1`): requests per second each API key may make on average.
    #[arg(
        long,
        env = "SWITCHBOARD_API_REQUESTS_PER_SECOND",
        default_value_t = 10
    )]
    pub api_requests_per_second: u32,
    /// Admin API: requests an API key may make in a burst above its average.
    #[arg(long, env = "SWITCHBOARD_API_BURST", default_value_t = 50)]
    pub api_burst: u32,
    /// How often tenant secrets are re-read (Secrets Manager, mounted files), seconds: a
    /// rotated secret is used without a restart. A failed Twilio signature also triggers
    /// a re-read (at most every 10 s per tenant).
    #[arg(
        long,
        env = "SWITCHBOARD_SECRETS_REFRESH_SECONDS",
        default_value_t = 60
    )]
    pub secrets_refresh_seconds: u64,
    /// After a re-read replaced a tenant's Twilio auth token, how long the previous token
    /// is still accepted, seconds (requests Twilio signed before the switch).
    #[arg(
        long,
        env = "SWITCHBOARD_SECRET_ROTATION_GRACE_SECONDS",
        default_value_t = 300
    )]
    pub secret_rotation_grace_seconds: u64,
    /// For tenants with `spec.encryption`: how long a finished call's record waits for KMS
    /// (retrying with backoff) before its transcript and tool calls are dropped and only
    /// the rest is stored, seconds. Meanwhile the plaintext is only in memory.
    #[arg(long, env = "SWITCHBOARD_SEAL_RETRY_SECONDS", default_value_t = 600)]
    pub seal_retry_seconds: u64,
    /// Admin API: how long the presigned S3 link answered for a recording stays valid,
    /// seconds (at most 900: a link works for anyone holding it until it expires).
    #[arg(
        long,
        env = "SWITCHBOARD_RECORDING_LINK_SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..=900)
    )]
    pub recording_link_seconds: u64,
    /// AWS overrides (endpoint, region, static credentials) for in-process tests; a
    /// deployed gateway leaves them empty and uses the SDK's default chain and its
    /// `AWS_ENDPOINT_URL*` variables.
    #[arg(skip)]
    pub aws: switchboard_aws::AwsOptions,
    /// Base URL of Twilio's REST API (call control: moving a call to `<Dial>`, hanging
    /// up); point it at a simulator for tests.
    #[arg(
        long,
        env = "SWITCHBOARD_TWILIO_API_URL",
        default_value = crate::twilio::rest::DEFAULT_API_URL
    )]
    pub twilio_api_url: String,
}

impl Cli {
    /// The public base URL, without a trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// The call store URL.
    pub fn store_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("switchboard.db").display()))
    }
}
