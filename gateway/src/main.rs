//! `gateway`: serve VoiceTenants' phone calls (see `gateway --help`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use switchboard_gateway::cli::Cli;
use switchboard_gateway::server::Gateway;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    // One TLS crypto provider for every client (Realtime over wss, Postgres over TLS).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match switchboard_gateway::open_files::raise() {
        Ok(l) if l.before != l.after => {
            tracing::info!(from = ?l.before, to = ?l.after, "open files limit raised to its hard limit");
        }
        Ok(l) => tracing::info!(limit = ?l.after, "open files limit"),
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open files limit: each call needs two sockets, and a recorded one up to three files");
        }
    }
    let gateway = Gateway::start(&cli).await.context("starting the gateway")?;
    shutdown_signal().await;
    gateway.drain_and_stop().await;
    Ok(())
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
        () = ctrl_c => {},
        () = term => {},
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
