//! The whole "detect -> plan" step, the one place that gathers inputs from
//! the system and hands them to the pure [`crate::plan::plan`].

use std::path::Path;

use thiserror::Error;

use crate::explain::Report;
use crate::plan::{self, Env, FlagValues, OverrideError};
use crate::probe::platform::{self as platform_probe, MarkerFiles, PlatformError};
use crate::probe::{self, LiveFacts, Warnings};

/// Input the launcher cannot decide from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecideError {
    #[error(transparent)]
    Override(#[from] OverrideError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
}

/// Probes under `root`, resolves overrides and plans.
pub fn decide(
    flags: &FlagValues,
    platform_flag: Option<&str>,
    env: &Env,
    root: &Path,
    live: LiveFacts,
) -> Result<Report, DecideError> {
    let overrides = plan::resolve(flags, env)?;
    let mut warnings = Warnings::new();
    let platform =
        platform_probe::detect(platform_flag, env, &MarkerFiles::probe(root), &mut warnings)?;
    let limits = probe::limits(root, live, &mut warnings);
    let decision = plan::plan(&limits, &platform, &overrides);
    Ok(Report::new(limits, platform, overrides, decision, warnings))
}

/// The process environment as plain data; variables whose name or value
/// is not UTF-8 are skipped (none of corefit's inputs can be such).
pub fn process_env() -> Env {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}
