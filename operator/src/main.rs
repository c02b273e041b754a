//! The `corefit-operator` binary: settings, logging, signals; the rest is
//! in the library (see its crate docs).

use std::time::Duration;

use clap::Parser;
use corefit_operator::cli::{Cli, Config, LogFormat};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// How long the graceful stop may take after SIGTERM/SIGINT before the
/// process exits anyway (well inside the chart's 30 s grace period).
/// kube-runtime's controller waits for its caches to sync before it can
/// stop, so with an apiserver that never answers the graceful stop never
/// finishes; without this bound the pod would always end by SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

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
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut run_stop = stop_rx.clone();
    let run = corefit_operator::run::run(cfg, async move {
        let _ = run_stop.wait_for(|s| *s).await;
    });
    let mut requested = stop_rx;
    tokio::select! {
        r = run => r?,
        _ = async {
            let _ = requested.wait_for(|s| *s).await;
            tokio::time::sleep(STOP_DEADLINE).await;
        } => {
            tracing::warn!(
                "the graceful stop did not finish within {}s of the signal (the controller waits \
                 for its caches, which need the apiserver); exiting",
                STOP_DEADLINE.as_secs()
            );
            // Not a return: dropping the runtime would wait for its
            // blocking tasks (a DNS lookup that hangs, say).
            std::process::exit(0);
        }
    }
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
