//! corefit's own cgroup's statistics: CFS throttling from `cpu.stat`
//! (`nr_periods`, `nr_throttled`, and `throttled_time` in ns on v1 or
//! `throttled_usec` on v2) of the cgroup whose quota binds, and pressure
//! stall information (`cpu.pressure`, `memory.pressure`, `io.pressure`) of
//! its own cgroup in the unified hierarchy. The parsers are pure and
//! total: hostile contents are an error naming the file, never a panic
//! (fuzzed by `fuzz/fuzz_targets`' style of inputs in the unit tests).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::cgroup::{self, StatDirs};
use super::{mountinfo, Warnings};
use crate::plan::facts::CgroupVersion;

/// The longest statistics file read (the kernel's are a few hundred bytes).
const MAX_FILE: usize = 64 * 1024;

/// A statistics file that could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}: {reason}")]
pub struct StatError {
    pub file: String,
    pub reason: String,
}

/// CFS bandwidth statistics (counters since the cgroup was made).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throttling {
    /// Enforcement periods in which the cgroup had runnable work.
    pub periods: u64,
    /// Of those, the periods in which it ran out of quota.
    pub throttled_periods: u64,
    /// Time its threads waited for the next period.
    pub throttled_seconds: f64,
    /// The `cpu.stat` read.
    pub file: String,
}

/// One PSI line's figures (`some` or `full`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// Percent of the last 10, 60, 300 seconds with a task stalled.
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Total stall time.
    pub total_seconds: f64,
}

/// A PSI file: `some` (at least one task stalled), `full` (all were).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub some: Stall,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<Stall>,
}

/// What the files said, at one sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupStats {
    /// `None` when no quota's statistics exist (v2 without the cpu
    /// controller, no cgroup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling: Option<Throttling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pressure: Option<Pressure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_pressure: Option<Pressure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_pressure: Option<Pressure>,
}

impl CgroupStats {
    /// `None` when no file said anything.
    pub fn into_nonempty(self) -> Option<CgroupStats> {
        (self != CgroupStats::default()).then_some(self)
    }

