//! `corefit plan`: the inputs, the decision and every reason, as text for
//! people or as one JSON document (shape in `docs/plan-json.md`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::plan::decide::cpus_phrase;
use crate::plan::facts::{CgroupLayout, Limits, Platform};
use crate::plan::redact;
use crate::plan::size::human_bytes;
use crate::plan::{Overrides, Plan};
use crate::strategies::{CommandReport, Support};

/// The JSON document's schema identifier; bumped on breaking changes.
pub const SCHEMA: &str = "corefit.dev/plan/v1";

/// Everything `corefit plan` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub inputs: Inputs,
    pub decision: Plan,
    /// `corefit plan -- CMD`: what the command can use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandReport>,
    /// Probe warnings (unreadable or garbage files) followed by the plan's.
    pub warnings: Vec<String>,
    /// corefit's cgroup's throttling and pressure now, when they exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<crate::probe::cgroup_stats::CgroupStats>,
}

/// The facts and overrides the decision read.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs {
    pub limits: Limits,
    pub platform: Platform,
    pub overrides: Overrides,
}

impl Report {
    pub fn new(
        limits: Limits,
        platform: Platform,
        overrides: Overrides,
        plan: Plan,
        probe_warnings: Vec<String>,
    ) -> Report {
        let mut warnings = probe_warnings;
        warnings.extend(plan.warnings.iter().cloned());
        Report {
            schema: SCHEMA,
            inputs: Inputs {
                limits,
                platform,
                overrides,
            },
            decision: plan,
            command: None,
            warnings,
            cgroup: None,
        }
    }

    /// One JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Text for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let l = &self.inputs.limits;
        let p = &self.inputs.platform;
        let d = &self.decision;
        let _ = writeln!(out, "Inputs");
        let _ = writeln!(
            out,
            "  platform      {} ({})",
            p.kind.display_name(),
            p.evidence
        );
        let _ = writeln!(out, "  cgroups       {}", layout_phrase(l.cgroup));
        let mut cpu = format!("host {}", l.cpu.host_cpus);
        if let Some(a) = l.cpu.affinity_cpus {
            let _ = write!(cpu, ", affinity {a}");
        }
        if let Some(s) = &l.cpu.cpuset {
            let _ = write!(cpu, ", cpuset {} = {} ({})", s.list, s.cpus, s.source.file);
        }
        match &l.cpu.quota {
            Some(q) => {
                let _ = write!(
                    cpu,
                    ", quota {}/{} = {} ({})",
                    q.quota_us,
                    q.period_us,
                    trim_float(q.cpus()),
                    q.source.file
                );
            }
            None => cpu.push_str(", no quota"),
        }
        if let Some(h) = &p.cpu_hint {
            let _ = write!(cpu, ", {}={}", h.variable, h.value);
        }
        let _ = writeln!(out, "  CPU           {cpu}");
        let mut mem = match l.memory.host_bytes {
            Some(b) => format!("host {}", human_bytes(b)),
            None => "host unknown".to_owned(),
        };
        match &l.memory.limit {
            Some(m) => {
                let _ = write!(mem, ", limit {} ({})", human_bytes(m.bytes), m.source.file);
            }
            None => mem.push_str(", no limit"),
        }
        if let Some(m) = &l.memory.high {
            let _ = write!(mem, ", high {} ({})", human_bytes(m.bytes), m.source.file);
        }
        if let Some(h) = &p.memory_hint {
            let _ = write!(mem, ", {}={} MiB", h.variable, h.value >> 20);
        }
        let _ = writeln!(out, "  memory        {mem}");
        if let Some(c) = &self.cgroup {
            cgroup_text(&mut out, c);
        }
        let _ = writeln!(
            out,
            "  overrides     {}",
            overrides_phrase(&self.inputs.overrides)
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "Decision");
        let _ = writeln!(out, "  mode          {}", d.mode.as_str());
        let _ = writeln!(out, "  workers       {}", d.workers);
        let _ = writeln!(
            out,
            "  CPUs          {} ({})",
            cpus_phrase(d.effective_cpus.value),
            d.effective_cpus.source
        );
        if let Some(m) = &d.memory {
            let share = d.worker_memory_share.map(human_bytes).unwrap_or_default();
            let _ = writeln!(
                out,
                "  memory        {} ({}), {share} per worker",
                human_bytes(m.value),
                m.source
            );
        }
        let _ = writeln!(
            out,
            "  scaling       {}",
            serde_json::to_value(d.scaling)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "Reasons");
        for r in &d.reasons {
            let _ = writeln!(out, "  - {r}");
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "Warnings");
            for w in &self.warnings {
                let _ = writeln!(out, "  ! {w}");
            }
        }
        if let Some(c) = &self.command {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Command: {} ({}, {})",
                c.command.join(" "),
                c.program.as_deref().unwrap_or("not found"),
                c.linkage.unwrap_or("not inspected")
            );
            for s in &c.strategies {
                let verdict = match s.support {
                    Support::Yes => "yes",
                    Support::IfTheAppSupportsIt => "if the app supports it",
                    Support::No => "no",
                };
                let mark = if s.strategy == c.chosen { "*" } else { " " };
                let _ = writeln!(out, " {mark} {:<10} {verdict}: {}", s.strategy, s.note);
                if !s.reloads.is_empty() && s.support != Support::No {
                    let _ = writeln!(out, "   {:<10} reloads: {}", "", s.reloads);
                }
            }
            let _ = writeln!(
                out,
                "   (* = the strategy corefit would use: --socket / COREFIT_SOCKET, default proxy)"
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Worker environment (plus COREFIT_WORKER_ID and NODE_APP_INSTANCE = 0..{})",
            d.workers - 1
        );
        let we = &d.worker_env;
        let only = we.command_runtime.and_then(|r| we.by_runtime.get(&r));
        let mut shown_env = we.common.clone();
        shown_env.extend(
            only.into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        for (k, v) in &shown_env {
            let _ = writeln!(out, "  {k}={}", redact::shown(k, v));
        }
        shares_text(&mut out, we);
        out
    }
}

