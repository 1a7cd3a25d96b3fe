//! `sim`: protocol-faithful stand-ins for Twilio and the OpenAI Realtime API.
//!
//! - `sim realtime` serves the Realtime simulator until Ctrl-C.
//! - `sim call` places one simulated Twilio call against a gateway and prints what the
//!   caller heard, then the gateway's own record of the call.
//! - `sim load` places many concurrent calls and measures the relay (gateway or floor).
//! - `sim floor` serves the calibration relay.
//! - `sim kubeapi` serves a Kubernetes API server for operator tests.
//! - `sim pinecone` serves the Pinecone API simulator.
//! - `sim chat` serves the OpenAI Chat Completions simulator (post-call analysis).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use switchboard_sim::caller::scenario::Scenario;
use switchboard_sim::caller::{self, CallConfig, CallReport, SignatureMode};
use switchboard_sim::realtime::{RealtimeConfig, RealtimeSim};
use switchboard_sim::twilio_rest::TwilioRestSim;

#[derive(Debug, Parser)]
#[command(
    name = "sim",
    version,
    about = "Simulated Twilio callers and OpenAI Realtime server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the OpenAI Realtime (GA) simulator until Ctrl-C.
    Realtime(RealtimeArgs),
    /// Place one simulated Twilio call against a gateway and report it.
    Call(CallArgs),
    /// Place many concurrent calls through a relay (gateway or floor) and measure it.
    Load(LoadArgs),
    /// Serve the calibration floor relay (no logic) until Ctrl-C.
    Floor(FloorArgs),
    /// Serve the simulated Kubernetes API server until Ctrl-C.
    Kubeapi(KubeapiArgs),
    /// Serve the Pinecone API simulator (control plane; each index gets its own port).
    Pinecone(PineconeArgs),
    /// Serve the OpenAI Chat Completions simulator (post-call analysis) until Ctrl-C.
    Chat(ChatArgs),
}

#[derive(Debug, Args)]
struct ChatArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8200")]
    listen: SocketAddr,
    /// The API key clients must send as `Authorization: Bearer …`.
    #[arg(
        long,
        env = "OPENAI_API_KEY",
        default_value = "sk-sim",
        hide_env_values = true
    )]
    api_key: String,
}

#[derive(Debug, Args)]
struct PineconeArgs {
    /// Control-plane address (index data planes bind the same IP, on free ports).
    #[arg(long, default_value = "127.0.0.1:8100")]
    listen: SocketAddr,
    /// The API key clients must send as `Api-Key`.
    #[arg(
        long,
        env = "PINECONE_API_KEY",
        default_value = "pcsk-sim",
        hide_env_values = true
    )]
    api_key: String,
    /// Milliseconds a new index stays initialising before it is ready.
    #[arg(long, default_value_t = 0)]
    ready_delay_ms: u64,
    /// Host name advertised in index hosts [default: the listen IP].
    #[arg(long)]
    advertise_host: Option<String>,
}

#[derive(Debug, Args)]
struct RealtimeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Simulator configuration (script, pacing, faults); defaults when absent.
    #[arg(long, conflicts_with = "scenario")]
    config: Option<PathBuf>,
    /// Serve the model side of a call-control scenario (see `sim call --scenario`).
    #[arg(long, value_parser = parse_scenario)]
    scenario: Option<Scenario>,
}

fn parse_scenario(name: &str) -> Result<Scenario, String> {
    Scenario::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        format!("unknown scenario; one of: {}", names.join(", "))
    })
}

