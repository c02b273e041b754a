//! The run settings, each declared once: flag, variables in precedence
//! order, placeholder, default, parser and help sentence. `corefit --help`,
//! the resolution ([`super::RunArgs::config_with`]) and the error messages
//! all come from this table. Help order is the order here.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::spec::{settings, Decl, Setting, Spec};
use crate::plan::size::parse_size;
use crate::supervise::config::{ConfigError, Handover, MemoryCeiling};
use crate::supervise::proxy::{Affinity, ForwardedHeaders, MaxConnections, ProxyProtocol};
use crate::supervise::sockets::SharedSockets;
use crate::supervise::{LogFormat, ReadyCheck, RestartPolicy, SocketStrategy};

settings! {
    /// How workers share the public port: proxy, shared, reuseport, inject or none
    SOCKET: SocketStrategy {
        flag: "--socket", env: ["COREFIT_SOCKET"], value: "STRATEGY", default: "proxy",
        parse: |s| s.choice(),
    }
    /// With --socket shared: one (a single socket, bound once) or per-worker
    /// (one SO_REUSEPORT socket per worker, evenly balanced by the kernel)
    SHARED_SOCKETS: SharedSockets {
        flag: "--shared-sockets", env: ["COREFIT_SHARED_SOCKETS"], value: "HOW",
        default: "per-worker",
        parse: |s| s.choice(),
    }
    /// With --socket shared or inject: auto (the preload shim hands corefit
    /// the connections a stopping worker closes between requests, and
    /// corefit relays their next request to a live worker; shared: when the
    /// program is dynamically linked) or off
    HANDOVER: Handover {
        flag: "--handover", env: ["COREFIT_HANDOVER"], value: "HOW", default: "auto",
        parse: |s| s.choice(),
    }
    /// The public port (proxy and shared bind it; workers get PORT per strategy)
    PORT: u16 {
        flag: "--port", env: ["PORT"], value: "PORT", default: "3000",
        parse: |s| s.port(),
    }
    /// Address the public socket binds (proxy, shared)
    HOST: IpAddr {
        flag: "--host", env: ["COREFIT_HOST"], value: "IP", default: "0.0.0.0",
        parse: |s| s.parsed("an IP address"),
    }
    /// Time between forwarding SIGTERM and SIGKILL
    GRACE_PERIOD: Duration {
        flag: "--grace-period", env: ["COREFIT_GRACE_PERIOD"], value: "DURATION",
        default: "25s",
        parse: |s| s.duration(),
    }
    /// Crashes in a row (each before readiness, or within 10 x --min-uptime
    /// of it) after which corefit gives up and exits non-zero
    RESPAWN_LIMIT: u32 {
        flag: "--respawn-limit", env: ["COREFIT_RESPAWN_LIMIT"], value: "N", default: "15",
        parse: |s| s.parsed("a whole number"),
    }
    /// A worker ready and up this long restarts at once on its first crash;
    /// up 10 times this long, its earlier crashes are forgiven
    MIN_UPTIME: Duration {
        flag: "--min-uptime", env: ["COREFIT_MIN_UPTIME"], value: "DURATION", default: "1s",
        parse: |s| s.duration(),
    }
    /// First delay of a crash loop, doubling each time
    BACKOFF: Duration {
        flag: "--backoff", env: ["COREFIT_BACKOFF"], value: "DURATION", default: "100ms",
        parse: |s| s.duration(),
    }
    /// Longest restart delay
    BACKOFF_MAX: Duration {
        flag: "--backoff-max", env: ["COREFIT_BACKOFF_MAX"], value: "DURATION", default: "5s",
        parse: |s| s.duration(),
    }
    /// When exited workers restart: auto (never with one worker, always in
    /// cluster mode), always, never
    RESTART: RestartPolicy {
        flag: "--restart", env: ["COREFIT_RESTART"], value: "POLICY", default: "auto",
        parse: |s| s.choice(),
    }
    /// How a worker is known ready: auto (port for proxy/none, else at
    /// start), port, listen (the app listens on its own shared socket), notify
    /// (READY=1 on NOTIFY_SOCKET), ipc (Node's
    /// process.send('ready'), as PM2's wait_ready), none
    READY: ReadyCheck {
        flag: "--ready", env: ["COREFIT_READY"], value: "CHECK", default: "auto",
        parse: |s| s.choice(),
    }
    /// A worker not ready within this time is killed and restarted
    READY_TIMEOUT: Duration {
        flag: "--ready-timeout", env: ["COREFIT_READY_TIMEOUT"], value: "DURATION",
        default: "30s",
        parse: |s| s.duration(),
    }
    /// Prefix each line of worker output with `[worker N] `
    LOG_PREFIX: bool {
        flag: "--log-prefix", env: ["COREFIT_LOG_PREFIX"],
        parse: |s| s.switch(),
    }
    /// Format of corefit's own log lines on stderr: text or json
    LOG_FORMAT: LogFormat {
        flag: "--log-format", env: ["COREFIT_LOG_FORMAT"], value: "FORMAT", default: "text",
        parse: |s| s.choice(),
    }
    /// Workers replaced at once during a rolling reload (SIGHUP, `corefit reload`)
    RELOAD_PARALLELISM: u32 {
        flag: "--reload-parallelism", env: ["COREFIT_RELOAD_PARALLELISM"], value: "N",
        default: "1",
        parse: |s| s.count(4096),
    }
    /// Address of the admin HTTP endpoint (GET /health, /health/workers,
    /// /metrics); off unless set
    ADMIN_ADDR: Option<SocketAddr> {
        flag: "--admin-addr", env: ["COREFIT_ADMIN_ADDR", "COREFIT_ADMIN_PORT"],
        value: "IP:PORT",
        env_help: "COREFIT_ADMIN_ADDR, or COREFIT_ADMIN_PORT for 0.0.0.0:PORT",
        parse: admin_addr,
    }
    /// Time between samples of each worker's memory and CPU
    MEMORY_INTERVAL: Duration {
        flag: "--memory-interval", env: ["COREFIT_MEMORY_INTERVAL"], value: "DURATION",
        default: "5s",
        parse: |s| s.duration_from(Duration::from_millis(50), "at least 50ms"),
    }
    /// Log each worker's memory at every sample
    MEMORY_MONITORING: bool {
        flag: "--memory-monitoring",
        env: ["ENABLE_MEMORY_MONITORING", "COREFIT_MEMORY_MONITORING"],
        parse: |s| s.switch(),
    }
    /// Warn when a worker's memory exceeds this (e.g. 400Mi; a plain number is MiB)
    MEMORY_THRESHOLD: Option<u64> {
        flag: "--memory-threshold", env: ["COREFIT_MEMORY_THRESHOLD", "MEMORY_THRESHOLD_MB"],
        value: "SIZE",
        parse: memory_threshold,
    }
    /// Restart a worker gracefully above this memory: off, auto (the plan's
    /// per-worker budget) or a size
    MAX_MEMORY_PER_WORKER: MemoryCeiling {
        flag: "--max-memory-per-worker", env: ["COREFIT_MAX_MEMORY_PER_WORKER"],
        value: "SIZE", default: "off",
        parse: memory_ceiling,
    }
    /// HTTP path probed on each worker's own port (proxy, none) to find hung
    /// workers, e.g. /health; off unless set
    LIVENESS_PATH: Option<String> {
        flag: "--liveness-path", env: ["COREFIT_LIVENESS_PATH"], value: "PATH",
        parse: liveness_path,
    }
    /// Time between liveness probes
    LIVENESS_INTERVAL: Duration {
        flag: "--liveness-interval", env: ["COREFIT_LIVENESS_INTERVAL"], value: "DURATION",
        default: "5s",
        parse: liveness_interval,
    }
    /// A probe without a 2xx/3xx answer within this time failed
    LIVENESS_TIMEOUT: Duration {
        flag: "--liveness-timeout", env: ["COREFIT_LIVENESS_TIMEOUT"], value: "DURATION",
        default: "2s",
        parse: liveness_timeout,
    }
    /// Failed probes in a row that get a worker replaced
    LIVENESS_FAILURES: u32 {
        flag: "--liveness-failures", env: ["COREFIT_LIVENESS_FAILURES"], value: "N",
        default: "3",
        parse: |s| s.count(1000),
    }
    /// Live resize: re-read the cgroup CPU and memory limits this often,
    /// re-plan, and grow or shrink the pool (unless the worker count was
    /// given); off unless set
    RESIZE_INTERVAL: Option<Duration> {
        flag: "--resize-interval", env: ["COREFIT_RESIZE_INTERVAL"], value: "DURATION",
        parse: resize_interval,
    }
    /// proxy: a request head must arrive whole within this, else 408 and
    /// close (as Node's headersTimeout)
    HEADER_TIMEOUT: Duration {
        flag: "--header-timeout", env: ["COREFIT_HEADER_TIMEOUT"], value: "DURATION",
        default: "60s",
        parse: positive_duration,
    }
    /// proxy: close a keep-alive client connection with nothing in flight after this
    IDLE_TIMEOUT: Duration {
        flag: "--idle-timeout", env: ["COREFIT_IDLE_TIMEOUT"], value: "DURATION",
        default: "75s",
        parse: positive_duration,
    }
    /// proxy: client connections held at once, more are answered 503: a
    /// number, or auto (half the open files limit left after 128)
    MAX_CONNECTIONS: MaxConnections {
        flag: "--max-connections", env: ["COREFIT_MAX_CONNECTIONS"], value: "N|auto",
        default: "auto",
        parse: max_connections,
    }
    /// proxy: give the app the client's address in request headers: off,
    /// x-forwarded (X-Forwarded-For/-Proto/-Host), forwarded (RFC 7239) or both
    FORWARDED: ForwardedHeaders {
        flag: "--forwarded", env: ["COREFIT_FORWARDED"], value: "HEADERS", default: "off",
        parse: |s| s.choice(),
    }
    /// proxy: clients (IPs or CIDR ranges, comma-separated) whose own
    /// Forwarded and X-Forwarded-* fields are kept and extended rather than
    /// replaced
    TRUST_FORWARDED: Vec<ipnet::IpNet> {
        flag: "--trust-forwarded", env: ["COREFIT_TRUST_FORWARDED"], value: "CIDR,...",
        default: "none",
        parse: trusted_ranges,
    }
    /// proxy: start each connection to a worker with a PROXY protocol
    /// header: off, v1 or v2
    PROXY_PROTOCOL: ProxyProtocol {
        flag: "--proxy-protocol", env: ["COREFIT_PROXY_PROTOCOL"], value: "VERSION",
        default: "off",
        parse: |s| s.choice(),
    }
    /// proxy: keep each client on one worker: none, client-ip (consistent
    /// hashing of its address, bounded load) or cookie (corefit_worker); also
    /// relays socket.io's cluster adapter between Node workers (docs/affinity.md)
    AFFINITY: Affinity {
        flag: "--affinity", env: ["COREFIT_AFFINITY"], value: "HOW", default: "none",
        parse: |s| s.choice(),
    }
}

