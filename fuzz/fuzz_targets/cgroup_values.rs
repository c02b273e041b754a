//! Every parser the cgroup and host probes feed a file's text to
//! (`probe::cgroup::read_limits`, `probe::host`), on arbitrary UTF-8 (the
//! probes read files with `read_to_string`): cgroup v2 `cpu.max`,
//! `memory.max` and `memory.high`; v1 `cpu.cfs_quota_us`,
//! `cpu.cfs_period_us` and `memory.limit_in_bytes`; cpuset lists
//! (`cpuset.cpus`, `cpuset.cpus.effective`, `/sys/devices/system/cpu/online`);
//! `/proc/meminfo`; and the statistics `probe::cgroup_stats` samples:
//! `cpu.stat` (v1 and v2) and the PSI files (`cpu.pressure`, ...).
//!
//! Invariants: no panic; what parses is within the documented ranges;
//! what parses, formatted as the kernel writes it, parses to the same
//! value; a cpuset's count equals a naive count of the CPUs it lists;
//! throttled periods never exceed periods, times and averages are finite
//! and not negative, averages are percentages, and an error names the file.
#![no_main]

use std::collections::BTreeSet;

use corefit::plan::facts::CgroupVersion;
use corefit::probe::{cgroup_stats, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    match parse::cpu_max(s) {
        Ok(Some((q, p))) => {
            assert!(q > 0 && p > 0);
            assert_eq!(parse::cpu_max(&format!("{q} {p}\n")), Ok(Some((q, p))));
        }
        Ok(None) => assert!(s.split_whitespace().next() == Some("max")),
        Err(_) => {}
    }

    match parse::cfs_quota(s) {
        Ok(Some(q)) => {
            assert!(q > 0);
            assert_eq!(parse::cfs_quota(&format!("{q}\n")), Ok(Some(q)));
        }
        Ok(None) => {
            let t = s.split_whitespace().next().unwrap();
            assert!(
                t == "-1" || t.parse::<u64>() == Ok(0),
                "{t:?} read as no quota"
            );
        }
        Err(_) => {}
    }

    if let Ok(p) = parse::cfs_period(s) {
        assert!(p > 0);
        assert_eq!(parse::cfs_period(&format!("{p}\n")), Ok(p));
    }

    if let Ok(Some(v)) = parse::memory_v2(s) {
        assert_eq!(parse::memory_v2(&format!("{v}\n")), Ok(Some(v)));
    }

    if let Ok(Some(v)) = parse::memory_v1(s) {
        assert!(v < parse::V1_UNLIMITED_THRESHOLD);
        assert_eq!(parse::memory_v1(&format!("{v}\n")), Ok(Some(v)));
    }

    if let Ok(n) = parse::cpu_list(s) {
        assert!(n as u64 <= parse::MAX_CPU_ID + 1);
        assert!(n >= 1, "a non-empty list that parses names a CPU");
        // A naive count, when the ranges are small enough to enumerate.
        let ranges: Vec<(u64, u64)> = s
            .trim()
            .split(',')
            .map(|part| {
                let part = part.trim();
                let (a, b) = part.split_once('-').unwrap_or((part, part));
                (a.trim().parse().unwrap(), b.trim().parse().unwrap())
            })
            .collect();
        if ranges.iter().map(|(a, b)| b - a + 1).sum::<u64>() <= 4096 {
            let set: BTreeSet<u64> = ranges.iter().flat_map(|&(a, b)| a..=b).collect();
            assert_eq!(n as usize, set.len(), "{s:?}");
            // The canonical list of those CPUs parses to the same count.
            let canonical: Vec<String> = set.iter().map(u64::to_string).collect();
            assert_eq!(parse::cpu_list(&canonical.join(",")), Ok(n));
        }
    }

    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        match cgroup_stats::cpu_stat(s, version, "cpu.stat") {
            Ok(Some(t)) => {
                assert!(t.throttled_periods <= t.periods, "{t:?}");
                assert!(t.throttled_seconds.is_finite() && t.throttled_seconds >= 0.0);
            }
            Ok(None) => assert!(!s
                .lines()
                .any(|l| l.split_whitespace().next() == Some("nr_periods"))),
            Err(e) => assert_eq!(e.file, "cpu.stat"),
        }
    }
    match cgroup_stats::pressure(s, "cpu.pressure") {
        Ok(p) => {
            for stall in std::iter::once(p.some).chain(p.full) {
                for avg in [stall.avg10, stall.avg60, stall.avg300] {
                    assert!((0.0..=100.0).contains(&avg), "{stall:?}");
                }
                assert!(stall.total_seconds.is_finite() && stall.total_seconds >= 0.0);
            }
        }
        Err(e) => assert_eq!(e.file, "cpu.pressure"),
    }

    if let Ok(b) = parse::meminfo_total(s) {
        assert_eq!(b % 1024, 0);
        let line = format!("MemTotal:       {} kB\n", b / 1024);
        assert_eq!(parse::meminfo_total(&line), Ok(b));
    }
});
