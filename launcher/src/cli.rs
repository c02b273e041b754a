//! Command-line settings (clap). Values that feed the plan are taken as
//! strings and validated by `plan::overrides`, so a bad flag and a bad
//! variable get the same message naming their source.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::plan::FlagValues;
use std::net::SocketAddr;

use crate::supervise::config::{ConfigError, Liveness, MemoryCeiling, MemorySettings, Setting};
use crate::supervise::proxy::{
    ForwardedHeaders, Forwarding, MaxConnections, ProxyProtocol, ProxySettings,
};
use crate::supervise::sockets::SharedSockets;
use crate::supervise::{LogFormat, ReadyCheck, RestartPolicy, RunConfig, SocketStrategy};

/// corefit: run an app with as many processes as the container really has CPUs for.
///
/// Run: `corefit [FLAGS] -- CMD [ARGS...]` (e.g. `corefit -- node server.js`).
#[derive(Debug, Parser)]
#[command(
    name = "corefit",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    override_usage = "corefit [FLAGS] -- CMD [ARGS]...\n       corefit plan [FLAGS]\n       corefit status [--json] | reload | scale N|+N|-N [--force] | stop"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the detected limits and platform, the decision and every reason.
    Plan(PlanCommand),
    /// Show the running corefit's workers (a table like `pm2 status`).
    Status(StatusCommand),
    /// Rolling reload of the running corefit's workers, one at a time (as SIGHUP).
    Reload(ControlArgs),
    /// Change the running corefit's worker count: N, +N or -N.
    Scale(ScaleCommand),
    /// Stop the running corefit gracefully (as SIGTERM).
    Stop(ControlArgs),
    /// Internal: put the shared socket on fd 3, set LISTEN_PID and exec.
    #[command(name = "__exec-worker", hide = true)]
    ExecWorker(ExecWorkerArgs),
}

/// `corefit status`.
#[derive(Debug, Args)]
pub struct StatusCommand {
    /// Print the cluster snapshot as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub control: ControlArgs,
}

/// `corefit scale N|+N|-N`.
#[derive(Debug, Args)]
pub struct ScaleCommand {
    /// The new count (N), or a change (+N, -N)
    #[arg(value_name = "N|+N|-N", allow_hyphen_values = true)]
    pub target: String,
    /// Go past the plan's caps (CPUs, memory, MAX_WORKERS)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub control: ControlArgs,
}

