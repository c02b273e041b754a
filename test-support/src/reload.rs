//! The load-and-reload driver: keep-alive HTTP/1.1 clients (the one load
//! generator, [`crate::load::Load`]) against 127.0.0.1:PORT while the test
//! reloads the workers, and what the reload cost them: requests answered
//! and failed, the failures by kind (refused or failed connect, reset, EOF
//! before a whole response, non-2xx, timeout; each on a new or on a reused
//! keep-alive connection, and in which step), and the longest request.
//!
//! The load is bounded in count (so many answers before the reload, so many
//! after it is complete) and in time (each wait has a deadline, and
//! [`crate::load::LOAD_LIMIT`] caps the clients). Completion is a condition
//! the test passes in (corefit's `reload complete` notice, a status), never
//! a sleep.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::load::{Fail, Failure, Load, LoadStats};

/// How one reload under load is driven.
#[derive(Debug, Clone, Copy)]
pub struct Reload {
    port: u16,
    connections: usize,
    /// Answers before the reload starts.
    warmup: u64,
    /// Answers after it is complete.
    after: u64,
    /// The deadline of each wait for answers.
    limit: Duration,
}

impl Reload {
    /// 8 keep-alive connections (as `wrk -c8`), 200 answers before and
    /// after the reload, 30 s at most for each.
    pub fn new(port: u16) -> Reload {
        Reload {
            port,
            connections: 8,
            warmup: 200,
            after: 200,
            limit: Duration::from_secs(30),
        }
    }

    /// Keep-alive connections.
    pub fn connections(mut self, n: usize) -> Reload {
        self.connections = n;
        self
    }

    /// Answers to wait for before the reload and after it.
    pub fn answers(mut self, before: u64, after: u64) -> Reload {
        self.warmup = before;
        self.after = after;
        self
    }

    /// Starts the load, waits for the warm-up answers, calls `reload`
    /// (send SIGHUP...), then `done` (which returns once the reload is
    /// complete: wait on a notice with a deadline), waits for the answers
    /// after it and stops the load.
    pub fn run(self, reload: impl FnOnce(), done: impl FnOnce()) -> ReloadReport {
        let load = Load::start(self.port, self.connections, 0);
        load.wait_more(self.warmup, self.limit);
        reload();
        done();
        load.wait_more(self.after, self.limit);
        ReloadReport::new(load.finish())
    }
}

/// What the load saw across the reload.
#[derive(Debug, Clone)]
pub struct ReloadReport {
    pub ok: u64,
    /// Every failed request, refused connections included.
    pub failed: u64,
    /// Failures by kind (see [`kind_of`]), counted.
    pub by_kind: BTreeMap<String, u64>,
    pub longest_request: Duration,
    pub longest_gap: Duration,
    pub stats: LoadStats,
}

impl ReloadReport {
    pub fn new(stats: LoadStats) -> ReloadReport {
        let mut by_kind = BTreeMap::new();
        for f in &stats.failures {
            *by_kind.entry(kind_of(f)).or_insert(0) += 1;
        }
        ReloadReport {
            ok: stats.ok,
            failed: stats.failures.len() as u64,
            by_kind,
            longest_request: stats.longest_request,
            longest_gap: stats.longest_gap,
            stats,
        }
    }
}

impl fmt::Display for ReloadReport {
    /// One line: `N ok, N failed [kind: n, ...], longest request N ms,
    /// longest gap N ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        write!(
            f,
            "{} ok, {} failed [{}], longest request {} ms, longest gap {} ms",
            self.ok,
            self.failed,
            kinds.join("; "),
            self.longest_request.as_millis(),
            self.longest_gap.as_millis()
        )
    }
}

/// A failure in words: its kind, whether the connection was new or a
/// reused keep-alive one, and the step (`write`, `read status`...), e.g.
/// `EOF before a whole response, reused keep-alive connection, closed
/// before a response`.
pub fn kind_of(f: &Failure) -> String {
    let kind = match f.kind {
        Fail::Refused => "connect refused",
        Fail::Connect => "connect failed",
        Fail::Reset => "reset",
        Fail::Closed => "EOF before a whole response",
        Fail::Timeout => "timeout",
        Fail::Bad => "not 200",
    };
    let conn = if f.reused {
        "reused keep-alive connection"
    } else {
        "new connection"
    };
    // The step before the error's text ("read status: Connection reset
    // by peer" -> "read status"); a bad status keeps its status line.
    let step = match f.kind {
        Fail::Bad => f.detail.trim(),
        _ => f.detail.split(':').next().unwrap_or_default().trim(),
    };
    format!("{kind}, {conn}, {step}")
}

#[cfg(feature = "launcher")]
mod launcher {
    use super::{Reload, ReloadReport};
    use crate::corefit::Cluster;
    use nix::sys::signal::Signal;
    use std::time::Duration;

    impl Reload {
        /// The load through one rolling reload of `cluster`'s `workers` by
        /// SIGHUP, complete at corefit's `reload complete: N worker(s)
        /// replaced` (within `limit`).
        pub fn sighup(self, cluster: &Cluster, workers: usize, limit: Duration) -> ReloadReport {
            let corefit = &cluster.corefit;
            self.run(
                || corefit.signal(Signal::SIGHUP),
                || {
                    corefit.stderr.wait_line(
                        &format!("reload complete: {workers} worker(s) replaced"),
                        limit,
                    );
                },
            )
        }
    }
}