/// `IP:PORT` or a port alone (0.0.0.0:PORT); `COREFIT_ADMIN_PORT` takes a
/// port only.
fn admin_addr(s: &Setting<'_>) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(value) = s.given() else {
        return Ok(None);
    };
    if s.var() == "COREFIT_ADMIN_PORT" {
        return s
            .port()
            .map(|port| Some(SocketAddr::from(([0, 0, 0, 0], port))));
    }
    let v = value.trim();
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(Some(a));
    }
    match v.parse::<u16>() {
        Ok(p) => Ok(Some(SocketAddr::from(([0, 0, 0, 0], p)))),
        Err(_) => Err(s.invalid(value, "IP:PORT (e.g. 0.0.0.0:9000), or a port alone")),
    }
}

/// A size above 0 (`400Mi`; a plain number is MiB).
fn memory_threshold(s: &Setting<'_>) -> Result<Option<u64>, ConfigError> {
    let Some(value) = s.given() else {
        return Ok(None);
    };
    match parse_size(value) {
        Ok(b) if b > 0 => Ok(Some(b)),
        Ok(_) => Err(s.invalid(value, "a size above 0")),
        Err(e) => Err(s.invalid(
            value,
            format!("a size such as 400Mi or a number of MiB ({e})"),
        )),
    }
}