/// `corefit __exec-worker --listen-fd N -- CMD ARGS...`.
#[derive(Debug, Args)]
pub struct ExecWorkerArgs {
    /// The inherited descriptor of the shared socket.
    #[arg(long, value_name = "FD")]
    pub listen_fd: i32,
    /// `inject`: the preload shim to add to LD_PRELOAD (instead of LISTEN_*).
    #[arg(long, value_name = "PATH")]
    pub inject_preload: Option<String>,
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// How the workers are run (also settable by environment). Values are
/// taken as strings and validated by [`RunArgs::config`], so a bad value
/// only matters when corefit runs a command (`corefit plan` ignores them)
/// and the error names the flag and the variable.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// How workers share the public port: proxy, shared, reuseport, inject or none [default: proxy]
    #[arg(long, env = "COREFIT_SOCKET", value_name = "STRATEGY")]
    pub socket: Option<String>,
    /// With --socket shared: one (a single socket, bound once) or per-worker (one SO_REUSEPORT socket per worker, evenly balanced by the kernel) [default: per-worker]
    #[arg(long, env = "COREFIT_SHARED_SOCKETS", value_name = "HOW")]
    pub shared_sockets: Option<String>,
    /// The public port (proxy and shared bind it; workers get PORT per strategy) [default: 3000]
    #[arg(long, env = "PORT", value_name = "PORT")]
    pub port: Option<String>,
    /// Address the public socket binds (proxy, shared) [default: 0.0.0.0]
    #[arg(long, env = "COREFIT_HOST", value_name = "IP")]
    pub host: Option<String>,
    /// Time between forwarding SIGTERM and SIGKILL [default: 25s]
    #[arg(long, env = "COREFIT_GRACE_PERIOD", value_name = "DURATION")]
    pub grace_period: Option<String>,
    /// Unstable restarts in a row after which corefit gives up and exits non-zero [default: 15]
    #[arg(long, env = "COREFIT_RESPAWN_LIMIT", value_name = "N")]
    pub respawn_limit: Option<String>,
    /// A worker up this long (and ready) counts as stable: its backoff resets [default: 1s]
    #[arg(long, env = "COREFIT_MIN_UPTIME", value_name = "DURATION")]
    pub min_uptime: Option<String>,
    /// First restart delay after an unstable exit, doubling each time [default: 100ms]
    #[arg(long, env = "COREFIT_BACKOFF", value_name = "DURATION")]
    pub backoff: Option<String>,
    /// Longest restart delay [default: 5s]
    #[arg(long, env = "COREFIT_BACKOFF_MAX", value_name = "DURATION")]
    pub backoff_max: Option<String>,
    /// When exited workers restart: auto (never with one worker, always in cluster mode), always, never [default: auto]
    #[arg(long, env = "COREFIT_RESTART", value_name = "POLICY")]
    pub restart: Option<String>,
    /// How a worker is known ready: auto (port for proxy/none, else at start), port, notify (READY=1 on NOTIFY_SOCKET), ipc (Node's process.send('ready'), as PM2's wait_ready), none [default: auto]
    #[arg(long, env = "COREFIT_READY", value_name = "CHECK")]
    pub ready: Option<String>,
    /// A worker not ready within this time is killed and restarted [default: 30s]
    #[arg(long, env = "COREFIT_READY_TIMEOUT", value_name = "DURATION")]
    pub ready_timeout: Option<String>,
    /// Prefix each line of worker output with `[worker N] ` [env: COREFIT_LOG_PREFIX=1]
    #[arg(long)]
    pub log_prefix: bool,
    /// Format of corefit's own log lines on stderr: text or json [default: text]
    #[arg(long, env = "COREFIT_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Workers replaced at once during a rolling reload (SIGHUP, `corefit reload`) [default: 1]
    #[arg(long, env = "COREFIT_RELOAD_PARALLELISM", value_name = "N")]
    pub reload_parallelism: Option<String>,
    /// Address of the admin HTTP endpoint (GET /health, /health/workers, /metrics); off unless set [env: COREFIT_ADMIN_ADDR, or COREFIT_ADMIN_PORT for 0.0.0.0:PORT]
    #[arg(long, value_name = "IP:PORT")]
    pub admin_addr: Option<String>,
    /// Time between samples of each worker's memory and CPU [default: 5s]
    #[arg(long, env = "COREFIT_MEMORY_INTERVAL", value_name = "DURATION")]
    pub memory_interval: Option<String>,
    /// Log each worker's memory at every sample [env: ENABLE_MEMORY_MONITORING=1, COREFIT_MEMORY_MONITORING=1]
    #[arg(long)]
    pub memory_monitoring: bool,
    /// Warn when a worker's memory exceeds this (e.g. 400Mi; a plain number is MiB) [env: COREFIT_MEMORY_THRESHOLD, MEMORY_THRESHOLD_MB]
    #[arg(long, value_name = "SIZE")]
    pub memory_threshold: Option<String>,
    /// Restart a worker gracefully above this memory: off, auto (the plan's per-worker budget) or a size [default: off]
    #[arg(long, env = "COREFIT_MAX_MEMORY_PER_WORKER", value_name = "SIZE")]
    pub max_memory_per_worker: Option<String>,
    /// HTTP path probed on each worker's own port (proxy, none) to find hung workers, e.g. /health; off unless set
    #[arg(long, env = "COREFIT_LIVENESS_PATH", value_name = "PATH")]
    pub liveness_path: Option<String>,
    /// Time between liveness probes [default: 5s]
    #[arg(long, env = "COREFIT_LIVENESS_INTERVAL", value_name = "DURATION")]
    pub liveness_interval: Option<String>,
    /// A probe without a 2xx/3xx answer within this time failed [default: 2s]
    #[arg(long, env = "COREFIT_LIVENESS_TIMEOUT", value_name = "DURATION")]
    pub liveness_timeout: Option<String>,
    /// Failed probes in a row that get a worker replaced [default: 3]
    #[arg(long, env = "COREFIT_LIVENESS_FAILURES", value_name = "N")]
    pub liveness_failures: Option<String>,
    /// Live resize: re-read the cgroup CPU and memory limits this often, re-plan, and grow or shrink the pool (unless the worker count was given); off unless set [env: COREFIT_RESIZE_INTERVAL]
    #[arg(long, env = "COREFIT_RESIZE_INTERVAL", value_name = "DURATION")]
    pub resize_interval: Option<String>,
    /// proxy: a request head must arrive whole within this, else 408 and close (as Node's headersTimeout) [default: 60s]
    #[arg(long, env = "COREFIT_HEADER_TIMEOUT", value_name = "DURATION")]
    pub header_timeout: Option<String>,
    /// proxy: close a keep-alive client connection with nothing in flight after this [default: 75s]
    #[arg(long, env = "COREFIT_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// proxy: client connections held at once, more are answered 503: a number, or auto (half the open files limit left after 128) [default: auto]
    #[arg(long, env = "COREFIT_MAX_CONNECTIONS", value_name = "N|auto")]
    pub max_connections: Option<String>,
    /// proxy: give the app the client's address in request headers: off, x-forwarded (X-Forwarded-For/-Proto/-Host), forwarded (RFC 7239) or both [default: off]
    #[arg(long, env = "COREFIT_FORWARDED", value_name = "HEADERS")]
    pub forwarded: Option<String>,
    /// proxy: clients (IPs or CIDR ranges, comma-separated) whose own Forwarded and X-Forwarded-* fields are kept and extended rather than replaced [default: none]
    #[arg(long, env = "COREFIT_TRUST_FORWARDED", value_name = "CIDR,...")]
    pub trust_forwarded: Option<String>,
    /// proxy: start each connection to a worker with a PROXY protocol header: off, v1 or v2 [default: off]
    #[arg(long, env = "COREFIT_PROXY_PROTOCOL", value_name = "VERSION")]
    pub proxy_protocol: Option<String>,
    #[command(flatten)]
    pub control: ControlArgs,
}

