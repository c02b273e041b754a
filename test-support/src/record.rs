//! One line of the reliability table (docs/reliability.md).
//!
//! Chaos, fault and hostile-input tests call [`record`] when they finish.
//! Nothing happens unless `COREFIT_RELIABILITY_OUT` names a file: then one
//! JSON object per scenario is appended to it, and
//! `scripts/reliability.sh` renders those lines into docs/reliability.md
//! with `scripts/render_reliability.py`. The tests assert the properties
//! (nothing lost, nothing leaked); this only keeps the figures they saw.

use std::io::Write;
use std::time::Duration;

/// The environment variable naming the JSON-lines file.
pub const OUT_VAR: &str = "COREFIT_RELIABILITY_OUT";

/// Appends one scenario's figures to `$COREFIT_RELIABILITY_OUT`, if set.
///
/// - `area`: "launcher", "operator", "hostile specs", "security" (the
///   table a line goes into);
/// - `scenario`: a short name ("SIGKILL a worker every 3 s");
/// - `fault`: what was done, in words;
/// - `duration`: how long the fault and the load lasted;
/// - `figures`: ordered (name, value) pairs, e.g. ("answered", "41234");
/// - `outcome`: one line, what held ("served throughout, 0 zombies").
pub fn record(
    area: &str,
    scenario: &str,
    fault: &str,
    duration: Duration,
    figures: &[(&str, String)],
    outcome: &str,
) {
    let Ok(path) = std::env::var(OUT_VAR) else {
        return;
    };
    let figures: Vec<serde_json::Value> = figures
        .iter()
        .map(|(k, v)| serde_json::json!([k, v]))
        .collect();
    let line = serde_json::json!({
        "area": area,
        "scenario": scenario,
        "fault": fault,
        "duration_s": (duration.as_secs_f64() * 10.0).round() / 10.0,
        "figures": figures,
        "outcome": outcome,
    });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{OUT_VAR}={path}: cannot open: {e}"));
    // One write per line: concurrent tests append whole lines.
    let mut text = line.to_string();
    text.push('\n');
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{OUT_VAR}={path}: cannot write: {e}"));
}
