//! Arbitrary environments and flag values through everything that reads
//! them: `decision::decide` (override resolution, platform detection and
//! its published sizes, the plan, as `corefit plan` runs them; probing a
//! root that does not exist), the plan again over varied limits for every
//! platform, the `corefit plan` report (text and JSON; one platform a run), and
//! `RunArgs::config_with` (every run setting: durations, ports, counts,
//! choices, sizes, the admin address).
//!
//! Input: text. The first line is the facts the probes would have found,
//! whitespace-separated numbers (missing or garbage = none):
//! `HOST_CPUS AFFINITY QUOTA_MILLICPUS CPUSET_CPUS HOST_MIB LIMIT_MIB`.
//! Every other line is `NAME=value` (a variable) or `--flag=value` (a flag;
//! `--allow-oversubscribe` and `--log-prefix` alone).
//!
//! Invariants: an error names the flag or variable that caused it, and
//! that one was given; a plan has 1 worker or more, never above its caps
//! unless oversubscription is allowed, and tells the workers its count;
//! the JSON report is valid JSON; run settings stay in their ranges.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use corefit::cli::{RunArgs, RunEnv};
use corefit::decision::{decide, DecideError};
use corefit::explain::Report;
use corefit::plan::facts::{
    CgroupLayout, CgroupVersion, CpuFacts, CpuQuota, CpusetLimit, LimitSource, Limits, MemoryFacts,
    MemoryLimit, Platform, PlatformKind,
};
use corefit::plan::{plan, resolve, Env, FlagValues, Plan};
use corefit::probe::LiveFacts;
use corefit::supervise::config::ConfigError;
use libfuzzer_sys::fuzz_target;

const MIB: u64 = 1 << 20;

fn source() -> LimitSource {
    LimitSource {
        cgroup: CgroupVersion::V2,
        file: "fuzz".to_owned(),
    }
}

fn check_plan(p: &Plan) {
    assert!(p.workers >= 1);
    assert!(p.caps.cpu >= 1);
    if !p.oversubscribe {
        assert!(
            p.workers <= p.caps.cpu,
            "{} > cpu cap {}",
            p.workers,
            p.caps.cpu
        );
    }
    if let Some(m) = p.caps.memory {
        assert!(p.workers <= m.max(1), "{} > memory cap {m}", p.workers);
    }
    if let Some(m) = p.caps.max_workers {
        assert!(p.workers <= m.max(1), "{} > max workers {m}", p.workers);
    }
    assert_eq!(
        p.worker_env.common["COREFIT_WORKERS"],
        p.workers.to_string()
    );
}