/// Where the control socket is (for the supervisor and the subcommands).
#[derive(Debug, Clone, Default, Args)]
pub struct ControlArgs {
    /// The control socket's path [default: $XDG_RUNTIME_DIR/corefit.sock, else /tmp/corefit.sock]
    #[arg(long, env = "COREFIT_CONTROL_SOCKET", value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
}

impl ControlArgs {
    /// The path given, or the default.
    pub fn path(&self) -> PathBuf {
        self.control_socket
            .clone()
            .unwrap_or_else(crate::control::client::default_socket_path)
    }
}

/// Variables read by [`RunArgs::config`] besides those clap reads.
#[derive(Debug, Clone, Default)]
pub struct RunEnv {
    pub log_prefix: Option<String>,
    pub admin_addr: Option<String>,
    pub admin_port: Option<String>,
    pub memory_monitoring: Option<String>,
    pub enable_memory_monitoring: Option<String>,
    pub memory_threshold: Option<String>,
    pub memory_threshold_mb: Option<String>,
}

impl RunEnv {
    /// From the process environment.
    pub fn from_process() -> RunEnv {
        let v = |k: &str| std::env::var(k).ok();
        RunEnv {
            log_prefix: v("COREFIT_LOG_PREFIX"),
            admin_addr: v("COREFIT_ADMIN_ADDR"),
            admin_port: v("COREFIT_ADMIN_PORT"),
            memory_monitoring: v("COREFIT_MEMORY_MONITORING"),
            enable_memory_monitoring: v("ENABLE_MEMORY_MONITORING"),
            memory_threshold: v("COREFIT_MEMORY_THRESHOLD"),
            memory_threshold_mb: v("MEMORY_THRESHOLD_MB"),
        }
    }
}

impl RunArgs {
    /// The typed settings for running `command`; `env_log_prefix` is
    /// `COREFIT_LOG_PREFIX`.
    pub fn config(
        &self,
        command: Vec<String>,
        env_log_prefix: Option<&str>,
    ) -> Result<RunConfig, ConfigError> {
        let env = RunEnv {
            log_prefix: env_log_prefix.map(str::to_owned),
            ..RunEnv::default()
        };
        self.config_with(command, &env)
    }

