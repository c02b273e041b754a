//! The signals corefit listens for, merged into one stream.
//!
//! SIGTERM and SIGINT start a graceful stop; SIGQUIT, SIGUSR1,
//! SIGUSR2 and SIGWINCH are forwarded to every worker's process group;
//! SIGCHLD wakes the reaper; SIGHUP starts a rolling reload (forwarded
//! when restarts are off); SIGTTIN / SIGTTOU add or remove one worker.

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// Signals that are handled or forwarded.
pub const HANDLED: [Signal; 10] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// Installs the handlers (before any worker starts, so no SIGCHLD is
/// missed) and returns the stream of received signals.
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<Signal>> {
    let (tx, rx) = mpsc::unbounded_channel();
    for sig in HANDLED {
        let mut stream = signal(SignalKind::from_raw(sig as i32))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    return;
                }
            }
        });
    }
    Ok(rx)
}
