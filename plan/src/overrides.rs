//! What the user asked for, resolved from flags and environment in one
//! documented precedence: CLI flag > `COREFIT_*` > the names people already
//! use (`CLUSTER_MODE`, `CLUSTER_WORKERS`, `MAX_WORKERS`, `WEB_CONCURRENCY`).
//!
//! Only the highest-precedence source that is set is parsed; a value that
//! does not parse is an [`OverrideError`] naming the flag or variable, so
//! the launcher stops with a clear message instead of guessing a count.

use std::collections::BTreeMap;

use serde::Serialize;
use thiserror::Error;

use super::size::{parse_size, SizeError};

/// The environment, as plain data (tests build one by hand).
pub type Env = BTreeMap<String, String>;

/// A value and the flag or variable it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    /// `--workers`, `COREFIT_WORKERS`, `WEB_CONCURRENCY`...
    pub source: String,
}

impl<T> Sourced<T> {
    fn new(value: T, source: &str) -> Sourced<T> {
        Sourced {
            value,
            source: source.to_owned(),
        }
    }
}

/// The mode asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeChoice {
    Auto,
    Single,
    Cluster,
}

impl ModeChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            ModeChoice::Auto => "auto",
            ModeChoice::Single => "single",
            ModeChoice::Cluster => "cluster",
        }
    }
}

/// Who adds capacity, as asked: `auto` leaves it to the platform (an
/// orchestrator adds instances, a host adds workers). The operator sets it
/// from a ClusterApp's strategy, so a pod reports the operator's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalingChoice {
    Auto,
    Horizontal,
    Vertical,
}

impl ScalingChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            ScalingChoice::Auto => "auto",
            ScalingChoice::Horizontal => "horizontal",
            ScalingChoice::Vertical => "vertical",
        }
    }
}

/// The worker count asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerChoice {
    Auto,
    Count(u32),
}

/// Resolved overrides: the plan's third input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Overrides {
    pub mode: Option<Sourced<ModeChoice>>,
    pub workers: Option<Sourced<WorkerChoice>>,
    pub max_workers: Option<Sourced<u32>>,
    pub memory_per_worker: Option<Sourced<u64>>,
    pub allow_oversubscribe: Option<Sourced<bool>>,
    /// Who adds capacity (`--scaling`, `COREFIT_SCALING`).
    pub scaling: Option<Sourced<ScalingChoice>>,
    /// The user's own `NODE_OPTIONS`, kept and extended, never replaced.
    pub node_options: Option<String>,
    /// The user's own `GOMAXPROCS`, left alone when set.
    pub gomaxprocs: Option<String>,
    /// The user's own values of the share table's other variables
    /// (`GOMEMLIMIT`, `JAVA_TOOL_OPTIONS`... see `shares::USER_VARIABLES`),
    /// kept when set.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[serde(serialize_with = "super::redact::serialize_env")]
    pub runtime_env: BTreeMap<String, String>,
    /// Lower-precedence sources that were set but not used.
    pub shadowed: Vec<String>,
}

/// Raw flag values, as typed on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagValues {
    pub mode: Option<String>,
    pub workers: Option<String>,
    pub max_workers: Option<String>,
    pub memory_per_worker: Option<String>,
    pub allow_oversubscribe: bool,
    pub scaling: Option<String>,
}

/// A flag or variable whose value makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {source_name}={}: {reason}", super::redact::quoted(.source_name, .value))]
pub struct OverrideError {
    pub source_name: String,
    pub value: String,
    pub reason: String,
}

/// The most workers anyone may ask for; larger values are a typo.
pub const MAX_REQUESTABLE_WORKERS: u64 = 4096;

/// The smallest memory-per-worker budget accepted.
pub const MIN_MEMORY_PER_WORKER: u64 = 16 * 1024 * 1024;

