//! Command-line settings (clap). Values that feed the plan are taken as
//! strings and validated by `plan::overrides`, so a bad flag and a bad
//! variable get the same message naming their source.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::plan::FlagValues;
use crate::supervise::config::parse_duration;
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
    override_usage = "corefit [FLAGS] -- CMD [ARGS]...\n       corefit plan [FLAGS]"
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
    /// Internal: put the shared socket on fd 3, set LISTEN_PID and exec.
    #[command(name = "__exec-worker", hide = true)]
    ExecWorker(ExecWorkerArgs),
}

/// `corefit __exec-worker --listen-fd N -- CMD ARGS...`.
#[derive(Debug, Args)]
pub struct ExecWorkerArgs {
    /// The inherited descriptor of the shared socket.
    #[arg(long, value_name = "FD")]
    pub listen_fd: i32,
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// How the workers are run (also settable by environment).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// How workers share the public port
    #[arg(long, value_enum, env = "COREFIT_SOCKET", default_value = "proxy")]
    pub socket: SocketStrategy,
    /// The public port (proxy and shared bind it; workers get PORT per strategy)
    #[arg(long, env = "PORT", default_value_t = 3000, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Address the public socket binds (proxy, shared)
    #[arg(long, env = "COREFIT_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Time between forwarding SIGTERM and SIGKILL, e.g. 25s
    #[arg(long, env = "COREFIT_GRACE_PERIOD", default_value = "25s", value_parser = duration)]
    pub grace_period: Duration,
    /// Unstable restarts in a row after which corefit gives up and exits non-zero
    #[arg(long, env = "COREFIT_RESPAWN_LIMIT", default_value_t = 15)]
    pub respawn_limit: u32,
    /// A worker up this long (and ready) counts as stable: its backoff resets
    #[arg(long, env = "COREFIT_MIN_UPTIME", default_value = "1s", value_parser = duration)]
    pub min_uptime: Duration,
    /// First restart delay after an unstable exit (doubles each time)
    #[arg(long, env = "COREFIT_BACKOFF", default_value = "100ms", value_parser = duration)]
    pub backoff: Duration,
    /// Longest restart delay
    #[arg(long, env = "COREFIT_BACKOFF_MAX", default_value = "5s", value_parser = duration)]
    pub backoff_max: Duration,
    /// When exited workers are restarted (auto: never with one worker, always in cluster mode)
    #[arg(long, value_enum, env = "COREFIT_RESTART", default_value = "auto")]
    pub restart: RestartPolicy,
    /// How a worker is known to be ready (auto: port for proxy and none, else at start)
    #[arg(long, value_enum, env = "COREFIT_READY", default_value = "auto")]
    pub ready: ReadyCheck,
    /// A worker not ready within this time is killed and restarted
    #[arg(long, env = "COREFIT_READY_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub ready_timeout: Duration,
    /// Prefix each line of worker output with `[worker N] `
    #[arg(long, env = "COREFIT_LOG_PREFIX")]
    pub log_prefix: bool,
    /// Format of corefit's own log lines (stderr)
    #[arg(long, value_enum, env = "COREFIT_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

impl RunArgs {
    /// The typed settings for running `command`.
    pub fn config(&self, command: Vec<String>) -> RunConfig {
        RunConfig {
            command,
            socket: self.socket,
            host: self.host,
            port: self.port,
            grace: self.grace_period,
            respawn_limit: self.respawn_limit,
            min_uptime: self.min_uptime,
            backoff_initial: self.backoff,
            backoff_max: self.backoff_max.max(self.backoff),
            restart: self.restart,
            ready: self.ready,
            ready_timeout: self.ready_timeout,
            log_prefix: self.log_prefix,
            log_format: self.log_format,
        }
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
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
        let cfg = cli.run.config(cli.cmd.clone());
        assert_eq!(cfg.socket, SocketStrategy::Shared);
        assert_eq!(cfg.grace, Duration::from_secs(3));
    }

    #[test]
    fn bad_run_values_are_errors_naming_the_flag() {
        let err = Cli::try_parse_from(["corefit", "--grace-period", "abc", "--", "x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--grace-period"), "{err}");
        let err = Cli::try_parse_from(["corefit", "--socket", "udp", "--", "x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--socket"), "{err}");
        assert!(Cli::try_parse_from(["corefit", "--port", "0", "--", "x"]).is_err());
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
