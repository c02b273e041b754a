//! Inputs for the plan and the probes: the committed cgroup fixture trees
//! (`launcher/tests/fixtures`) and `Limits` built by hand.

use std::path::{Path, PathBuf};

use corefit_plan::facts::{
    CgroupLayout, CgroupVersion, CpuFacts, CpuQuota, CpusetLimit, LimitSource, Limits, MemoryFacts,
    MemoryLimit,
};

pub const GIB: u64 = 1024 * 1024 * 1024;
pub const MIB: u64 = 1024 * 1024;

/// The committed fixture tree `name`.
pub fn fixture(name: &str) -> PathBuf {
    crate::repo_root()
        .join("launcher/tests/fixtures")
        .join(name)
}

/// Copies a fixture into a fresh temporary directory.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture(name), dir.path());
    dir
}

/// [`copy_fixture`], then `file` (relative to the tree) overwritten with
/// `contents`.
pub fn fixture_with(name: &str, file: &str, contents: impl AsRef<[u8]>) -> tempfile::TempDir {
    let dir = copy_fixture(name);
    std::fs::write(dir.path().join(file), contents).unwrap();
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

/// The `reasons` of a decision in `corefit plan --json`'s output, as text.
/// Panics (naming the document) when there are none.
pub fn plan_reasons(decision: &serde_json::Value) -> Vec<&str> {
    decision["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no reasons in {decision}"))
        .iter()
        .filter_map(|r| r.as_str())
        .collect()
}