const MODE_SOURCES: [&str; 3] = ["--mode", "COREFIT_MODE", "CLUSTER_MODE"];
const WORKER_SOURCES: [&str; 4] = [
    "--workers",
    "COREFIT_WORKERS",
    "CLUSTER_WORKERS",
    "WEB_CONCURRENCY",
];
const MAX_WORKER_SOURCES: [&str; 3] = ["--max-workers", "COREFIT_MAX_WORKERS", "MAX_WORKERS"];
const MEMORY_SOURCES: [&str; 2] = ["--memory-per-worker", "COREFIT_MEMORY_PER_WORKER"];
const OVERSUBSCRIBE_SOURCES: [&str; 2] = ["--allow-oversubscribe", "COREFIT_ALLOW_OVERSUBSCRIBE"];
const SCALING_SOURCES: [&str; 2] = ["--scaling", "COREFIT_SCALING"];

/// Resolves flags and environment into [`Overrides`].
pub fn resolve(flags: &FlagValues, env: &Env) -> Result<Overrides, OverrideError> {
    let mut r = Reader {
        env,
        shadowed: Vec::new(),
    };
    let mode = r.read(&MODE_SOURCES, flags.mode.as_deref(), parse_mode)?;
    let workers = r.read(&WORKER_SOURCES, flags.workers.as_deref(), parse_workers)?;
    let max_workers = r.read(
        &MAX_WORKER_SOURCES,
        flags.max_workers.as_deref(),
        parse_count,
    )?;
    let memory_per_worker = r.read(
        &MEMORY_SOURCES,
        flags.memory_per_worker.as_deref(),
        parse_memory,
    )?;
    let oversubscribe_flag = flags.allow_oversubscribe.then_some("true");
    let allow_oversubscribe = r.read(&OVERSUBSCRIBE_SOURCES, oversubscribe_flag, parse_bool)?;
    let scaling = r.read(&SCALING_SOURCES, flags.scaling.as_deref(), parse_scaling)?;
    let shadowed = r.shadowed;
    Ok(Overrides {
        mode,
        workers,
        max_workers,
        memory_per_worker,
        allow_oversubscribe,
        scaling,
        node_options: env.get("NODE_OPTIONS").cloned(),
        gomaxprocs: env.get("GOMAXPROCS").cloned(),
        runtime_env: super::shares::USER_VARIABLES
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), env.get(*k)?.clone())))
            .collect(),
        shadowed,
    })
}

/// Reads settings from their sources, noting the shadowed ones.
struct Reader<'a> {
    env: &'a Env,
    shadowed: Vec<String>,
}

impl<'a> Reader<'a> {
    /// The setting from its first set source (see [`pick`]), parsed by
    /// `parse`; a value it refuses is an error naming that source.
    fn read<T>(
        &mut self,
        sources: &[&'static str],
        flag: Option<&'a str>,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Option<Sourced<T>>, OverrideError> {
        pick(sources, flag, self.env, &mut self.shadowed)
            .map(|(src, raw)| {
                parse(raw)
                    .map(|v| Sourced::new(v, src))
                    .map_err(|r| err(src, raw, r))
            })
            .transpose()
    }
}

/// The first set source in precedence order (the flag is `sources[0]`);
/// the others that are set are recorded as shadowed. Empty values count as
/// unset, as in most shells' `${VAR:-default}`.
fn pick<'a>(
    sources: &[&'static str],
    flag: Option<&'a str>,
    env: &'a Env,
    shadowed: &mut Vec<String>,
) -> Option<(&'static str, &'a str)> {
    let mut set = Vec::new();
    if let Some(v) = flag {
        set.push((sources[0], v));
    }
    for name in &sources[1..] {
        if let Some(v) = env.get(*name).filter(|v| !v.trim().is_empty()) {
            set.push((*name, v.as_str()));
        }
    }
    let mut it = set.into_iter();
    let first = it.next()?;
    for (name, value) in it {
        shadowed.push(format!(
            "{name}={} is overridden by {}",
            super::redact::quoted(name, value),
            first.0
        ));
    }
    Some(first)
}

fn err(source: &str, raw: &str, reason: String) -> OverrideError {
    OverrideError {
        source_name: source.to_owned(),
        value: raw.to_owned(),
        reason,
    }
}

fn parse_mode(raw: &str) -> Result<ModeChoice, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(ModeChoice::Auto),
        "single" | "fork" | "false" | "0" | "no" | "off" => Ok(ModeChoice::Single),
        "cluster" | "true" | "1" | "yes" | "on" => Ok(ModeChoice::Cluster),
        _ => Err("expected one of auto, single, cluster (or true/false)".to_owned()),
    }
}

