//! Sampling each worker's process tree (RSS and CPU time from
//! `/proc/<pid>/stat`, summed over its descendants) on an interval, and
//! what the samples mean: report lines, threshold warnings and ceilings.
//! The reading is in [`crate::probe::procstat`]; this keeps the previous
//! sample per pid to turn CPU seconds into a percentage.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::observe::snapshot::cpu_percent;
use crate::observe::throttle::{CgroupSnapshot, ThrottleWatch, Window};
use crate::probe::cgroup_stats::StatFiles;
use crate::probe::procstat::{tree_usage, Stat};

/// One worker process's latest figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
    /// Over the last interval, in percent of one CPU.
    pub cpu_percent: Option<f64>,
    at: Instant,
}

/// The latest sample of every watched pid.
#[derive(Debug)]
pub struct Sampler {
    page_size: u64,
    ticks_per_second: u64,
    samples: BTreeMap<i32, Sample>,
    /// Pids already warned about (until they drop below the threshold).
    warned: BTreeSet<i32>,
    /// corefit's cgroup's statistics files, when located.
    cgroup_files: Option<StatFiles>,
    /// Their latest reading.
    cgroup: Option<CgroupSnapshot>,
    throttle: ThrottleWatch,
    /// Errors reading them already reported (each once).
    cgroup_errors: BTreeSet<String>,
}

/// What a sample of corefit's cgroup asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum CgroupFinding {
    /// A throttling episode started (warned once per episode).
    Throttled { window: Window, file: String },
    /// A statistics file could not be read or parsed (reported once).
    Unreadable(String),
}

/// What a sample asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Crossed the warning threshold (reported once until it drops below).
    AboveThreshold { pid: i32, rss_bytes: u64 },
    /// Above the ceiling: restart gracefully.
    AboveCeiling { pid: i32, rss_bytes: u64 },
}

impl Sampler {
    pub fn new(page_size: u64, ticks_per_second: u64) -> Sampler {
        Sampler {
            page_size,
            ticks_per_second,
            samples: BTreeMap::new(),
            warned: BTreeSet::new(),
            cgroup_files: None,
            cgroup: None,
            throttle: ThrottleWatch::default(),
            cgroup_errors: BTreeSet::new(),
        }
    }

    /// Also samples these cgroup statistics files.
    pub fn with_cgroup(mut self, files: StatFiles) -> Sampler {
        self.cgroup_files = Some(files);
        self
    }

    /// Reads corefit's cgroup's throttling and pressure.
    pub fn sample_cgroup(&mut self, now: Instant) -> Vec<CgroupFinding> {
        let Some(files) = &self.cgroup_files else {
            return Vec::new();
        };
        let (stats, errors) = files.read();
        let mut out: Vec<CgroupFinding> = errors
            .into_iter()
            .map(|e| e.to_string())
            .filter(|e| self.cgroup_errors.insert(e.clone()))
            .map(CgroupFinding::Unreadable)
            .collect();
        if let Some(t) = &stats.throttling {
            if let Some(window) = self.throttle.observe(now, t) {
                out.push(CgroupFinding::Throttled {
                    window,
                    file: t.file.clone(),
                });
            }
        }
        let empty = stats == Default::default();
        self.cgroup = (!empty).then(|| CgroupSnapshot {
            stats,
            throttled_percent: self
                .throttle
                .window()
                .map(|w| (w.percent() * 10.0).round() / 10.0),
            throttling_episodes: self.throttle.episodes(),
        });
        out
    }

    /// The latest reading of corefit's cgroup.
    pub fn cgroup(&self) -> Option<&CgroupSnapshot> {
        self.cgroup.as_ref()
    }

