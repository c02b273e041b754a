//! The `corefit-operator` binary: settings, logging, signals; the rest is
//! in the library (see its crate docs).

use clap::Parser;
use corefit_operator::cli::{Cli, Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if cli.identity.as_deref().is_none_or(|i| i.trim().is_empty()) {
        cli.identity = hostname();
    }
    let cfg = Config::from(cli);
    let filter = EnvFilter::try_from_env("COREFIT_OPERATOR_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => fmt.json().init(),
        LogFormat::Text => fmt.init(),
    }
    tracing::info!(?cfg, "starting");
    corefit_operator::run::run(cfg, shutdown_signal()).await?;
    Ok(())
}

/// The host name (a pod's name in Kubernetes), as the default identity.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