    /// The typed settings for running `command`, with the variables clap
    /// does not read itself.
    pub fn config_with(
        &self,
        command: Vec<String>,
        env: &RunEnv,
    ) -> Result<RunConfig, ConfigError> {
        let env_log_prefix = env.log_prefix.as_deref();
        fn s<'v>(flag: &'static str, var: &'static str, value: &'v Option<String>) -> Setting<'v> {
            Setting::new(flag, var, value.as_deref())
        }
        let backoff = s("--backoff", "COREFIT_BACKOFF", &self.backoff).duration("100ms")?;
        Ok(RunConfig {
            command,
            socket: s("--socket", "COREFIT_SOCKET", &self.socket).choice(SocketStrategy::Proxy)?,
            host: s("--host", "COREFIT_HOST", &self.host).parsed("0.0.0.0", "an IP address")?,
            port: s("--port", "PORT", &self.port).port(3000)?,
            port_given: self.port.is_some(),
            grace: s("--grace-period", "COREFIT_GRACE_PERIOD", &self.grace_period)
                .duration("25s")?,
            respawn_limit: s(
                "--respawn-limit",
                "COREFIT_RESPAWN_LIMIT",
                &self.respawn_limit,
            )
            .parsed("15", "a whole number")?,
            min_uptime: s("--min-uptime", "COREFIT_MIN_UPTIME", &self.min_uptime).duration("1s")?,
            backoff_initial: backoff,
            backoff_max: s("--backoff-max", "COREFIT_BACKOFF_MAX", &self.backoff_max)
                .duration("5s")?
                .max(backoff),
            restart: s("--restart", "COREFIT_RESTART", &self.restart)
                .choice(RestartPolicy::Auto)?,
            ready: s("--ready", "COREFIT_READY", &self.ready).choice(ReadyCheck::Auto)?,
            ready_timeout: s(
                "--ready-timeout",
                "COREFIT_READY_TIMEOUT",
                &self.ready_timeout,
            )
            .duration("30s")?,
            log_prefix: self.log_prefix
                || Setting::new("--log-prefix", "COREFIT_LOG_PREFIX", env_log_prefix).flag()?,
            log_format: s("--log-format", "COREFIT_LOG_FORMAT", &self.log_format)
                .choice(LogFormat::Text)?,
            shared_sockets: s(
                "--shared-sockets",
                "COREFIT_SHARED_SOCKETS",
                &self.shared_sockets,
            )
            .choice(SharedSockets::PerWorker)?,
            reload_parallelism: s(
                "--reload-parallelism",
                "COREFIT_RELOAD_PARALLELISM",
                &self.reload_parallelism,
            )
            .count(1, 4096)?,
            liveness: self.liveness(s)?,
            resize_interval: match self.resize_interval.as_deref().map(str::trim) {
                None | Some("off" | "0" | "") => None,
                Some(_) => {
                    let d = s(
                        "--resize-interval",
                        "COREFIT_RESIZE_INTERVAL",
                        &self.resize_interval,
                    )
                    .duration("0")?;
                    if d < std::time::Duration::from_millis(100) {
                        return Err(ConfigError::Invalid {
                            flag: "--resize-interval",
                            var: "COREFIT_RESIZE_INTERVAL",
                            value: self.resize_interval.clone().unwrap_or_default(),
                            expected: "off, or at least 100ms".into(),
                        });
                    }
                    Some(d)
                }
            },
            control_socket: self.control.path(),
            admin_addr: admin_addr(self.admin_addr.as_deref(), env)?,
            memory: MemorySettings {
                interval: {
                    let d = s(
                        "--memory-interval",
                        "COREFIT_MEMORY_INTERVAL",
                        &self.memory_interval,
                    )
                    .duration("5s")?;
                    if d < std::time::Duration::from_millis(50) {
                        return Err(ConfigError::Invalid {
                            flag: "--memory-interval",
                            var: "COREFIT_MEMORY_INTERVAL",
                            value: self.memory_interval.clone().unwrap_or_default(),
                            expected: "at least 50ms".into(),
                        });
                    }
                    d
                },
                report: self.memory_monitoring
                    || Setting::new(
                        "--memory-monitoring",
                        "COREFIT_MEMORY_MONITORING",
                        env.memory_monitoring.as_deref(),
                    )
                    .flag()?
                    || Setting::new(
                        "--memory-monitoring",
                        "ENABLE_MEMORY_MONITORING",
                        env.enable_memory_monitoring.as_deref(),
                    )
                    .flag()?,
                threshold_bytes: memory_threshold(self.memory_threshold.as_deref(), env)?,
                ceiling: MemoryCeiling::parse(&s(
                    "--max-memory-per-worker",
                    "COREFIT_MAX_MEMORY_PER_WORKER",
                    &self.max_memory_per_worker,
                ))?,
            },
            proxy: self.proxy_settings(s)?,
        })
    }
}