/// `off`, `auto` (the plan's budget) or a size (`512Mi`; plain = MiB).
fn memory_ceiling(s: &Setting<'_>) -> Result<MemoryCeiling, ConfigError> {
    let Some(v) = s.value() else {
        return Ok(MemoryCeiling::Off);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "off" | "0" | "false" | "no" => Ok(MemoryCeiling::Off),
        "auto" | "plan" | "on" | "true" | "yes" => Ok(MemoryCeiling::Plan),
        _ => match parse_size(v) {
            Ok(b) if b > 0 => Ok(MemoryCeiling::Bytes(b)),
            Ok(_) => Err(s.invalid(v, "a size above 0")),
            Err(e) => Err(s.invalid(v, format!("off, auto or a size ({e})"))),
        },
    }
}

/// An absolute path without spaces.
fn liveness_path(s: &Setting<'_>) -> Result<Option<String>, ConfigError> {
    let Some(path) = s.given() else {
        return Ok(None);
    };
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(s.invalid(path, "a path starting with / and without spaces"));
    }
    Ok(Some(path.to_owned()))
}

fn liveness_interval(s: &Setting<'_>) -> Result<Duration, ConfigError> {
    let interval = s.duration()?;
    if interval < Duration::from_millis(50) {
        return Err(s.invalid(&format!("{interval:?}"), "an interval of at least 50ms"));
    }
    Ok(interval)
}

