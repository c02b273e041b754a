//! Helpers shared by the launcher's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use corefit::plan::facts::Limits;
use corefit::probe::{self, LiveFacts, Warnings};

/// The committed fixture tree `name`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Live facts for fixtures: no affinity mask, sysconf says 1 (the fixtures'
/// `cpu/online` says 8, so a fallback to sysconf would show).
pub const FIXTURE_LIVE: LiveFacts = LiveFacts {
    affinity_cpus: None,
    sysconf_cpus: 1,
};

/// Probes a tree.
pub fn probe(root: &Path) -> (Limits, Warnings) {
    let mut w = Warnings::new();
    let l = probe::limits(root, FIXTURE_LIVE, &mut w);
    (l, w)
}

/// Copies a fixture into a fresh temporary directory.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture(name), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

use corefit::plan::facts::{
    CgroupLayout, CgroupVersion, CpuFacts, CpuQuota, CpusetLimit, LimitSource, MemoryFacts,
    MemoryLimit,
};

pub const GIB: u64 = 1024 * 1024 * 1024;
pub const MIB: u64 = 1024 * 1024;

fn src(file: &str) -> LimitSource {
    LimitSource {
        cgroup: CgroupVersion::V2,
        file: file.to_owned(),
    }
}

/// Limits built by hand: `quota` in CPUs (period 100000), memory in bytes.
pub fn limits(host_cpus: u32, quota: Option<f64>, host_mem: u64, mem_limit: Option<u64>) -> Limits {
    Limits {
        cgroup: CgroupLayout::V2,
        cpu: CpuFacts {
            host_cpus,
            affinity_cpus: Some(host_cpus),
            quota: quota.map(|q| CpuQuota {
                quota_us: (q * 100_000.0).round() as u64,
                period_us: 100_000,
                source: src("/sys/fs/cgroup/cpu.max"),
            }),
            cpuset: None,
        },
        memory: MemoryFacts {
            host_bytes: Some(host_mem),
            limit: mem_limit.map(|bytes| MemoryLimit {
                bytes,
                source: src("/sys/fs/cgroup/memory.max"),
            }),
            high: None,
        },
    }
}

/// Adds a cpuset of `cpus` CPUs.
pub fn with_cpuset(mut l: Limits, cpus: u32) -> Limits {
    l.cpu.cpuset = Some(CpusetLimit {
        cpus,
        list: format!("0-{}", cpus - 1),
        source: src("/sys/fs/cgroup/cpuset.cpus.effective"),
    });
    l
}