impl RunArgs {
    fn proxy_settings(
        &self,
        s: for<'a> fn(&'static str, &'static str, &'a Option<String>) -> Setting<'a>,
    ) -> Result<ProxySettings, ConfigError> {
        let positive = |setting: Setting<'_>, default: &str| {
            let d = setting.duration(default)?;
            if d.is_zero() {
                return Err(setting.invalid(setting.value.unwrap_or(default), "a duration above 0"));
            }
            Ok(d)
        };
        let max = s(
            "--max-connections",
            "COREFIT_MAX_CONNECTIONS",
            &self.max_connections,
        );
        let max_connections = match max.value.map(str::trim) {
            None | Some("auto") => MaxConnections::Auto,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=10_000_000).contains(&n) => MaxConnections::Limit(n),
                _ => return Err(max.invalid(v, "auto or a whole number from 1 to 10000000")),
            },
        };
        let trust = s(
            "--trust-forwarded",
            "COREFIT_TRUST_FORWARDED",
            &self.trust_forwarded,
        );
        let trusted = match trust.value {
            None => Vec::new(),
            Some(v) => parse_ranges(v).map_err(|bad| {
                trust.invalid(
                    v,
                    format!("IP addresses or CIDR ranges separated by commas ({bad:?} is neither)"),
                )
            })?,
        };
        Ok(ProxySettings {
            header_timeout: positive(
                s(
                    "--header-timeout",
                    "COREFIT_HEADER_TIMEOUT",
                    &self.header_timeout,
                ),
                "60s",
            )?,
            idle_timeout: positive(
                s("--idle-timeout", "COREFIT_IDLE_TIMEOUT", &self.idle_timeout),
                "75s",
            )?,
            max_connections,
            max_head: crate::supervise::proxy::settings::MAX_HEAD,
            forwarding: Forwarding {
                headers: s("--forwarded", "COREFIT_FORWARDED", &self.forwarded)
                    .choice(ForwardedHeaders::Off)?,
                trusted,
                proxy_protocol: s(
                    "--proxy-protocol",
                    "COREFIT_PROXY_PROTOCOL",
                    &self.proxy_protocol,
                )
                .choice(ProxyProtocol::Off)?,
            },
        })
    }
}

/// `10.0.0.0/8, 127.0.0.1, ::1`: ranges, a bare address being its own.
fn parse_ranges(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| t.to_owned())
        })
        .collect()
}

impl RunArgs {
    fn liveness(
        &self,
        s: for<'a> fn(&'static str, &'static str, &'a Option<String>) -> Setting<'a>,
    ) -> Result<Option<Liveness>, ConfigError> {
        let Some(path) = &self.liveness_path else {
            return Ok(None);
        };
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::Invalid {
                flag: "--liveness-path",
                var: "COREFIT_LIVENESS_PATH",
                value: path.clone(),
                expected: "a path starting with / and without spaces".into(),
            });
        }
        let failures = s(
            "--liveness-failures",
            "COREFIT_LIVENESS_FAILURES",
            &self.liveness_failures,
        )
        .count(3, 1000)?;
        let interval = s(
            "--liveness-interval",
            "COREFIT_LIVENESS_INTERVAL",
            &self.liveness_interval,
        )
        .duration("5s")?;
        let timeout = s(
            "--liveness-timeout",
            "COREFIT_LIVENESS_TIMEOUT",
            &self.liveness_timeout,
        )
        .duration("2s")?;
        if interval < std::time::Duration::from_millis(50) {
            return Err(ConfigError::Invalid {
                flag: "--liveness-interval",
                var: "COREFIT_LIVENESS_INTERVAL",
                value: format!("{interval:?}"),
                expected: "an interval of at least 50ms".into(),
            });
        }
        if timeout.is_zero() {
            return Err(ConfigError::Invalid {
                flag: "--liveness-timeout",
                var: "COREFIT_LIVENESS_TIMEOUT",
                value: format!("{timeout:?}"),
                expected: "a timeout above 0".into(),
            });
        }
        Ok(Some(Liveness {
            path: path.clone(),
            interval,
            timeout,
            failures,
        }))
    }
}

