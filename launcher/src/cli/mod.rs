//! The command line (clap).
//!
//! - `commands`: the run form, the subcommands, the plan overrides (taken
//!   as strings and validated by `plan::overrides`) and the control socket.
//! - [`settings`]: the run settings, each declared once (flag, variables in
//!   precedence order, default, parser, help); [`spec`] says what a
//!   declaration is and derives the clap argument, the help line and the
//!   error message from it.
//! - `run`: the run settings as given (flags, environment) and their
//!   resolution into the typed `RunConfig`.
//!
//! A bad flag and a bad variable get the same message, naming both.

mod commands;
mod run;
pub mod settings;
pub mod spec;
#[cfg(test)]
mod tests;

pub use commands::{
    Cli, Command, ControlArgs, ExecWorkerArgs, PlanArgs, PlanCommand, ScaleCommand, StatusCommand,
};
pub use run::{RunArgs, RunEnv};
