//! The `operator` binary: `operator run` (the controllers, leader election, `/metrics`)
//! and `operator crd` (the CRDs as YAML).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use switchboard_operator::cli::{Cli, Command, RunArgs};
use switchboard_operator::metrics::{self, Health, Metrics};
use switchboard_operator::{leader, telemetry};
use tokio::sync::watch;

fn main() -> ExitCode {
    match dispatch() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("operator: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn dispatch() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!(
                "{}",
                switchboard_crds::crd_yaml().context("rendering the CRDs")?
            );
            Ok(())
        }
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?
            .block_on(run(*args)),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    // kube and sqlx both use rustls; exactly one provider is compiled in (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = args.config();
    config
        .resolve_database_admin_url()
        .await
        .context("reading the database admin URL from AWS Secrets Manager")?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        identity = %config.identity,
        leader_election = config.leader_election,
        watch_namespace = config.watch_namespace.as_deref().unwrap_or("*"),
        database = config.database_admin_url.is_some(),
        "starting the Switchboard operator"
    );
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or kubeconfig)")?;
    let metrics = Arc::new(Metrics::new().context("registering metrics")?);
    let health = Arc::new(Health::new());

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(metrics::serve(
        args.listen,
        metrics.clone(),
        health.clone(),
        wait(stop_rx.clone()),
    ));
    tracing::info!(listen = %args.listen, "serving /metrics, /healthz, /readyz");
    let result = leader::run(client, config, metrics, health, wait(stop_rx)).await;
    if result.is_err() {
        server.abort();
    }
    match server.await {
        Err(e) if e.is_cancelled() => {}
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "metrics endpoint failed"),
        Err(e) => tracing::error!(error = %e, "metrics endpoint task failed"),
    }
    result.context("running the controllers")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
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