/// `--admin-addr` > `COREFIT_ADMIN_ADDR` > `COREFIT_ADMIN_PORT` (0.0.0.0:PORT).
fn admin_addr(flag: Option<&str>, env: &RunEnv) -> Result<Option<SocketAddr>, ConfigError> {
    let (name, value) = match (flag, env.admin_addr.as_deref()) {
        (Some(v), _) => ("--admin-addr", v),
        (None, Some(v)) => ("COREFIT_ADMIN_ADDR", v),
        (None, None) => {
            return match env.admin_port.as_deref() {
                None => Ok(None),
                Some(p) => Setting::new("--admin-addr", "COREFIT_ADMIN_PORT", Some(p))
                    .port(0)
                    .map(|port| Some(SocketAddr::from(([0, 0, 0, 0], port)))),
            }
        }
    };
    let bad = || ConfigError::Invalid {
        flag: "--admin-addr",
        var: if name == "--admin-addr" {
            "COREFIT_ADMIN_ADDR"
        } else {
            name
        },
        value: value.to_owned(),
        expected: "IP:PORT (e.g. 0.0.0.0:9000), or a port alone".into(),
    };
    let v = value.trim();
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(Some(a));
    }
    match v.parse::<u16>() {
        Ok(p) => Ok(Some(SocketAddr::from(([0, 0, 0, 0], p)))),
        Err(_) => Err(bad()),
    }
}

/// `--memory-threshold` > `COREFIT_MEMORY_THRESHOLD` > `MEMORY_THRESHOLD_MB`.
fn memory_threshold(flag: Option<&str>, env: &RunEnv) -> Result<Option<u64>, ConfigError> {
    let (var, value) = match (
        flag,
        env.memory_threshold.as_deref(),
        env.memory_threshold_mb.as_deref(),
    ) {
        (Some(v), _, _) => ("COREFIT_MEMORY_THRESHOLD", v),
        (None, Some(v), _) => ("COREFIT_MEMORY_THRESHOLD", v),
        (None, None, Some(v)) => ("MEMORY_THRESHOLD_MB", v),
        (None, None, None) => return Ok(None),
    };
    match crate::plan::size::parse_size(value) {
        Ok(b) if b > 0 => Ok(Some(b)),
        Ok(_) => Err(ConfigError::Invalid {
            flag: "--memory-threshold",
            var,
            value: value.to_owned(),
            expected: "a size above 0".into(),
        }),
        Err(e) => Err(ConfigError::Invalid {
            flag: "--memory-threshold",
            var,
            value: value.to_owned(),
            expected: format!("a size such as 400Mi or a number of MiB ({e})"),
        }),
    }
}

/// Flags that override the decision (also settable by environment; see
/// `corefit plan --help` and the README for the precedence).
#[derive(Debug, Clone, Default, Args)]
pub struct PlanArgs {
    /// Force a mode: auto, single or cluster [env: COREFIT_MODE, CLUSTER_MODE]
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// Worker count, or "auto" [env: COREFIT_WORKERS, CLUSTER_WORKERS, WEB_CONCURRENCY]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub workers: Option<String>,
    /// Upper bound on workers [env: COREFIT_MAX_WORKERS, MAX_WORKERS]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub max_workers: Option<String>,
    /// Memory budget per worker, e.g. 512Mi (a plain number is MiB) [env: COREFIT_MEMORY_PER_WORKER]
    #[arg(long, value_name = "SIZE")]
    pub memory_per_worker: Option<String>,
    /// Allow more workers than CPUs [env: COREFIT_ALLOW_OVERSUBSCRIBE]
    #[arg(long)]
    pub allow_oversubscribe: bool,
    /// Platform, instead of detecting it (e.g. swarm, kubernetes, vps) [env: COREFIT_PLATFORM]
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,
    /// Read /proc and /sys under this root instead of / (for fixtures and debugging)
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub probe_root: PathBuf,
}

impl PlanArgs {
    /// The raw values the override resolver validates.
    pub fn flag_values(&self) -> FlagValues {
        FlagValues {
            mode: self.mode.clone(),
            workers: self.workers.clone(),
            max_workers: self.max_workers.clone(),
            memory_per_worker: self.memory_per_worker.clone(),
            allow_oversubscribe: self.allow_oversubscribe,
        }
    }
}

