//! Probes: thin code that only reads. Every probe takes a root path, so
//! tests point it at fixture trees (`tests/fixtures/<case>/proc/...`).
//!
//! - [`parse`]: values in cgroup and proc files (pure).
//! - [`mountinfo`]: `/proc/self/mountinfo` and `/proc/self/cgroup` (pure).
//! - [`cgroup`]: limits along the cgroup path and its ancestors.
//! - [`cgroup_stats`]: throttling (`cpu.stat`) and pressure (PSI) of corefit's cgroup.
//! - [`own_cgroup`]: the process's cgroup when a cgroup namespace hides it.
//! - [`executable`]: what a command really runs (static, dynamic, setuid).
//! - [`host`]: online CPUs, `MemTotal`, hypervisor flag, affinity.
//! - [`platform`]: platform signals and published sizes.
//! - [`procstat`]: per-process state, CPU time and RSS from `/proc/<pid>/stat`.
//! - [`runtime`]: which runtime a command is (for the share table).

pub mod cgroup;
pub mod cgroup_stats;
pub mod executable;
pub mod host;
pub mod mountinfo;
pub mod own_cgroup;
pub mod parse;
pub mod platform;
pub mod procstat;
pub mod runtime;

use std::path::Path;

use crate::plan::facts::{CpuFacts, Limits, MemoryFacts};

/// Things worth telling the user that did not stop the probe.
pub type Warnings = Vec<String>;

/// The two values only a live process can know; tests supply them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveFacts {
    /// CPUs in the affinity mask (`sched_getaffinity`).
    pub affinity_cpus: Option<u32>,
    /// Online CPUs by sysconf, used when sysfs has no `cpu/online`.
    pub sysconf_cpus: u32,
}

impl LiveFacts {
    /// Asks the kernel.
    pub fn read() -> LiveFacts {
        LiveFacts {
            affinity_cpus: host::affinity_cpus(),
            sysconf_cpus: host::sysconf_cpus(),
        }
    }
}

/// The entries `parse` finds in the file at `path`; the lines it could
/// not read are counted in a warning.
fn read_lines<T>(
    path: &Path,
    parse: fn(&str) -> (Vec<T>, usize),
    warnings: &mut Warnings,
) -> std::io::Result<Vec<T>> {
    let (entries, bad) = parse(&std::fs::read_to_string(path)?);
    if bad > 0 {
        warnings.push(format!(
            "skipped {bad} malformed line(s) in {}",
            path.display()
        ));
    }
    Ok(entries)
}

/// Reads every resource fact under `root`.
pub fn limits(root: &Path, live: LiveFacts, warnings: &mut Warnings) -> Limits {
    let mountinfo_path = cgroup::join(root, "/proc/self/mountinfo");
    let cgroup_path = cgroup::join(root, "/proc/self/cgroup");
    let mounts =
        read_lines(&mountinfo_path, mountinfo::cgroup_mounts, warnings).unwrap_or_else(|e| {
            warnings.push(format!(
                "cannot read {}: {e}; no cgroup limits will be found",
                mountinfo_path.display()
            ));
            Vec::new()
        });
    let members = read_lines(&cgroup_path, mountinfo::memberships, warnings).unwrap_or_else(|e| {
        if !mounts.is_empty() {
            warnings.push(format!(
                "cannot read {}: {e}; reading cgroup mount points only",
                cgroup_path.display()
            ));
        }
        Vec::new()
    });
    let cg = cgroup::read_limits(root, &mounts, &members, warnings);
    Limits {
        cgroup: cgroup::layout(&mounts),
        cpu: CpuFacts {
            host_cpus: host::online_cpus(root, live.sysconf_cpus, warnings),
            affinity_cpus: live.affinity_cpus,
            quota: cg.quota,
            cpuset: cg.cpuset,
        },
        memory: MemoryFacts {
            host_bytes: host::mem_total(root, warnings),
            limit: cg.memory_max,
            high: cg.memory_high,
        },
    }
}
