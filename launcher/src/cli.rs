//! Command-line settings (clap). Values that feed the plan are taken as
//! strings and validated by `plan::overrides`, so a bad flag and a bad
//! variable get the same message naming their source.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::plan::FlagValues;

/// corefit: run an app with as many processes as the container really has CPUs for.
#[derive(Debug, Parser)]
#[command(name = "corefit", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the detected limits and platform, the decision and every reason.
    Plan(PlanCommand),
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
}