    /// The pressure files' `some` averages, for people:
    /// `cpu 1.0/2.0/3.0%, io 0.5/0.2/0.1%` (avg10/avg60/avg300); `None`
    /// when there are none.
    pub fn pressure_summary(&self) -> Option<String> {
        let parts: Vec<String> = [
            ("cpu", &self.cpu_pressure),
            ("memory", &self.memory_pressure),
            ("io", &self.io_pressure),
        ]
        .iter()
        .filter_map(|(name, p)| {
            let s = &p.as_ref()?.some;
            Some(format!(
                "{name} {:.1}/{:.1}/{:.1}%",
                s.avg10, s.avg60, s.avg300
            ))
        })
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The files to read each sample, located once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatFiles {
    pub cpu_stat: Option<(CgroupVersion, PathBuf)>,
    /// `cpu.pressure`, `memory.pressure`, `io.pressure`.
    pub pressure: Option<[PathBuf; 3]>,
}

impl StatFiles {
    /// From the cgroup directories.
    pub fn in_dirs(dirs: &StatDirs) -> StatFiles {
        StatFiles {
            cpu_stat: dirs.cpu.as_ref().map(|(v, d)| (*v, d.join("cpu.stat"))),
            pressure: dirs.psi.as_ref().map(|d| {
                [
                    d.join("cpu.pressure"),
                    d.join("memory.pressure"),
                    d.join("io.pressure"),
                ]
            }),
        }
    }

    /// Locates this process's files under `root` (`/` live).
    pub fn locate(root: &Path, warnings: &mut Warnings) -> StatFiles {
        let read = |abs: &str| std::fs::read_to_string(cgroup::join(root, abs)).unwrap_or_default();
        let (mounts, _) = mountinfo::cgroup_mounts(&read("/proc/self/mountinfo"));
        let (members, _) = mountinfo::memberships(&read("/proc/self/cgroup"));
        StatFiles::in_dirs(&cgroup::stat_dirs(root, &mounts, &members, warnings))
    }

    /// Reads every file that exists; the errors name their files.
    pub fn read(&self) -> (CgroupStats, Vec<StatError>) {
        let mut errors = Vec::new();
        let mut stats = CgroupStats::default();
        if let Some((version, path)) = &self.cpu_stat {
            if let Some(text) = read_file(path, &mut errors) {
                match cpu_stat(&text, *version, &path.display().to_string()) {
                    Ok(t) => stats.throttling = t,
                    Err(e) => errors.push(e),
                }
            }
        }
        if let Some([cpu, memory, io]) = &self.pressure {
            let mut one = |path: &PathBuf| {
                let text = read_file(path, &mut errors)?;
                pressure(&text, &path.display().to_string())
                    .map_err(|e| errors.push(e))
                    .ok()
            };
            stats.cpu_pressure = one(cpu);
            stats.memory_pressure = one(memory);
            stats.io_pressure = one(io);
        }
        (stats, errors)
    }
}

/// A file's text; a missing file is no error (PSI may be off).
fn read_file(path: &Path, errors: &mut Vec<StatError>) -> Option<String> {
    use std::io::Read as _;
    let err = |reason: String| StatError {
        file: path.display().to_string(),
        reason,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        // PSI disabled at boot: the file is there, reading says so.
        Err(e) => {
            errors.push(err(e.to_string()));
            return None;
        }
    };
    let mut text = String::new();
    match file.take(MAX_FILE as u64).read_to_string(&mut text) {
        Ok(_) => Some(text),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EOPNOTSUPP as i32) => None,
        Err(e) => {
            errors.push(err(e.to_string()));
            None
        }
    }
}

/// `cpu.stat`: `Ok(None)` when it has no CFS figures (no `nr_periods`:
/// v2 without the cpu controller). Unknown keys are ignored; a known key
/// with a bad or repeated value is an error naming `file`.
pub fn cpu_stat(
    text: &str,
    version: CgroupVersion,
    file: &str,
) -> Result<Option<Throttling>, StatError> {
    let err = |reason: String| StatError {
        file: file.to_owned(),
        reason,
    };
    let time_key = match version {
        CgroupVersion::V1 => "throttled_time",
        CgroupVersion::V2 => "throttled_usec",
    };
    let (mut periods, mut throttled, mut time) = (None, None, None);
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let (Some(key), value) = (words.next(), words.next()) else {
            continue;
        };
        let slot = match key {
            "nr_periods" => &mut periods,
            "nr_throttled" => &mut throttled,
            k if k == time_key => &mut time,
            _ => continue,
        };
        if words.next().is_some() {
            return Err(err(format!(
                "line {}: more than one value for {key}",
                n + 1
            )));
        }
        let value = value.ok_or_else(|| err(format!("line {}: {key} has no value", n + 1)))?;
        let v: u64 = value.parse().map_err(|_| {
            err(format!(
                "line {}: {key} {:?} is not a count",
                n + 1,
                clip(value)
            ))
        })?;
        if slot.replace(v).is_some() {
            return Err(err(format!("line {}: {key} repeated", n + 1)));
        }
    }
    let Some(periods) = periods else {
        return Ok(None);
    };
    let throttled = throttled.ok_or_else(|| err("nr_periods without nr_throttled".to_owned()))?;
    let time = time.ok_or_else(|| err(format!("nr_periods without {time_key}")))?;
    if throttled > periods {
        return Err(err(format!(
            "nr_throttled {throttled} exceeds nr_periods {periods}"
        )));
    }
    let throttled_seconds = match version {
        CgroupVersion::V1 => time as f64 / 1e9,
        CgroupVersion::V2 => time as f64 / 1e6,
    };
    Ok(Some(Throttling {
        periods,
        throttled_periods: throttled,
        throttled_seconds,
        file: file.to_owned(),
    }))
}

/// A PSI file: a `some` line and, since Linux 5.13 for CPU, a `full` line,
/// each `avg10=.. avg60=.. avg300=.. total=<usec>`.
pub fn pressure(text: &str, file: &str) -> Result<Pressure, StatError> {
    let err = |reason: String| StatError {
        file: file.to_owned(),
        reason,
    };
    let (mut some, mut full) = (None, None);
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let slot = match words.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            Some(other) => {
                return Err(err(format!(
                    "line {}: unknown kind {:?}",
                    n + 1,
                    clip(other)
                )));
            }
            None => continue,
        };
        let stall = stall(words).map_err(|r| err(format!("line {}: {r}", n + 1)))?;
        if slot.replace(stall).is_some() {
            return Err(err(format!("line {}: repeated", n + 1)));
        }
    }
    let some = some.ok_or_else(|| err("no \"some\" line".to_owned()))?;
    Ok(Pressure { some, full })
}