fn parse_scaling(raw: &str) -> Result<ScalingChoice, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(ScalingChoice::Auto),
        "horizontal" => Ok(ScalingChoice::Horizontal),
        "vertical" => Ok(ScalingChoice::Vertical),
        _ => Err("expected one of auto, horizontal, vertical".to_owned()),
    }
}

fn parse_workers(raw: &str) -> Result<WorkerChoice, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "auto" | "max" => Ok(WorkerChoice::Auto),
        _ => parse_count(raw).map(WorkerChoice::Count),
    }
}

/// A positive whole number of workers, at most [`MAX_REQUESTABLE_WORKERS`].
fn parse_count(raw: &str) -> Result<u32, String> {
    let t = raw.trim();
    let expected = "expected a whole number of workers from 1 to 4096, or 'auto'";
    if t.starts_with('-') && t[1..].chars().all(|c| c.is_ascii_digit()) && t.len() > 1 {
        return Err(format!("negative worker count; {expected}"));
    }
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("not a whole number; {expected}"));
    }
    match t.parse::<u64>() {
        Ok(0) => Err(format!("zero workers cannot serve; {expected}")),
        Ok(n) if n <= MAX_REQUESTABLE_WORKERS => Ok(n as u32),
        _ => Err(format!("too large; {expected}")),
    }
}