#[derive(Debug, Args)]
struct KubeapiArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Do not stand in for the deployment controller (Deployments get no status).
    #[arg(long)]
    no_workloads: bool,
    /// Changes kept for watches that resume (older resourceVersions get 410 Expired).
    #[arg(long, default_value_t = 10_000)]
    history: usize,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Relay base URL (the gateway or the floor); webhooks go to `{gateway}/twilio/voice`.
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    gateway: String,
    /// Called number (the tenant's number).
    #[arg(long, default_value = "+15005550006")]
    to: String,
    /// AccountSid of the account that owns the number.
    #[arg(long)]
    account_sid: String,
    /// Auth token: signs every webhook and stream handshake.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    auth_token: String,
    /// Where the in-process Realtime responder listens (the relay's Realtime URL).
    #[arg(long, default_value = "127.0.0.1:18081")]
    realtime_listen: SocketAddr,
    /// Concurrent calls.
    #[arg(long, default_value_t = 50)]
    calls: usize,
    /// Seconds of media per call.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds over which calls are started [default: min(calls/50, 10)].
    #[arg(long)]
    ramp: Option<f64>,
    /// The relay's process id: its CPU and RSS are measured.
    #[arg(long)]
    pid: Option<u32>,
    /// Delay before the responder answers each Realtime handshake, ms (a real connect to
    /// OpenAI takes a few hundred).
    #[arg(long, default_value_t = 0)]
    realtime_delay_ms: u64,
    /// Delay between the TwiML answer and opening the media stream, ms (Twilio's own).
    #[arg(long, default_value_t = 0)]
    stream_delay_ms: u64,
    /// The responder starts talking on `session.updated` instead of on `response.create`.
    #[arg(long)]
    talk_on_session_updated: bool,
    /// How far ahead of real time the responder's audio runs, ms: the real API generates
    /// faster than playout, so Twilio holds that much of each call's audio ahead.
    #[arg(long, default_value_t = 0)]
    lead_ms: u64,
    /// Label copied into the report (e.g. `floor`, `gateway`).
    #[arg(long)]
    label: Option<String>,
}

#[derive(Debug, Args)]
struct FloorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18090")]
    listen: SocketAddr,
    /// Realtime WebSocket URL (`?model=` is added).
    #[arg(long, default_value = "ws://127.0.0.1:18081/v1/realtime")]
    realtime_url: String,
    /// Model for `?model=`.
    #[arg(long, default_value = "gpt-realtime")]
    model: String,
    /// Bearer key for the Realtime endpoint.
    #[arg(
        long,
        env = "OPENAI_API_KEY",
        default_value = "sk-floor",
        hide_env_values = true
    )]
    api_key: String,
    /// Keep the stack's socket defaults (Nagle's algorithm on, 128 KiB WebSocket read
    /// buffers) instead of tuning them, to measure what they cost a relay.
    #[arg(long)]
    stack_defaults: bool,
}

