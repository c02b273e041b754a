//! The typed settings of a run, the error for a value that cannot be one,
//! and durations as users write them.
//!
//! The flags and variables these come from are declared, parsed and
//! validated in `crate::cli::settings`: a bad value is an error naming the
//! flag and the variable, never a panic.

use std::net::IpAddr;
use std::time::Duration;

use clap::ValueEnum;
use thiserror::Error;

/// How N workers share one public port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SocketStrategy {
    /// corefit listens on PORT and balances TCP connections over workers
    /// listening on private loopback ports (works with every app).
    Proxy,
    /// corefit binds PORT once and hands the socket to every worker as fd 3
    /// (systemd socket activation: LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES).
    Shared,
    /// Every worker binds PORT itself with SO_REUSEPORT.
    Reuseport,
    /// As `shared`, for apps that only call `bind(PORT)`: a preload shim
    /// (carried inside corefit) turns the app's bind of PORT into the
    /// inherited socket. Dynamically linked programs only.
    Inject,
    /// Every worker gets its own PORT: base + worker id.
    None,
}

impl SocketStrategy {
    /// The name users type.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketStrategy::Proxy => "proxy",
            SocketStrategy::Shared => "shared",
            SocketStrategy::Reuseport => "reuseport",
            SocketStrategy::Inject => "inject",
            SocketStrategy::None => "none",
        }
    }
}

/// How corefit writes its own log lines (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `corefit: message`.
    Text,
    /// One JSON object a line: `{"ts":..,"level":..,"msg":..}`.
    Json,
}

/// When an exited worker is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestartPolicy {
    /// `never` with one worker (corefit exits with its code, as tini does,
    /// and the platform restarts the container); `always` in cluster mode.
    Auto,
    /// Restart every worker that exits while corefit is not stopping.
    Always,
    /// Never restart: the first worker to exit ends the run.
    Never,
}

/// Whether connections a stopping worker closes between requests are
/// handed to corefit (`shared`, `inject`; `net/handover.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Handover {
    /// `inject` always; `shared` when the program can load the shim
    /// (dynamically linked, not setuid, not Go).
    Auto,
    /// Never: the app's closes reach the kernel as they are.
    Off,
}

/// How corefit learns that a worker is ready for traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadyCheck {
    /// `port` for `proxy` and `none`; `listen` for `shared` and `inject`
    /// with a socket per worker; `none` for `reuseport` and one shared
    /// socket, where the public port cannot tell one worker from another.
    Auto,
    /// The worker's own port accepts a TCP connection.
    Port,
    /// The worker sends `READY=1` to `NOTIFY_SOCKET` (sd_notify).
    Notify,
    /// A Node worker calls `process.send('ready')` over the IPC channel
    /// corefit opens for it (`NODE_CHANNEL_FD`), as PM2's `wait_ready`.
    Ipc,
    /// The worker's own socket is listening: the app called `listen()` on
    /// the socket corefit bound for it (`shared` and `inject` with
    /// `--shared-sockets per-worker`), which is also when the kernel starts
    /// giving it connections.
    Listen,
    /// Ready as soon as it is started.
    None,
}

/// Everything the supervisor needs, typed.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Program and arguments.
    pub command: Vec<String>,
    pub socket: SocketStrategy,
    /// Address the public socket binds (proxy, shared).
    pub host: IpAddr,
    /// The public port.
    pub port: u16,
    /// Whether PORT (or --port) was given; when not, a single worker's
    /// environment gets no PORT from corefit (the app keeps its default).
    pub port_given: bool,
    pub grace: Duration,
    pub respawn_limit: u32,
    pub min_uptime: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub restart: RestartPolicy,
    pub ready: ReadyCheck,
    pub ready_timeout: Duration,
    pub log_prefix: bool,
    pub log_format: LogFormat,
    /// `shared`: one socket, or one SO_REUSEPORT socket per worker.
    pub shared_sockets: super::sockets::SharedSockets,
    /// `shared`, `inject`: hand over what a stopping worker closes.
    pub handover: Handover,
    /// Workers replaced at once during a rolling reload.
    pub reload_parallelism: u32,
    /// The control socket's path.
    pub control_socket: std::path::PathBuf,
    /// The admin HTTP endpoint's address, when enabled.
    pub admin_addr: Option<std::net::SocketAddr>,
    /// Memory sampling, reports, warnings and ceilings.
    pub memory: MemorySettings,
    /// HTTP liveness probes of each worker's own port, when enabled.
    pub liveness: Option<Liveness>,
    /// Live resize: re-read the cgroup limits this often and re-plan.
    pub resize_interval: Option<Duration>,
    /// `proxy`: timeouts, the connection cap, forwarded addresses.
    pub proxy: super::proxy::ProxySettings,
}

/// `--liveness-path` and friends: `GET path` on each ready worker's own
/// port every `interval`; `failures` in a row (no 2xx/3xx within
/// `timeout`) get the worker replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub failures: u32,
}

/// What corefit does with each worker's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySettings {
    /// Time between samples of every worker's process tree.
    pub interval: Duration,
    /// Log one line per worker at every sample.
    pub report: bool,
    /// Warn when a worker's tree uses more than this.
    pub threshold_bytes: Option<u64>,
    /// Restart a worker gracefully above this.
    pub ceiling: MemoryCeiling,
}

/// `--max-memory-per-worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryCeiling {
    Off,
    /// The plan's per-worker budget (its share of the memory limit, or
    /// the memory per worker).
    Plan,
    Bytes(u64),
}

/// A value that cannot be a setting.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for {flag} (or {var}): expected {expected}")]
    Invalid {
        flag: &'static str,
        var: &'static str,
        value: String,
        expected: String,
    },
    #[error("invalid duration {0:?}: expected a number with ms, s or m (e.g. 25s, 500ms); a plain number is seconds")]
    Duration(String),
    #[error("duration {0:?} is too long (at most 24h)")]
    DurationTooLong(String),
}

/// Parses `25s`, `500ms`, `2m`, `1.5s` or `25` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let t = text.trim();
    let bad = || ConfigError::Duration(text.to_owned());
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(bad());
    }
    if seconds > 86_400.0 {
        return Err(ConfigError::DurationTooLong(text.to_owned()));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Human form of a duration for log lines: `250ms`, `1.5s`.
pub fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        let s = d.as_secs_f64();
        if (s - s.round()).abs() < 0.05 {
            format!("{}s", s.round() as u64)
        } else {
            format!("{s:.1}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("25s"), Ok(Duration::from_secs(25)));
        assert_eq!(parse_duration("25"), Ok(Duration::from_secs(25)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_errors_not_panics() {
        for bad in ["", "abc", "-3s", "5h", "1e9", "..s", "NaN"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            parse_duration("100000s"),
            Err(ConfigError::DurationTooLong("100000s".into()))
        );
    }

    #[test]
    fn durations_print_compactly() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_secs(25)), "25s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
    }
}