/// At most 40 characters of a hostile value, for messages.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn stall<'a>(words: impl Iterator<Item = &'a str>) -> Result<Stall, String> {
    let (mut a10, mut a60, mut a300, mut total) = (None, None, None, None);
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("{:?} is not key=value", clip(w)))?;
        let avg = |v: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && (0.0..=100.0).contains(f))
                .ok_or_else(|| format!("{k}={:?} is not a percentage", clip(v)))
        };
        match k {
            "avg10" => a10 = Some(avg(v)?),
            "avg60" => a60 = Some(avg(v)?),
            "avg300" => a300 = Some(avg(v)?),
            "total" => {
                total = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("total={:?} is not a count", clip(v)))?,
                )
            }
            _ => {}
        }
    }
    match (a10, a60, a300, total) {
        (Some(avg10), Some(avg60), Some(avg300), Some(t)) => Ok(Stall {
            avg10,
            avg60,
            avg300,
            total_seconds: t as f64 / 1e6,
        }),
        _ => Err("needs avg10, avg60, avg300 and total".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str =
        "nr_periods 120\nnr_throttled 30\nthrottled_time 2500000000\nnr_bursts 0\nburst_time 0\n";
    const V2: &str = "usage_usec 9000\nuser_usec 6000\nsystem_usec 3000\nnr_periods 40\nnr_throttled 10\nthrottled_usec 1500000\nnr_bursts 0\nburst_usec 0\n";

    #[test]
    fn reads_v1_and_v2_cpu_stat() {
        let t = cpu_stat(V1, CgroupVersion::V1, "f").unwrap().unwrap();
        assert_eq!((t.periods, t.throttled_periods), (120, 30));
        assert_eq!(t.throttled_seconds, 2.5);
        let t = cpu_stat(V2, CgroupVersion::V2, "f").unwrap().unwrap();
        assert_eq!((t.periods, t.throttled_periods), (40, 10));
        assert_eq!(t.throttled_seconds, 1.5);
        // v2 without the cpu controller: usage only.
        let usage = "usage_usec 1\nuser_usec 1\nsystem_usec 0\n";
        assert_eq!(cpu_stat(usage, CgroupVersion::V2, "f"), Ok(None));
    }

    #[test]
    fn hostile_cpu_stat_is_an_error_naming_the_file() {
        for bad in [
            "nr_periods x\nnr_throttled 0\nthrottled_time 0",
            "nr_periods -1\nnr_throttled 0\nthrottled_time 0",
            "nr_periods 99999999999999999999999\nnr_throttled 0\nthrottled_time 0",
            "nr_periods 1\nnr_periods 1\nnr_throttled 0\nthrottled_time 0",
            "nr_periods 1 2\nnr_throttled 0\nthrottled_time 0",
            "nr_periods\nnr_throttled 0\nthrottled_time 0",
            "nr_periods 1\nthrottled_time 0",
            "nr_periods 1\nnr_throttled 0",
            "nr_periods 1\nnr_throttled 5\nthrottled_time 0",
        ] {
            let e = cpu_stat(bad, CgroupVersion::V1, "/cg/cpu.stat").unwrap_err();
            assert_eq!(e.file, "/cg/cpu.stat", "{bad:?}");
            assert!(e.to_string().starts_with("/cg/cpu.stat: "), "{e}");
        }
    }

    #[test]
    fn reads_psi_with_and_without_full() {
        let p = pressure(
            "some avg10=1.50 avg60=0.75 avg300=0.10 total=2500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            "f",
        )
        .unwrap();
        assert_eq!(p.some.avg10, 1.5);
        assert_eq!(p.some.total_seconds, 2.5);
        assert_eq!(p.full.unwrap().total_seconds, 0.0);
        let p = pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n", "f").unwrap();
        assert_eq!(p.full, None);
    }

    #[test]
    fn hostile_psi_is_an_error_naming_the_file() {
        for bad in [
            "",
            "full avg10=0 avg60=0 avg300=0 total=0",
            "some avg10=NaN avg60=0 avg300=0 total=0",
            "some avg10=101 avg60=0 avg300=0 total=0",
            "some avg10=0 avg60=0 avg300=0 total=-1",
            "some avg10=0 avg60=0 total=0",
            "some avg10 avg60=0 avg300=0 total=0",
            "weird avg10=0",
            "some avg10=0 avg60=0 avg300=0 total=0\nsome avg10=0 avg60=0 avg300=0 total=0",
        ] {
            let e = pressure(bad, "/cg/io.pressure").unwrap_err();
            assert_eq!(e.file, "/cg/io.pressure", "{bad:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic sweep over mangled inputs.
        let seeds = [V1, V2, "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"];
        for seed in seeds {
            let bytes = seed.as_bytes();
            for cut in 0..bytes.len() {
                for b in [b' ', b'\n', b'=', b'-', b'9', 0xff, 0] {
                    let mut m = bytes.to_vec();
                    m[cut] = b;
                    let s = String::from_utf8_lossy(&m);
                    let _ = cpu_stat(&s, CgroupVersion::V1, "f");
                    let _ = cpu_stat(&s, CgroupVersion::V2, "f");
                    let _ = pressure(&s, "f");
                }
            }
        }
    }

    #[test]
    fn reads_files_in_a_tree_and_names_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpu.stat"), V1).unwrap();
        std::fs::write(dir.path().join("cpu.pressure"), "garbage").unwrap();
        let files = StatFiles::in_dirs(&StatDirs {
            cpu: Some((CgroupVersion::V1, dir.path().to_path_buf())),
            psi: Some(dir.path().to_path_buf()),
        });
        let (stats, errors) = files.read();
        assert_eq!(stats.throttling.unwrap().throttled_periods, 30);
        assert_eq!(stats.cpu_pressure, None);
        assert_eq!(stats.memory_pressure, None, "a missing file is no error");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].file.ends_with("cpu.pressure"), "{:?}", errors);
    }
}
