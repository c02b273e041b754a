//! The `corefit` binary: parses the command line and runs a subcommand.
//! Exit codes: 0 success, 2 invalid input (a flag, variable or value named
//! in the message).

use std::process::ExitCode;

use clap::Parser;
use corefit::cli::{Cli, Command, PlanCommand};
use corefit::decision::{decide, process_env};
use corefit::probe::LiveFacts;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan(cmd) => run_plan(&cmd),
    }
}

fn run_plan(cmd: &PlanCommand) -> ExitCode {
    let env = process_env();
    let args = &cmd.plan;
    match decide(
        &args.flag_values(),
        args.platform.as_deref(),
        &env,
        &args.probe_root,
        LiveFacts::read(),
    ) {
        Ok(report) => {
            if cmd.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corefit: {e}");
            ExitCode::from(2)
        }
    }
}