/// Throttling and pressure so far, in the Inputs section.
fn cgroup_text(out: &mut String, c: &crate::probe::cgroup_stats::CgroupStats) {
    if let Some(t) = c.throttling.as_ref().filter(|t| t.periods > 0) {
        let _ = writeln!(
            out,
            "  throttling    {} of {} CFS periods throttled, {:.1}s waiting ({})",
            t.throttled_periods, t.periods, t.throttled_seconds, t.file
        );
    }
    if let Some(psi) = c.pressure_summary() {
        let _ = writeln!(out, "  pressure      some avg10/60/300: {psi}");
    }
}

/// The share table's rows: each variable, who reads it, and why.
fn shares_text(out: &mut String, we: &crate::plan::worker_env::WorkerEnv) {
    if we.shares.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Runtime shares (docs/worker-env.md)");
    for s in &we.shares {
        let set = match &s.value {
            Some(v) => format!("{}={}", s.variable, redact::shown(&s.variable, v)),
            None => s.variable.clone(),
        };
        let gate = if !s.only_for_command {
            String::new()
        } else if we.command_runtime == Some(s.runtime) {
            ", the command is one".to_owned()
        } else {
            format!(", only when the command is {}", s.runtime.as_str())
        };
        let _ = writeln!(out, "  {set}  [{}{gate}] {}", s.runtime.as_str(), s.reason);
    }
}

fn layout_phrase(l: CgroupLayout) -> &'static str {
    match l {
        CgroupLayout::V1 => "v1",
        CgroupLayout::V2 => "v2 (unified)",
        CgroupLayout::Hybrid => "hybrid (v1 controllers beside a cgroup2 mount)",
        CgroupLayout::None => "none found",
    }
}

