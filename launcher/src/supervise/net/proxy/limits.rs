//! Descriptors and connections: the open-files limit raised at start (as
//! Go's runtime and systemd services do), the connection cap derived from
//! it, and the episodes in which connections are refused.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use super::settings::MaxConnections;

/// Descriptors kept for everything but proxied connections (workers'
/// pipes, the control socket, the admin port, readiness probes).
pub const RESERVED_FDS: u64 = 128;

/// What happened to the open-files limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nofile {
    Raised {
        from: u64,
        to: u64,
    },
    Unchanged {
        soft: u64,
    },
    /// Could not be read or raised; the soft limit as far as known.
    Failed {
        soft: u64,
        why: String,
    },
}

impl Nofile {
    /// The soft limit now in force.
    pub fn soft(&self) -> u64 {
        match self {
            Nofile::Raised { to, .. } => *to,
            Nofile::Unchanged { soft } | Nofile::Failed { soft, .. } => *soft,
        }
    }

    /// The log line, when there is one to say.
    pub fn describe(&self) -> Option<String> {
        match self {
            Nofile::Raised { from, to } => Some(format!(
                "raised the open files limit (RLIMIT_NOFILE) from {from} to {to}, its hard limit"
            )),
            Nofile::Unchanged { .. } => None,
            Nofile::Failed { soft, why } => Some(format!(
                "cannot raise the open files limit (RLIMIT_NOFILE, {soft}): {why}"
            )),
        }
    }
}

/// Raises the soft open-files limit to the hard one. Workers inherit it
/// (Node raises its own the same way at start).
pub fn raise_nofile() -> Nofile {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            return Nofile::Failed {
                soft: 1024,
                why: e.to_string(),
            }
        }
    };
    // An unlimited hard limit is capped at what the kernel allows a process.
    let target = if hard == nix::libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        hard
    };
    if soft >= target {
        return Nofile::Unchanged { soft };
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => Nofile::Raised {
            from: soft,
            to: target,
        },
        Err(e) => Nofile::Failed {
            soft,
            why: e.to_string(),
        },
    }
}

/// The connection cap: given, or half the descriptors left after the
/// reserve (each proxied connection holds two: client and worker).
pub fn max_connections(setting: MaxConnections, nofile_soft: u64) -> usize {
    match setting {
        MaxConnections::Limit(n) => n.max(1),
        MaxConnections::Auto => {
            let n = nofile_soft.saturating_sub(RESERVED_FDS) / 2;
            usize::try_from(n).unwrap_or(usize::MAX).max(16)
        }
    }
}

/// Whether to warn: once when refusals start, again only after the open
/// count fell below nine tenths of the cap.
#[derive(Debug, Default)]
pub struct Episode {
    active: bool,
}

impl Episode {
    /// A refusal happened: true when this starts an episode (warn).
    pub fn refused(&mut self) -> bool {
        !std::mem::replace(&mut self.active, true)
    }

    /// The count of open connections now.
    pub fn open(&mut self, open: usize, cap: usize) {
        if open < cap - cap / 10 {
            self.active = false;
        }
    }
}

/// A burst smaller than this is not worth trimming the heap after.
pub const MIN_BURST: usize = 256;

/// When to give the heap back after a burst of connections: once the
/// open count fell to half its peak, by at least [`MIN_BURST`].
#[derive(Debug, Default)]
pub struct BurstEnd {
    peak: usize,
}

impl BurstEnd {
    /// The open count now; true when a burst just ended.
    pub fn observe(&mut self, open: usize) -> bool {
        self.peak = self.peak.max(open);
        if open + MIN_BURST <= self.peak && open <= self.peak / 2 {
            self.peak = open;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_cap_from_the_open_files_limit() {
        assert_eq!(max_connections(MaxConnections::Auto, 20_000), 9_936);
        assert_eq!(max_connections(MaxConnections::Auto, 1024), 448);
        assert_eq!(max_connections(MaxConnections::Auto, 100), 16);
        assert_eq!(max_connections(MaxConnections::Limit(7), 100), 7);
        assert_eq!(max_connections(MaxConnections::Limit(0), 100), 1);
    }

    #[test]
    fn a_burst_ends_at_half_its_peak() {
        let mut b = BurstEnd::default();
        assert!(!b.observe(5000));
        assert!(!b.observe(2600));
        assert!(b.observe(2500));
        assert!(!b.observe(2400), "a new burst must build up first");
        let mut small = BurstEnd::default();
        small.observe(200);
        assert!(!small.observe(0), "200 connections are no burst");
    }

    #[test]
    fn one_warning_per_episode() {
        let mut e = Episode::default();
        assert!(e.refused());
        assert!(!e.refused());
        e.open(95, 100);
        assert!(!e.refused());
        e.open(89, 100);
        assert!(e.refused());
    }
}