    /// Page size and clock ticks from sysconf.
    pub fn live() -> Sampler {
        use nix::unistd::{sysconf, SysconfVar};
        let page = sysconf(SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |v| v as u64);
        let ticks = sysconf(SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map_or(100, |v| v as u64);
        let files = StatFiles::locate(std::path::Path::new("/"), &mut Vec::new());
        Sampler::new(page, ticks).with_cgroup(files)
    }

    /// Samples `pids` from `processes`; forgets pids no longer watched.
    pub fn sample(&mut self, now: Instant, processes: &[Stat], pids: &[i32]) {
        self.samples.retain(|pid, _| pids.contains(pid));
        self.warned.retain(|pid| pids.contains(pid));
        for &pid in pids {
            if pid <= 0 {
                continue;
            }
            let u = tree_usage(processes, pid as u32, self.page_size, self.ticks_per_second);
            if u.processes == 0 {
                continue;
            }
            let percent = self.samples.get(&pid).and_then(|prev| {
                cpu_percent(
                    prev.cpu_seconds,
                    u.cpu_seconds,
                    now.saturating_duration_since(prev.at).as_secs_f64(),
                )
            });
            self.samples.insert(
                pid,
                Sample {
                    rss_bytes: u.rss_bytes,
                    cpu_seconds: u.cpu_seconds,
                    cpu_percent: percent,
                    at: now,
                },
            );
        }
    }

    pub fn get(&self, pid: i32) -> Option<Sample> {
        self.samples.get(&pid).copied()
    }

    /// What the latest samples call for, given a warning threshold and a
    /// ceiling.
    pub fn findings(&mut self, threshold: Option<u64>, ceiling: Option<u64>) -> Vec<Finding> {
        let mut out = Vec::new();
        for (&pid, s) in &self.samples {
            if let Some(t) = threshold {
                if s.rss_bytes > t {
                    if self.warned.insert(pid) {
                        out.push(Finding::AboveThreshold {
                            pid,
                            rss_bytes: s.rss_bytes,
                        });
                    }
                } else {
                    self.warned.remove(&pid);
                }
            }
            if ceiling.is_some_and(|c| s.rss_bytes > c) {
                out.push(Finding::AboveCeiling {
                    pid,
                    rss_bytes: s.rss_bytes,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stat(pid: u32, ppid: u32, rss_pages: u64, ticks: u64) -> Stat {
        Stat {
            pid,
            comm: "node".into(),
            state: 'S',
            ppid,
            pgrp: pid,
            utime: ticks,
            stime: 0,
            rss_pages,
        }
    }

    #[test]
    fn sums_the_tree_and_computes_cpu_percent() {
        let t0 = Instant::now();
        let mut s = Sampler::new(4096, 100);
        s.sample(t0, &[stat(10, 1, 100, 50), stat(11, 10, 50, 50)], &[10]);
        let first = s.get(10).unwrap();
        assert_eq!(first.rss_bytes, 150 * 4096);
        assert_eq!(first.cpu_seconds, 1.0);
        assert_eq!(first.cpu_percent, None);
        s.sample(
            t0 + Duration::from_secs(2),
            &[stat(10, 1, 100, 100), stat(11, 10, 50, 100)],
            &[10],
        );
        assert_eq!(s.get(10).unwrap().cpu_percent, Some(50.0));
        // A pid no longer watched is forgotten.
        s.sample(t0 + Duration::from_secs(3), &[], &[]);
        assert_eq!(s.get(10), None);
    }

    #[test]
    fn samples_a_cgroup_and_warns_once_per_episode() {
        let dir = tempfile::tempdir().unwrap();
        let stat = dir.path().join("cpu.stat");
        let files = StatFiles {
            cpu_stat: Some((crate::plan::facts::CgroupVersion::V1, stat.clone())),
            pressure: None,
        };
        let mut s = Sampler::new(4096, 100).with_cgroup(files);
        let t0 = Instant::now();
        let mut warned = 0;
        for n in 0..10u64 {
            let text = format!(
                "nr_periods {}\nnr_throttled {}\nthrottled_time {}\n",
                n * 10,
                n * 9,
                n * 50_000_000
            );
            std::fs::write(&stat, text).unwrap();
            let f = s.sample_cgroup(t0 + Duration::from_secs(n));
            warned += f
                .iter()
                .filter(|f| matches!(f, CgroupFinding::Throttled { .. }))
                .count();
        }
        assert_eq!(warned, 1);
        let c = s.cgroup().unwrap();
        assert_eq!(c.stats.throttling.as_ref().unwrap().throttled_periods, 81);
        assert_eq!(c.throttled_percent, Some(90.0));
        assert_eq!(c.throttling_episodes, 1);
        // A garbled file is reported once, naming it.
        std::fs::write(&stat, "nr_periods lots\n").unwrap();
        let f = s.sample_cgroup(t0 + Duration::from_secs(11));
        assert!(
            matches!(&f[..], [CgroupFinding::Unreadable(e)] if e.contains("cpu.stat")),
            "{f:?}"
        );
        assert_eq!(s.sample_cgroup(t0 + Duration::from_secs(12)), vec![]);
    }

    #[test]
    fn warns_once_per_crossing_and_flags_every_sample_above_the_ceiling() {
        let t0 = Instant::now();
        let mut s = Sampler::new(1, 100);
        s.sample(t0, &[stat(10, 1, 300, 0), stat(20, 1, 100, 0)], &[10, 20]);
        let f = s.findings(Some(200), Some(250));
        assert_eq!(
            f,
            vec![
                Finding::AboveThreshold {
                    pid: 10,
                    rss_bytes: 300
                },
                Finding::AboveCeiling {
                    pid: 10,
                    rss_bytes: 300
                },
            ]
        );
        assert_eq!(
            s.findings(Some(200), None),
            vec![],
            "warned once until it drops below"
        );
        s.sample(t0, &[stat(10, 1, 100, 0)], &[10]);
        assert_eq!(s.findings(Some(200), None), vec![]);
        s.sample(t0, &[stat(10, 1, 300, 0)], &[10]);
        assert_eq!(s.findings(Some(200), None).len(), 1);
    }
}