fn overrides_phrase(o: &Overrides) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &o.mode {
        parts.push(format!("{} = {}", m.source, m.value.as_str()));
    }
    if let Some(w) = &o.workers {
        parts.push(match w.value {
            crate::plan::overrides::WorkerChoice::Auto => format!("{} = auto", w.source),
            crate::plan::overrides::WorkerChoice::Count(n) => format!("{} = {n}", w.source),
        });
    }
    if let Some(m) = &o.max_workers {
        parts.push(format!("{} = {}", m.source, m.value));
    }
    if let Some(m) = &o.memory_per_worker {
        parts.push(format!("{} = {}", m.source, human_bytes(m.value)));
    }
    if let Some(a) = &o.allow_oversubscribe {
        parts.push(format!("{} = {}", a.source, a.value));
    }
    if let Some(s) = &o.scaling {
        parts.push(format!("{} = {}", s.source, s.value.as_str()));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

fn trim_float(v: f64) -> String {
    let r = (v * 1000.0).round() / 1000.0;
    format!("{r}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::facts::{CpuFacts, MemoryFacts, PlatformKind};

    /// A cgroup v2 host with `host_cpus` CPUs (`affinity` of them in the
    /// affinity mask), 1 GiB of memory and no limits.
    fn unlimited_v2(host_cpus: u32, affinity: Option<u32>) -> Limits {
        Limits {
            cgroup: CgroupLayout::V2,
            cpu: CpuFacts {
                host_cpus,
                affinity_cpus: affinity,
                quota: None,
                cpuset: None,
            },
            memory: MemoryFacts {
                host_bytes: Some(1 << 30),
                limit: None,
                high: None,
            },
        }
    }

    /// A secret-looking variable in the printed worker environment shows
    /// its name, never its value, in text and in JSON.
    #[test]
    fn secret_values_are_redacted_in_text_and_json() {
        let limits = unlimited_v2(2, None);
        let platform = Platform::new(PlatformKind::Vps, "test");
        let overrides = Overrides::default();
        let mut plan = crate::plan::plan(&limits, &platform, &overrides);
        plan.worker_env
            .common
            .insert("API_TOKEN".to_owned(), "tok-s3cr3t".to_owned());
        let report = Report::new(limits, platform, overrides, plan, Vec::new());
        let text = report.to_text();
        assert!(text.contains("  API_TOKEN=<redacted>\n"), "{text}");
        assert!(text.contains("  COREFIT_WORKERS=2\n"), "{text}");
        let json = report.to_json();
        assert!(json.contains("\"API_TOKEN\": \"<redacted>\""), "{json}");
        assert!(!text.contains("s3cr3t") && !json.contains("s3cr3t"));
        // The plan itself keeps the value: the workers get it.
        assert_eq!(report.decision.worker_env.common["API_TOKEN"], "tok-s3cr3t");
    }

    /// The overrides line keeps the variables' names as given, and the CPU
    /// line says the count once: found by hand in `corefit plan` output
    /// ("corefit_mode = cluster", "1 CPU (the CPU affinity mask (1 CPUs))").
    #[test]
    fn overrides_and_cpus_read_as_written() {
        let limits = unlimited_v2(4, Some(1));
        let env: crate::plan::Env = [("COREFIT_MODE", "cluster"), ("WEB_CONCURRENCY", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let overrides = crate::plan::resolve(&Default::default(), &env).unwrap();
        let platform = Platform::new(PlatformKind::Vps, "test");
        let plan = crate::plan::plan(&limits, &platform, &overrides);
        let text = Report::new(limits, platform, overrides, plan, Vec::new()).to_text();
        assert!(
            text.contains("  overrides     COREFIT_MODE = cluster, WEB_CONCURRENCY = 3\n"),
            "{text}"
        );
        assert!(
            text.contains("  CPUs          1 CPU (the CPU affinity mask)\n"),
            "{text}"
        );
    }
    /// The share table's rows and the cgroup's figures are in the text,
    /// each with its reason or its file.
    #[test]
    fn shares_and_throttling_are_shown() {
        let limits = unlimited_v2(2, None);
        let platform = Platform::new(PlatformKind::Vps, "test");
        let mut env = crate::plan::Env::new();
        env.insert("PYTHON_CPU_COUNT".to_owned(), "3".to_owned());
        let overrides = crate::plan::resolve(&Default::default(), &env).unwrap();
        let plan = crate::plan::plan(&limits, &platform, &overrides);
        let mut report = Report::new(limits, platform, overrides, plan, Vec::new());
        report.cgroup = Some(crate::probe::cgroup_stats::CgroupStats {
            throttling: Some(crate::probe::cgroup_stats::Throttling {
                periods: 120,
                throttled_periods: 30,
                throttled_seconds: 2.5,
                file: "/cg/cpu.stat".into(),
            }),
            ..Default::default()
        });
        let text = report.to_text();
        assert!(
            text.contains(
                "  throttling    30 of 120 CFS periods throttled, 2.5s waiting (/cg/cpu.stat)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  PYTHON_CPU_COUNT  [python] kept: set by the user (\"3\")\n"),
            "{text}"
        );
        assert!(
            text.contains("  DOTNET_PROCESSOR_COUNT=1  [dotnet, only when the command is dotnet]"),
            "{text}"
        );
        assert!(report.to_json().contains("\"throttled_periods\": 30"));
    }
}