fn parse_memory(raw: &str) -> Result<u64, String> {
    let bytes = parse_size(raw).map_err(|e: SizeError| e.to_string())?;
    if bytes < MIN_MEMORY_PER_WORKER {
        return Err("below the 16 MiB minimum per worker (a plain number means MiB)".to_owned());
    }
    Ok(bytes)
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

#[cfg(test)]
mod tests {

    /// Messages about a setting never print a secret-looking value (none
    /// of corefit's own settings has such a name; this keeps it so).
    #[test]
    fn messages_redact_secret_looking_values() {
        let e = err("MY_TOKEN", "tok-s3cr3t", "not a number".to_owned());
        assert_eq!(e.to_string(), "invalid MY_TOKEN=<redacted>: not a number");
        let e = err("MAX_WORKERS", "abc", "not a number".to_owned());
        assert_eq!(e.to_string(), "invalid MAX_WORKERS=\"abc\": not a number");
        let env = Env::from([
            ("COREFIT_WORKERS".to_owned(), "2".to_owned()),
            ("WEB_CONCURRENCY".to_owned(), "3".to_owned()),
        ]);
        let mut shadowed = Vec::new();
        let first = pick(&WORKER_SOURCES, None, &env, &mut shadowed);
        assert_eq!(first, Some(("COREFIT_WORKERS", "2")));
        assert_eq!(
            shadowed,
            ["WEB_CONCURRENCY=\"3\" is overridden by COREFIT_WORKERS"]
        );
    }

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flag_beats_corefit_beats_legacy() {
        let flags = FlagValues {
            workers: Some("3".into()),
            ..Default::default()
        };
        let e = env(&[("COREFIT_WORKERS", "2"), ("WEB_CONCURRENCY", "5")]);
        let o = resolve(&flags, &e).unwrap();
        assert_eq!(
            o.workers.unwrap(),
            Sourced::new(WorkerChoice::Count(3), "--workers")
        );
        assert_eq!(o.shadowed.len(), 2);

        let o = resolve(&FlagValues::default(), &e).unwrap();
        assert_eq!(o.workers.unwrap().source, "COREFIT_WORKERS");

        let e = env(&[("CLUSTER_WORKERS", "2"), ("WEB_CONCURRENCY", "5")]);
        let o = resolve(&FlagValues::default(), &e).unwrap();
        assert_eq!(
            o.workers.unwrap(),
            Sourced::new(WorkerChoice::Count(2), "CLUSTER_WORKERS")
        );
    }

    #[test]
    fn legacy_mode_names() {
        let o = resolve(&FlagValues::default(), &env(&[("CLUSTER_MODE", "true")])).unwrap();
        assert_eq!(o.mode.unwrap().value, ModeChoice::Cluster);
        let o = resolve(&FlagValues::default(), &env(&[("CLUSTER_MODE", "false")])).unwrap();
        assert_eq!(o.mode.unwrap().value, ModeChoice::Single);
    }

    #[test]
    fn bad_values_name_their_source() {
        for (var, value) in [
            ("MAX_WORKERS", "abc"),
            ("MAX_WORKERS", "-3"),
            ("MAX_WORKERS", "0"),
            ("MAX_WORKERS", "1e9"),
            ("MAX_WORKERS", "99999999999999999999999"),
            ("WEB_CONCURRENCY", "2.5"),
            ("CLUSTER_MODE", "maybe"),
            ("COREFIT_MEMORY_PER_WORKER", "lots"),
            ("COREFIT_MEMORY_PER_WORKER", "1"),
            ("COREFIT_ALLOW_OVERSUBSCRIBE", "perhaps"),
            ("COREFIT_SCALING", "diagonal"),
        ] {
            let e = resolve(&FlagValues::default(), &env(&[(var, value)])).unwrap_err();
            assert_eq!(e.source_name, var);
            assert!(e.to_string().contains(var), "{e}");
            assert!(e.to_string().contains(value), "{e}");
        }
    }

    #[test]
    fn bad_flag_names_the_flag() {
        let flags = FlagValues {
            workers: Some("-1".into()),
            ..Default::default()
        };
        let e = resolve(&flags, &Env::new()).unwrap_err();
        assert_eq!(e.source_name, "--workers");
        assert!(e.reason.contains("negative"));
    }

    #[test]
    fn auto_and_max_mean_auto() {
        for v in ["auto", "max", "MAX"] {
            let o = resolve(&FlagValues::default(), &env(&[("COREFIT_WORKERS", v)])).unwrap();
            assert_eq!(o.workers.unwrap().value, WorkerChoice::Auto);
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let o = resolve(
            &FlagValues::default(),
            &env(&[("COREFIT_WORKERS", ""), ("WEB_CONCURRENCY", "2")]),
        )
        .unwrap();
        assert_eq!(o.workers.unwrap().source, "WEB_CONCURRENCY");
    }

    #[test]
    fn scaling_from_flag_or_environment() {
        let o = resolve(
            &FlagValues::default(),
            &env(&[("COREFIT_SCALING", "Vertical")]),
        )
        .unwrap();
        assert_eq!(
            o.scaling.unwrap(),
            Sourced::new(ScalingChoice::Vertical, "COREFIT_SCALING")
        );
        let flags = FlagValues {
            scaling: Some("horizontal".into()),
            ..Default::default()
        };
        let o = resolve(&flags, &env(&[("COREFIT_SCALING", "vertical")])).unwrap();
        assert_eq!(o.scaling.unwrap().value, ScalingChoice::Horizontal);
        assert_eq!(o.shadowed.len(), 1);
        assert_eq!(
            resolve(&FlagValues::default(), &Env::new())
                .unwrap()
                .scaling,
            None
        );
    }
}