#[derive(Debug, Args)]
struct CallArgs {
    /// Gateway base URL; the webhook goes to `{gateway}/twilio/voice`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Called number (the tenant's number).
    #[arg(long)]
    to: String,
    /// Caller number.
    #[arg(long, default_value = "+15551230000")]
    from: String,
    /// AccountSid of the account that owns the number.
    #[arg(long, default_value = "AC00000000000000000000000000000000")]
    account_sid: String,
    /// Auth token: signs the webhook and the stream.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    auth_token: String,
    /// The tenant's admin API key: the call's record is read from
    /// `GET /api/v1/calls/{CallSid}` with it (not fetched without one).
    #[arg(long, env = "DEMO_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Interrupt the agent's answer after 800 ms.
    #[arg(long)]
    barge_in: bool,
    /// Press this key after the answer.
    #[arg(long)]
    dtmf: Option<char>,
    /// Print the call report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Run a call-control scenario (transfer-answered, transfer-unanswered, end-call,
    /// silence, openai-drop, session-limit, reconnects-exhausted, max-duration,
    /// gateway-killed) instead of the default conversation, and exit non-zero when the
    /// call did not go as it says. Needs the model side (`sim realtime --scenario NAME`),
    /// `--rest-listen` for transfers and goodbyes, the tenant settings of
    /// docs/getting-started.md for some, and `--kill-pid` for gateway-killed.
    #[arg(long, value_parser = parse_scenario)]
    scenario: Option<Scenario>,
    /// gateway-killed: the gateway's process id, killed with SIGKILL mid-call.
    #[arg(long)]
    kill_pid: Option<u32>,
    /// Serve the Twilio REST simulator here for the call (point the gateway's
    /// `--twilio-api-url` at it): REST updates and hang-ups reach the simulated call.
    #[arg(long)]
    rest_listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Realtime(args) => serve_realtime(args).await.map(|()| true),
        Command::Call(args) => call(args).await,
        Command::Load(args) => load(args).await,
        Command::Floor(args) => serve_floor(args).await.map(|()| true),
        Command::Kubeapi(args) => serve_kubeapi(args).await.map(|()| true),
        Command::Pinecone(args) => serve_pinecone(args).await.map(|()| true),
        Command::Chat(args) => serve_chat(args).await.map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sim: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn serve_realtime(args: RealtimeArgs) -> Result<()> {
    let cfg = match (&args.config, args.scenario) {
        (_, Some(s)) => s.realtime(),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_realtime_config(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        (None, None) => RealtimeConfig::default(),
    };
    let sim = RealtimeSim::start(args.listen, cfg)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    println!("realtime simulator listening at {}", sim.url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

fn parse_realtime_config(text: &str) -> Result<RealtimeConfig> {
    // YAML is a superset of JSON, so one parser takes both.
    Ok(serde_saphyr::from_str(text)?)
}

/// Places the call, prints the report and the gateway's record; `Ok(false)` when the call
/// failed or broke the protocol.
async fn call(args: CallArgs) -> Result<bool> {
    let rest = match args.rest_listen {
        Some(addr) => {
            let sim = TwilioRestSim::default();
            sim.allow(&args.account_sid, &args.account_sid, &args.auth_token);
            sim.serve(addr)
                .await
                .with_context(|| format!("serving the Twilio REST simulator on {addr}"))?;
            Some(sim)
        }
        None => None,
    };
    let cfg = CallConfig {
        gateway: args.gateway.trim_end_matches('/').to_owned(),
        account_sid: args.account_sid,
        auth_token: args.auth_token,
        from: args.from,
        to: args.to,
        call_sid: None,
        script: caller::default_script(args.barge_in, args.dtmf),
        signature: SignatureMode::Valid,
        connect_timeout: Duration::from_secs(10),
        record_audio: false,
        rest,
        ..CallConfig::default()
    };
    if let Some(scenario) = args.scenario {
        let kill = args
            .kill_pid
            .map(|pid| -> switchboard_sim::caller::scenario::Kill {
                Box::new(move || {
                    let status = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status()
                        .map_err(|e| format!("kill -KILL {pid}: {e}"))?;
                    if status.success() {
                        Ok(())
                    } else {
                        Err(format!("kill -KILL {pid}: {status}"))
                    }
                })
            });
        let run = scenario
            .run_killing(cfg.clone(), args.api_key.as_deref(), kill)
            .await
            .with_context(|| format!("calling {} via {}", cfg.to, cfg.gateway))?;
        if args.json {
            let out = serde_json::json!({
                "scenario": scenario.name(),
                "report": run.report,
                "gateway_record": run.record,
                "failed": run.failed,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print_report(&run.report);
            if let Some(v) = &run.record {
                print_transcript(v);
            }
            if run.passed() {
                println!("scenario {}: passed", scenario.name());
            } else {
                println!("scenario {}: FAILED", scenario.name());
                for f in &run.failed {
                    println!("  - {f}");
                }
            }
        }
        return Ok(run.passed());
    }
    let report = caller::place_call(&cfg)
        .await
        .with_context(|| format!("calling {} via {}", cfg.to, cfg.gateway))?;
    let record = match (&report.stream_sid, &args.api_key) {
        (Some(_), Some(key)) => Some(fetch_record(&cfg, key, &report.call_sid).await?),
        (Some(_), None) => {
            eprintln!("no --api-key (DEMO_API_KEY): the gateway's record is not fetched");
            None
        }
        (None, _) => None,
    };
    if args.json {
        let record = match &record {
            Some(Record::Found(v)) => v.clone(),
            Some(Record::Missing) | None => Value::Null,
            Some(Record::Failed(status, body)) => {
                serde_json::json!({"status": status, "body": body})
            }
        };
        let out = serde_json::json!({"report": report, "gateway_record": record});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_report(&report);
        match &record {
            Some(Record::Found(v)) => print_transcript(v),
            Some(Record::Missing) => {
                println!("gateway record: none yet for {} (404)", report.call_sid);
            }
            Some(Record::Failed(status, body)) => {
                println!("gateway record: HTTP {status} {}", body.trim());
            }
            None => {}
        }
    }
    Ok(report.is_clean())
}

/// What `GET /api/v1/calls/{CallSid}` gave.
enum Record {
    Found(Value),
    /// Still 404 after the retries.
    Missing,
    /// Any other non-2xx status, with the body.
    Failed(u16, String),
}

fn print_report(r: &CallReport) {
    println!("call {}", r.call_sid);
    println!("  webhook: HTTP {}", r.webhook_status);
    if let Some(why) = &r.refused {
        println!("  refused: {why}");
    }
    if let (Some(sid), Some(url)) = (&r.stream_sid, &r.stream_url) {
        println!("  stream:  {sid} at {url}");
    }
    if !r.custom_parameters.is_empty() {
        let params: Vec<String> = r
            .custom_parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("  parameters: {}", params.join(", "));
    }
    if let Some(ms) = r.setup_ms {
        println!("  setup:   {ms:.0} ms (webhook sent -> first agent audio)");
    }
    if r.stream_sid.is_some() {
        println!(
            "  stream:  {:.1} s, {} frames sent, {} dropped, ended by {}",
            r.stream_ms as f64 / 1000.0,
            r.frames_sent,
            r.frames_dropped,
            if r.ended_by_gateway {
                "gateway"
            } else {
                "caller"
            }
        );
        println!(
            "  heard:   {} ms of agent audio in {} turn(s); marks {} received / {} echoed; clears {}",
            r.heard_ms_total,
            r.turns.len(),
            r.marks_received,
            r.marks_echoed,
            r.clears
        );
    }
    for (i, t) in r.turns.iter().enumerate() {
        let mut line = format!(
            "    turn {} at {:.2} s: heard {} ms",
            i + 1,
            t.start_ms as f64 / 1000.0,
            t.heard_ms
        );
        if let Some(at) = t.heard_ms_at_barge_in {
            line.push_str(&format!(", caller talked over it at {at} ms"));
        }
        if let Some(at) = t.heard_ms_at_clear {
            line.push_str(&format!(", cut by clear at {at} ms"));
        }
        println!("{line}");
    }
    for why in &r.script_timeouts {
        println!("  script timeout: {why}");
    }
    // What Twilio ran once the stream was over (the fallback, a transfer, a hang-up).
    for said in &r.heard_after_stream {
        println!("  after the stream, heard: {said}");
    }
    for d in &r.dials {
        println!("  after the stream, dialled {}: {}", d.to, d.status);
    }
    if r.rest_hangup {
        println!("  hung up through the REST API");
    } else if r.hangup_after_stream {
        println!("  hung up after the stream");
    }
    if r.violations.is_empty() {
        println!("  violations: none");
    } else {
        println!("  violations ({}):", r.violations.len());
        for v in &r.violations {
            println!("    - {v}");
        }
    }
}

/// Fetches the gateway's record of the call. The gateway writes it behind the call, so a
/// 404 or a record without an outcome yet is retried for a few seconds before it counts as missing.
async fn fetch_record(cfg: &CallConfig, api_key: &str, call_sid: &str) -> Result<Record> {
    const ATTEMPTS: u32 = 6;
    let url = format!("{}/api/v1/calls/{call_sid}", cfg.gateway);
    let client = caller::http_client()?;
    for attempt in 1..=ATTEMPTS {
        let response = client
            .get(&url)
            .bearer_auth(api_key)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND && attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            break;
        }
        let body = response
            .text()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !status.is_success() {
            return Ok(Record::Failed(status.as_u16(), body));
        }
        let record: Value = serde_json::from_str(&body)
            .with_context(|| format!("GET {url}: answer is not JSON"))?;
        // The record exists from the webhook on; its transcript lands when the call ends.
        if record.get("outcome").is_none_or(Value::is_null) && attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        return Ok(Record::Found(record));
    }
    Ok(Record::Missing)
}

fn print_transcript(record: &Value) {
    let Some(entries) = record.get("transcript").and_then(Value::as_array) else {
        println!("gateway record: no transcript array");
        return;
    };
    println!("transcript ({} entries):", entries.len());
    for e in entries {
        let secs = |key: &str| e.get(key).and_then(Value::as_f64).map(|ms| ms / 1000.0);
        let span = match (secs("start_ms"), secs("end_ms")) {
            (Some(s), Some(e)) => format!("{s:6.2}-{e:6.2} s"),
            (Some(s), None) => format!("{s:6.2} s        "),
            _ => " ".repeat(15),
        };
        let role = e.get("role").and_then(Value::as_str).unwrap_or("?");
        let text = e.get("text").and_then(Value::as_str).unwrap_or("");
        let cut = if e.get("interrupted").and_then(Value::as_bool) == Some(true) {
            " [interrupted]"
        } else {
            ""
        };
        println!("  [{span}] {role:>9}: {text}{cut}");
    }
}

fn seconds(value: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("--{flag} {value}"))
}

/// Runs the load, prints the table then one JSON line; `Ok(false)` when any call failed.
async fn load(args: LoadArgs) -> Result<bool> {
    let cfg = switchboard_sim::load::LoadConfig {
        gateway: args.gateway.trim_end_matches('/').to_owned(),
        to: args.to,
        account_sid: args.account_sid,
        auth_token: args.auth_token,
        realtime_listen: args.realtime_listen,
        calls: args.calls,
        duration: seconds(args.duration, "duration")?,
        ramp: args.ramp.map(|r| seconds(r, "ramp")).transpose()?,
        gateway_pid: args.pid,
        realtime_delay: Duration::from_millis(args.realtime_delay_ms),
        stream_delay: Duration::from_millis(args.stream_delay_ms),
        talk_on_session_updated: args.talk_on_session_updated,
        lead: Duration::from_millis(args.lead_ms),
        connect_timeout: Duration::from_secs(10),
        label: args.label,
    };
    let report = switchboard_sim::load::run_load(cfg).await?;
    print!("{}", report.table());
    println!("{}", report.json_line());
    Ok(report.failed == 0)
}

async fn serve_floor(args: FloorArgs) -> Result<()> {
    let floor = switchboard_sim::floor::Floor::start(switchboard_sim::floor::FloorConfig {
        listen: args.listen,
        realtime_url: args.realtime_url,
        model: args.model,
        api_key: args.api_key,
        tuned: !args.stack_defaults,
    })
    .await?;
    println!("floor relay listening at http://{}", floor.addr());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

async fn serve_chat(args: ChatArgs) -> Result<()> {
    let sim = switchboard_sim::chat::ChatSim::start(switchboard_sim::chat::ChatSimConfig {
        listen: args.listen,
        api_key: args.api_key,
    })
    .await
    .with_context(|| format!("listening on {}", args.listen))?;
    println!("Chat Completions simulator listening at {}", sim.base_url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

async fn serve_pinecone(args: PineconeArgs) -> Result<()> {
    let sim = switchboard_sim::pinecone::PineconeSim::start(
        switchboard_sim::pinecone::PineconeSimConfig {
            listen: args.listen,
            api_key: args.api_key,
            ready_delay: Duration::from_millis(args.ready_delay_ms),
            advertise_host: args.advertise_host,
        },
    )
    .await
    .with_context(|| format!("listening on {}", args.listen))?;
    println!("Pinecone simulator listening at {}", sim.url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

async fn serve_kubeapi(args: KubeapiArgs) -> Result<()> {
    let opts = switchboard_sim::kubeapi::KubeApiOptions {
        simulate_workloads: !args.no_workloads,
        history_limit: args.history,
        ..Default::default()
    };
    let sim = switchboard_sim::kubeapi::KubeApiSim::start_on(args.listen, opts)
        .await
        .context("starting the Kubernetes API simulator")?;
    println!(
        "Kubernetes API simulator listening at {url} (counters: {url}/_sim/stats)",
        url = sim.url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown();
    Ok(())
}

/// The error and its causes on one line, each text once: a message that already quotes
/// its cause (`{path}: {source}`) is not followed by that cause again. Printed instead of
/// anyhow's `Debug` so that a user's mistake never comes with a stack backtrace (those are
/// for panics).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}
