//! The command line's shape: the run form, the subcommands, the plan
//! overrides and the control socket. The run settings themselves are
//! declared in [`super::settings`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::RunArgs;
use crate::plan::FlagValues;

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
    #[arg(long, value_name = "PATH", conflicts_with = "preload")]
    pub inject_preload: Option<String>,
    /// `shared`: the preload shim to add to LD_PRELOAD (with LISTEN_*), for
    /// the handover of connections closed while stopping.
    #[arg(long, value_name = "PATH")]
    pub preload: Option<String>,
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
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
    /// Who adds capacity, as reported: auto (the platform's way), horizontal or vertical [env: COREFIT_SCALING]
    #[arg(long, value_name = "HOW")]
    pub scaling: Option<String>,
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
            scaling: self.scaling.clone(),
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