fn check_report(r: &Report) {
    check_plan(&r.decision);
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("report JSON");
    assert_eq!(json["decision"]["workers"], r.decision.workers);
    assert!(!r.to_text().is_empty());
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let header: Vec<Option<u64>> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect();
    let num = |i: usize| header.get(i).copied().flatten();

    let mut env = Env::new();
    let mut flags: BTreeMap<String, Option<String>> = BTreeMap::new();
    for line in lines {
        if let Some(flag) = line.strip_prefix("--") {
            match flag.split_once('=') {
                Some((k, v)) => flags.insert(format!("--{k}"), Some(v.to_owned())),
                None => flags.insert(format!("--{flag}"), None),
            };
        } else if let Some((k, v)) = line.split_once('=') {
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    let flag = |name: &str| flags.get(name).cloned().flatten();
    let given = |name: &str| flags.contains_key(name) || env.contains_key(name);

    // Plan: flags, environment, platform, as `corefit plan` decides.
    let flag_values = FlagValues {
        mode: flag("--mode"),
        workers: flag("--workers"),
        max_workers: flag("--max-workers"),
        memory_per_worker: flag("--memory-per-worker"),
        allow_oversubscribe: flags.contains_key("--allow-oversubscribe"),
        scaling: flag("--scaling"),
    };
    let platform_flag = flag("--platform");
    let live = LiveFacts {
        affinity_cpus: num(1).map(|n| n.clamp(1, 1 << 16) as u32),
        sysconf_cpus: num(0).map_or(4, |n| n.clamp(1, 1 << 16) as u32),
    };
    match decide(
        &flag_values,
        platform_flag.as_deref(),
        &env,
        Path::new("/nonexistent-corefit-fuzz"),
        live,
    ) {
        Ok(report) => check_report(&report),
        Err(e) => {
            let name = match &e {
                DecideError::Override(e) => &e.source_name,
                DecideError::Platform(e) => &e.source_name,
            };
            assert!(given(name), "error names {name}, which was not given");
            assert!(e.to_string().contains(name.as_str()), "{e}");
        }
    }

    // The plan over limits the probes could have found, on every platform.
    if let Ok(overrides) = resolve(&flag_values, &env) {
        let host = num(0).map_or(4, |n| n.clamp(1, 1 << 16) as u32);
        let limits = Limits {
            cgroup: CgroupLayout::V2,
            cpu: CpuFacts {
                host_cpus: host,
                affinity_cpus: live.affinity_cpus,
                quota: num(2).filter(|&q| q > 0).map(|q| CpuQuota {
                    quota_us: q.min(u64::MAX / 100) * 100,
                    period_us: 100_000,
                    source: source(),
                }),
                cpuset: num(3).filter(|&c| c > 0).map(|c| CpusetLimit {
                    cpus: c.min(1 << 20) as u32,
                    list: format!("0-{}", c.min(1 << 20) - 1),
                    source: source(),
                }),
            },
            memory: MemoryFacts {
                host_bytes: num(4).map(|m| m.saturating_mul(MIB)),
                limit: num(5).filter(|&m| m > 0).map(|m| MemoryLimit {
                    bytes: m.saturating_mul(MIB),
                    source: source(),
                }),
                high: None,
            },
        };
        for kind in PlatformKind::ALL {
            let mut warnings = Vec::new();
            let mut platform = Platform::new(kind, "fuzz");
            if let Ok(p) = corefit::probe::platform::detect(
                Some(kind.id()),
                &env,
                &Default::default(),
                &mut warnings,
            ) {
                platform = p; // the same kind, with the sizes it publishes
            }
            assert_eq!(platform.kind, kind);
            let p = plan(&limits, &platform, &overrides);
            check_plan(&p);
            assert!(p.effective_cpus.value <= host as f64 + 1e-9);
            // One report a run (rendering is the slow part), on a platform
            // the input picks.
            if kind == PlatformKind::ALL[usize::from(data[0]) % PlatformKind::ALL.len()] {
                let report = Report::new(limits.clone(), platform, overrides.clone(), p, warnings);
                check_report(&report);
            }
        }
    }

    // Run settings: every flag of the input that is a declared run setting
    // (a switch alone or with any value), every variable of its environment.
    let mut args = RunArgs::default();
    for (name, value) in &flags {
        args.set(name, value.clone().unwrap_or_default());
    }
    let run_env = RunEnv::from(env.clone());
    match args.config_with(vec!["app".to_owned()], &run_env) {
        Ok(c) => {
            assert!(c.port >= 1);
            assert!(c.backoff_max >= c.backoff_initial);
            assert!((1..=4096).contains(&c.reload_parallelism));
            let day = std::time::Duration::from_secs(86_400);
            assert!(c.grace <= day && c.min_uptime <= day && c.ready_timeout <= day);
            if let Some(l) = &c.liveness {
                assert!(l.path.starts_with('/') && (1..=1000).contains(&l.failures));
            }
            assert!(!c.proxy.header_timeout.is_zero() && !c.proxy.idle_timeout.is_zero());
            if let Some(r) = c.resize_interval {
                assert!(r >= std::time::Duration::from_millis(100));
            }
        }
        Err(e) => {
            if let ConfigError::Invalid {
                flag: f, var: v, ..
            } = &e
            {
                assert!(
                    given(f) || given(v),
                    "{e} names neither given flag nor variable"
                );
            }
        }
    }
});