/// `corefit plan`.
#[derive(Debug, Args)]
pub struct PlanCommand {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Print one JSON document (shape: docs/plan-json.md)
    #[arg(long)]
    pub json: bool,
    /// The strategy to report as chosen (default: COREFIT_SOCKET, else proxy)
    #[arg(long, value_name = "STRATEGY")]
    pub socket: Option<String>,
    /// A command to inspect: which socket strategies it can use
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_form_takes_flags_and_the_command() {
        let cli = Cli::try_parse_from([
            "corefit",
            "--workers",
            "2",
            "--socket",
            "shared",
            "--grace-period",
            "3s",
            "--",
            "node",
            "server.js",
            "--port",
            "9",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.plan.workers.as_deref(), Some("2"));
        assert_eq!(cli.cmd, ["node", "server.js", "--port", "9"]);
        let cfg = cli.run.config(cli.cmd.clone(), None).unwrap();
        assert_eq!(cfg.socket, SocketStrategy::Shared);
        assert_eq!(cfg.grace, std::time::Duration::from_secs(3));
    }

    fn run_error(args: &[&str]) -> String {
        let mut argv = vec!["corefit"];
        argv.extend_from_slice(args);
        argv.extend(["--", "x"]);
        let cli = Cli::try_parse_from(argv).unwrap();
        cli.run.config(cli.cmd, None).unwrap_err().to_string()
    }

    #[test]
    fn proxy_settings_parse_and_bad_ones_name_their_flag() {
        let cli = Cli::try_parse_from([
            "corefit",
            "--header-timeout",
            "2s",
            "--idle-timeout",
            "500ms",
            "--max-connections",
            "300",
            "--forwarded",
            "both",
            "--trust-forwarded",
            "10.0.0.0/8, ::1",
            "--proxy-protocol",
            "v2",
            "--",
            "x",
        ])
        .unwrap();
        let p = cli.run.config(cli.cmd, None).unwrap().proxy;
        assert_eq!(p.header_timeout, std::time::Duration::from_secs(2));
        assert_eq!(p.idle_timeout, std::time::Duration::from_millis(500));
        assert_eq!(p.max_connections, MaxConnections::Limit(300));
        assert_eq!(p.forwarding.headers, ForwardedHeaders::Both);
        assert_eq!(p.forwarding.trusted.len(), 2);
        assert_eq!(p.forwarding.proxy_protocol, ProxyProtocol::V2);
        for (flag, value, var) in [
            ("--header-timeout", "0", "COREFIT_HEADER_TIMEOUT"),
            ("--idle-timeout", "soon", "COREFIT_IDLE_TIMEOUT"),
            ("--max-connections", "0", "COREFIT_MAX_CONNECTIONS"),
            ("--max-connections", "1e9", "COREFIT_MAX_CONNECTIONS"),
            ("--forwarded", "yes", "COREFIT_FORWARDED"),
            (
                "--trust-forwarded",
                "10.0.0.0/33",
                "COREFIT_TRUST_FORWARDED",
            ),
            ("--proxy-protocol", "v3", "COREFIT_PROXY_PROTOCOL"),
        ] {
            let err = run_error(&[flag, value]);
            assert!(
                err.contains(flag) && err.contains(var),
                "{flag} {value}: {err}"
            );
        }
    }

    #[test]
    fn bad_run_values_are_errors_naming_the_flag_and_variable() {
        let err = run_error(&["--grace-period", "abc"]);
        assert!(
            err.contains("--grace-period") && err.contains("COREFIT_GRACE_PERIOD"),
            "{err}"
        );
        assert!(err.contains("\"abc\""), "{err}");
        let err = run_error(&["--socket", "udp"]);
        assert!(
            err.contains("--socket") && err.contains("expected one of proxy, shared, reuseport"),
            "{err}"
        );
        assert!(run_error(&["--port", "0"]).contains("PORT"));
        assert!(run_error(&["--port", "70000"]).contains("1-65535"));
        assert!(run_error(&["--respawn-limit=-1"]).contains("--respawn-limit"));
        assert!(run_error(&["--host", "localhost:80"]).contains("--host"));
    }

    #[test]
    fn defaults_and_env_log_prefix() {
        let cli = Cli::try_parse_from(["corefit", "--", "x"]).unwrap();
        let cfg = cli.run.config(cli.cmd.clone(), Some("1")).unwrap();
        assert!(cfg.log_prefix);
        assert_eq!(cfg.respawn_limit, 15);
        assert_eq!(cfg.ready, ReadyCheck::Auto);
        assert_eq!(cfg.restart, RestartPolicy::Auto);
        assert_eq!(cfg.log_format, LogFormat::Text);
        let err = cli.run.config(cli.cmd.clone(), Some("maybe")).unwrap_err();
        assert!(err.to_string().contains("COREFIT_LOG_PREFIX"));
    }

    #[test]
    fn operation_settings_name_their_flag_or_variable() {
        assert!(run_error(&["--reload-parallelism", "0"]).contains("--reload-parallelism"));
        assert!(run_error(&["--admin-addr", "nope"]).contains("--admin-addr"));
        assert!(run_error(&["--memory-threshold", "lots"]).contains("--memory-threshold"));
        assert!(run_error(&["--max-memory-per-worker=-5"]).contains("--max-memory-per-worker"));
        assert!(run_error(&["--memory-interval", "1ms"]).contains("at least 50ms"));
        assert!(run_error(&["--resize-interval", "10ms"]).contains("--resize-interval"));
        assert!(run_error(&["--liveness-path", "health"]).contains("--liveness-path"));
        assert!(
            run_error(&["--liveness-path", "/h", "--liveness-failures", "0"])
                .contains("--liveness-failures")
        );
        assert!(
            run_error(&["--liveness-path", "/h", "--liveness-timeout", "0s"])
                .contains("--liveness-timeout")
        );
        assert!(
            run_error(&["--liveness-path", "/h", "--liveness-interval", "1ms"])
                .contains("--liveness-interval")
        );
        let cli = Cli::try_parse_from(["corefit", "--", "x"]).unwrap();
        let env = |pairs: &[(&str, &str)]| {
            let get = |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            };
            RunEnv {
                admin_addr: get("COREFIT_ADMIN_ADDR"),
                admin_port: get("COREFIT_ADMIN_PORT"),
                enable_memory_monitoring: get("ENABLE_MEMORY_MONITORING"),
                memory_threshold_mb: get("MEMORY_THRESHOLD_MB"),
                ..RunEnv::default()
            }
        };
        let cfg = cli.run.config_with(cli.cmd.clone(), &env(&[])).unwrap();
        assert_eq!(cfg.admin_addr, None);
        assert_eq!(cfg.memory.ceiling, MemoryCeiling::Off);
        assert_eq!(cfg.reload_parallelism, 1);
        let cfg = cli
            .run
            .config_with(
                cli.cmd.clone(),
                &env(&[
                    ("COREFIT_ADMIN_PORT", "9100"),
                    ("ENABLE_MEMORY_MONITORING", "1"),
                    ("MEMORY_THRESHOLD_MB", "300"),
                ]),
            )
            .unwrap();
        assert_eq!(cfg.admin_addr, Some("0.0.0.0:9100".parse().unwrap()));
        assert!(cfg.memory.report);
        assert_eq!(cfg.memory.threshold_bytes, Some(300 << 20));
        // COREFIT_ADMIN_ADDR wins over COREFIT_ADMIN_PORT.
        let cfg = cli
            .run
            .config_with(
                cli.cmd.clone(),
                &env(&[
                    ("COREFIT_ADMIN_PORT", "9100"),
                    ("COREFIT_ADMIN_ADDR", "127.0.0.1:9200"),
                ]),
            )
            .unwrap();
        assert_eq!(cfg.admin_addr, Some("127.0.0.1:9200".parse().unwrap()));
        let err = cli
            .run
            .config_with(cli.cmd.clone(), &env(&[("COREFIT_ADMIN_PORT", "x")]))
            .unwrap_err();
        assert!(err.to_string().contains("COREFIT_ADMIN_PORT"), "{err}");
        let cli =
            Cli::try_parse_from(["corefit", "--max-memory-per-worker", "auto", "--", "x"]).unwrap();
        let cfg = cli.run.config(cli.cmd.clone(), None).unwrap();
        assert_eq!(cfg.memory.ceiling, MemoryCeiling::Plan);
    }

    #[test]
    fn control_subcommands_parse() {
        let cli = Cli::try_parse_from([
            "corefit",
            "scale",
            "-1",
            "--force",
            "--control-socket",
            "/x.sock",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Scale(c)) => {
                assert_eq!(c.target, "-1");
                assert!(c.force);
                assert_eq!(c.control.path(), std::path::PathBuf::from("/x.sock"));
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["corefit", "status", "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Status(StatusCommand { json: true, .. }))
        ));
    }

    #[test]
    fn plan_subcommand_still_parses() {
        let cli = Cli::try_parse_from(["corefit", "plan", "--json", "--workers", "3"]).unwrap();
        match cli.command {
            Some(Command::Plan(p)) => {
                assert!(p.json);
                assert_eq!(p.plan.workers.as_deref(), Some("3"));
            }
            other => panic!("{other:?}"),
        }
    }
}