fn liveness_timeout(s: &Setting<'_>) -> Result<Duration, ConfigError> {
    let timeout = s.duration()?;
    if timeout.is_zero() {
        return Err(s.invalid(&format!("{timeout:?}"), "a timeout above 0"));
    }
    Ok(timeout)
}

/// `off` (or 0, or empty), else at least 100ms.
fn resize_interval(s: &Setting<'_>) -> Result<Option<Duration>, ConfigError> {
    match s.given().map(str::trim) {
        None | Some("off" | "0" | "") => Ok(None),
        Some(_) => s
            .duration_from(Duration::from_millis(100), "off, or at least 100ms")
            .map(Some),
    }
}

fn positive_duration(s: &Setting<'_>) -> Result<Duration, ConfigError> {
    let d = s.duration()?;
    if d.is_zero() {
        return Err(s.invalid(s.value().unwrap_or_default(), "a duration above 0"));
    }
    Ok(d)
}

/// `auto`, or a whole number from 1 to 10,000,000.
fn max_connections(s: &Setting<'_>) -> Result<MaxConnections, ConfigError> {
    match s.value().map(str::trim) {
        None | Some("auto") => Ok(MaxConnections::Auto),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=10_000_000).contains(&n) => Ok(MaxConnections::Limit(n)),
            _ => Err(s.invalid(v, "auto or a whole number from 1 to 10000000")),
        },
    }
}

/// `10.0.0.0/8, 127.0.0.1, ::1`: ranges, a bare address being its own;
/// none when not given.
fn trusted_ranges(s: &Setting<'_>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(text) = s.given() else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    s.invalid(
                        text,
                        format!(
                            "IP addresses or CIDR ranges separated by commas ({t:?} is neither)"
                        ),
                    )
                })
        })
        .collect()
}
