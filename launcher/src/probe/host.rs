//! The host's size: online CPUs, `MemTotal`, whether it is virtualized, and
//! this process's CPU affinity mask (the one live syscall, kept apart).

use std::path::Path;

use super::cgroup::join;
use super::parse;
use super::Warnings;

/// The host's online CPUs from `/sys/devices/system/cpu/online` under
/// `root`, falling back to `fallback` (sysconf, live) with a warning.
pub fn online_cpus(root: &Path, fallback: u32, warnings: &mut Warnings) -> u32 {
    let path = join(root, "/sys/devices/system/cpu/online");
    match std::fs::read_to_string(&path) {
        Ok(text) => match parse::cpu_list(&text) {
            Ok(n) if n > 0 => n,
            Ok(_) => fallback,
            Err(e) => {
                warnings.push(format!(
                    "ignoring {}: {e}; using {fallback} CPUs",
                    path.display()
                ));
                fallback
            }
        },
        Err(_) => fallback,
    }
}

/// `MemTotal` from `/proc/meminfo` under `root`.
pub fn mem_total(root: &Path, warnings: &mut Warnings) -> Option<u64> {
    let path = join(root, "/proc/meminfo");
    match std::fs::read_to_string(&path) {
        Ok(text) => match parse::meminfo_total(&text) {
            Ok(b) if b > 0 => Some(b),
            Ok(_) => None,
            Err(e) => {
                warnings.push(format!("ignoring {}: {e}", path.display()));
                None
            }
        },
        Err(e) => {
            warnings.push(format!("cannot read {}: {e}", path.display()));
            None
        }
    }
}

/// Whether `/proc/cpuinfo` reports a hypervisor (a VPS rather than metal).
pub fn virtualized(root: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(join(root, "/proc/cpuinfo")).ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "hypervisor")),
    )
}

/// CPUs in this process's affinity mask (live: `sched_getaffinity`).
pub fn affinity_cpus() -> Option<u32> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let n = (0..nix::sched::CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .count();
    (n > 0).then_some(n as u32)
}

/// Online CPUs by sysconf (live), the fallback when sysfs is missing.
pub fn sysconf_cpus() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .filter(|&n| n > 0)
        .map_or(1, |n| n.min(u32::MAX as i64) as u32)
}
