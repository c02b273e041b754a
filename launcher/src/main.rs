//! The `corefit` binary: parses the command line and runs a subcommand or
//! the supervisor.
//!
//! Exit codes: the table in [`corefit::exit`] (tini's for `corefit -- CMD`:
//! the single worker's own code, 128+N, 127, 126; 2 for invalid input; 1
//! for a refused or unreachable control request).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use corefit::cli::{Cli, Command, PlanArgs, PlanCommand, RunArgs, RunEnv};
use corefit::control::{client, Request, ScaleTarget};
use corefit::decision::{decide, process_env};
use corefit::exit;
use corefit::explain::Report;
use corefit::observe::table::status_table;
use corefit::plan::overrides::{Sourced, WorkerChoice};
use corefit::probe::LiveFacts;
use corefit::supervise::settings::affinity_conflict;
use corefit::supervise::{self, handoff};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Plan(cmd)) => run_plan(&cmd),
        Some(Command::ExecWorker(args)) => ExitCode::from(handoff::exec_with_socket(
            args.listen_fd,
            args.inject_preload.as_deref(),
            args.preload.as_deref(),
            &args.cmd,
        )),
        Some(Command::Status(c)) => control(&c.control.path(), &Request::Status, c.json),
        Some(Command::Reload(c)) => control(&c.path(), &Request::Reload, false),
        Some(Command::Stop(c)) => control(&c.path(), &Request::Stop, false),
        Some(Command::Scale(c)) => match c.target.parse::<ScaleTarget>() {
            Ok(target) => control(
                &c.control.path(),
                &Request::Scale {
                    target,
                    force: c.force,
                },
                false,
            ),
            Err(e) => {
                eprintln!("corefit scale: {e}");
                ExitCode::from(exit::USAGE)
            }
        },
        None => run_supervised(&cli.plan, &cli.run, cli.cmd),
    }
}

/// Sends one request to a running corefit and prints the answer: 0 when
/// it was accepted, 1 when refused or corefit cannot be reached.
fn control(path: &Path, request: &Request, json: bool) -> ExitCode {
    match client::send(path, request, Duration::from_secs(15)) {
        Ok(r) if r.ok => {
            if let Some(snapshot) = &r.snapshot {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(snapshot).unwrap_or_default()
                    );
                } else {
                    print!("{}", status_table(snapshot));
                }
            } else if let Some(m) = &r.message {
                println!("{m}");
            }
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("corefit: {}", r.error.as_deref().unwrap_or("refused"));
            ExitCode::from(exit::FAILURE)
        }
        Err(e) => {
            eprintln!("corefit: {e}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

fn decide_from(args: &PlanArgs) -> anyhow::Result<Report> {
    let env = process_env();
    Ok(decide(
        &args.flag_values(),
        args.platform.as_deref(),
        &env,
        &args.probe_root,
        LiveFacts::read(),
    )?)
}

fn run_plan(cmd: &PlanCommand) -> ExitCode {
    match decide_from(&cmd.plan) {
        Ok(mut report) => {
            let socket = cmd
                .socket
                .clone()
                .or_else(|| std::env::var("COREFIT_SOCKET").ok());
            let affinity = std::env::var("COREFIT_AFFINITY").ok();
            if let Some(refusal) = affinity_conflict(socket.as_deref(), affinity.as_deref()) {
                report.warnings.push(refusal);
            }
            report.cgroup = corefit::probe::cgroup_stats::StatFiles::locate(
                &cmd.plan.probe_root,
                &mut Vec::new(),
            )
            .read()
            .0
            .into_nonempty();
            if !cmd.command.is_empty() {
                let path = std::env::var("PATH").ok();
                let runtime = corefit::probe::runtime::of_command(&cmd.command, path.as_deref());
                corefit::probe::runtime::tell(&mut report.decision, runtime);
                let chosen = cmd
                    .socket
                    .clone()
                    .or_else(|| std::env::var("COREFIT_SOCKET").ok())
                    .unwrap_or_else(|| "proxy".to_owned());
                report.command = Some(corefit::strategies::report(
                    &cmd.command,
                    std::env::var("PATH").ok().as_deref(),
                    &chosen,
                    corefit::supervise::sockets::migrate_req(std::path::Path::new("/")),
                ));
            }
            if cmd.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corefit: {e}");
            ExitCode::from(exit::USAGE)
        }
    }
}

fn run_supervised(plan_args: &PlanArgs, run_args: &RunArgs, cmd: Vec<String>) -> ExitCode {
    if cmd.is_empty() {
        eprintln!(
            "corefit: nothing to run: give the command after `--`, e.g. `corefit -- node server.js` (or see `corefit plan`)"
        );
        return ExitCode::from(exit::USAGE);
    }
    let runtime = corefit::probe::runtime::of_command(&cmd, std::env::var("PATH").ok().as_deref());
    let mut report = match decide_from(plan_args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corefit: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    corefit::probe::runtime::tell(&mut report.decision, runtime);
    let config = match run_args.config_with(cmd, &RunEnv::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corefit: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // Live resize re-plans with the same flags and environment.
    let replan = || {
        decide_from(plan_args).ok().map(|mut r| {
            corefit::probe::runtime::tell(&mut r.decision, runtime);
            r.decision
        })
    };
    let fixed = match &report.inputs.overrides.workers {
        Some(Sourced {
            value: WorkerChoice::Count(n),
            source,
        }) => Some(format!("{source}={n}")),
        _ => None,
    };
    let resize = supervise::Resize {
        replan: &replan,
        fixed,
    };
    ExitCode::from(supervise::run_with(&config, &report.decision, Some(resize)))
}
