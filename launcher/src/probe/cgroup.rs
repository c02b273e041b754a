//! Reads CPU and memory limits from cgroup v1 and v2 along the process's
//! own cgroup path **and its ancestors**: the smallest limit wins, because
//! a parent's quota bounds every child however generous the child's is.
//!
//! For each resource the v1 controller is used when one is mounted (on a
//! hybrid machine v1 owns the controllers and the cgroup2 mount is empty);
//! otherwise the unified cgroup2 hierarchy is read.

use std::path::{Path, PathBuf};

use super::mountinfo::{locate, CgroupMembership, CgroupMount, Located};
use super::own_cgroup;
use super::parse::{self, ValueError};
use super::Warnings;
use crate::plan::facts::{
    CgroupLayout, CgroupVersion, CpuQuota, CpusetLimit, LimitSource, MemoryLimit,
};

/// What the cgroup files say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    pub quota: Option<CpuQuota>,
    pub cpuset: Option<CpusetLimit>,
    pub memory_max: Option<MemoryLimit>,
    pub memory_high: Option<MemoryLimit>,
}

/// Parses a limit file: `Ok(None)` means "no limit".
type LimitParser = fn(&str) -> Result<Option<u64>, ValueError>;

/// A cgroup directory chain: the process's own directory first, then each
/// ancestor up to the mount point.
#[derive(Debug, Clone)]
struct Chain {
    version: CgroupVersion,
    dirs: Vec<PathBuf>,
}

/// The cgroup layout from the mounts.
pub fn layout(mounts: &[CgroupMount]) -> CgroupLayout {
    let v1 = mounts
        .iter()
        .any(|m| m.fs_type == "cgroup" && !is_named_only(m));
    let v2 = mounts.iter().any(|m| m.fs_type == "cgroup2");
    match (v1, v2) {
        (true, true) => CgroupLayout::Hybrid,
        (true, false) => CgroupLayout::V1,
        (false, true) => CgroupLayout::V2,
        (false, false) => CgroupLayout::None,
    }
}

/// `name=systemd` hierarchies carry no controller.
fn is_named_only(m: &CgroupMount) -> bool {
    m.super_options.iter().any(|o| o.starts_with("name="))
}

/// Reads the limits. `root` prefixes every absolute path (`/` live).
pub fn read_limits(
    root: &Path,
    mounts: &[CgroupMount],
    members: &[CgroupMembership],
    warnings: &mut Warnings,
) -> CgroupLimits {
    let mut out = CgroupLimits::default();

    if let Some(chain) = chain_for(root, mounts, members, "cpu", warnings) {
        out.quota = match chain.version {
            CgroupVersion::V1 => min_v1_quota(&chain, warnings),
            CgroupVersion::V2 => min_v2_quota(&chain, warnings),
        };
    }
    if let Some(chain) = chain_for(root, mounts, members, "cpuset", warnings) {
        let file = match chain.version {
            CgroupVersion::V1 => "cpuset.cpus",
            CgroupVersion::V2 => "cpuset.cpus.effective",
        };
        out.cpuset = min_over_chain(&chain, file, warnings, parse::cpu_list)
            .map(|(cpus, list, source)| CpusetLimit { cpus, list, source });
    }
    if let Some(chain) = chain_for(root, mounts, members, "memory", warnings) {
        let (max_file, parser): (&str, LimitParser) = match chain.version {
            CgroupVersion::V1 => ("memory.limit_in_bytes", parse::memory_v1),
            CgroupVersion::V2 => ("memory.max", parse::memory_v2),
        };
        out.memory_max = min_limit(&chain, max_file, warnings, parser);
        if chain.version == CgroupVersion::V2 {
            out.memory_high = min_limit(&chain, "memory.high", warnings, parse::memory_v2);
        }
    }
    out
}

/// Where corefit reads the statistics of its own cgroup (throttling and
/// pressure, `probe::cgroup_stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatDirs {
    /// The cpu controller's directory whose quota binds (where the kernel
    /// counts the throttling it causes), else the process's own; with its
    /// hierarchy's version (`cpu.stat` differs).
    pub cpu: Option<(CgroupVersion, PathBuf)>,
    /// The process's own directory in the unified hierarchy (v2, or the
    /// cgroup2 mount of a hybrid machine), where the PSI files are.
    pub psi: Option<PathBuf>,
}

/// Locates [`StatDirs`]. `root` prefixes every absolute path (`/` live).
pub fn stat_dirs(
    root: &Path,
    mounts: &[CgroupMount],
    members: &[CgroupMembership],
    warnings: &mut Warnings,
) -> StatDirs {
    let cpu = chain_for(root, mounts, members, "cpu", warnings).map(|chain| {
        let quota = match chain.version {
            CgroupVersion::V1 => min_v1_quota(&chain, warnings),
            CgroupVersion::V2 => min_v2_quota(&chain, warnings),
        };
        let dir = quota
            .and_then(|q| Path::new(&q.source.file).parent().map(Path::to_path_buf))
            .or_else(|| chain.dirs.first().cloned())
            .unwrap_or_default();
        (chain.version, dir)
    });
    let psi = unified_chain(root, mounts, members, warnings)
        .and_then(|chain| chain.dirs.into_iter().next());
    StatDirs { cpu, psi }
}

/// The CPU weight file of the process's own cpu cgroup, as read: what
/// the kubelet derives from a pod's CPU request (`probe::platform` decides
/// whether it is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightFile {
    /// v1: `cpu.shares`; v2: `cpu.weight`.
    pub version: CgroupVersion,
    pub file: String,
    pub text: String,
}

/// Reads [`WeightFile`] of the process's own directory (not its
/// ancestors': a parent's weight shares among siblings, it is not this
/// container's request). `None` when there is no cpu controller or file.
pub fn own_weight(
    root: &Path,
    mounts: &[CgroupMount],
    members: &[CgroupMembership],
    warnings: &mut Warnings,
) -> Option<WeightFile> {
    let chain = chain_for(root, mounts, members, "cpu", warnings)?;
    let file = match chain.version {
        CgroupVersion::V1 => "cpu.shares",
        CgroupVersion::V2 => "cpu.weight",
    };
    let path = chain.dirs.first()?.join(file);
    let text = read_optional(&path, warnings)?;
    Some(WeightFile {
        version: chain.version,
        file: path.display().to_string(),
        text,
    })
}

/// The process's chain in the unified hierarchy, if one is mounted.
fn unified_chain(
    root: &Path,
    mounts: &[CgroupMount],
    members: &[CgroupMembership],
    warnings: &mut Warnings,
) -> Option<Chain> {
    let mount = mounts.iter().find(|m| m.fs_type == "cgroup2")?;
    let member = members
        .iter()
        .find(|m| m.hierarchy_id == "0" && m.controllers.is_empty());
    let path = member.map_or("/", |m| m.path.as_str());
    Some(build_chain(root, mount, path, CgroupVersion::V2, warnings))
}

/// Finds the directory chain for `controller`: the v1 hierarchy carrying
/// it, or else the unified hierarchy.
fn chain_for(
    root: &Path,
    mounts: &[CgroupMount],
    members: &[CgroupMembership],
    controller: &str,
    warnings: &mut Warnings,
) -> Option<Chain> {
    if let Some(mount) = mounts.iter().find(|m| m.has_controller(controller)) {
        let member = members
            .iter()
            .find(|m| m.controllers.iter().any(|c| c == controller));
        let path = match member {
            Some(m) => m.path.as_str(),
            None => {
                warnings.push(format!(
                    "cgroup v1 {controller} controller is mounted at {} but /proc/self/cgroup has no {controller} line; reading the mount point only",
                    mount.mount_point
                ));
                "/"
            }
        };
        return Some(build_chain(root, mount, path, CgroupVersion::V1, warnings));
    }
    unified_chain(root, mounts, members, warnings)
}

fn build_chain(
    root: &Path,
    mount: &CgroupMount,
    path: &str,
    version: CgroupVersion,
    warnings: &mut Warnings,
) -> Chain {
    let mount_dir = join(root, &mount.mount_point);
    let rel = match locate(path, &mount.root) {
        Located::Below(rel) => rel,
        Located::Hidden { depth, rest } => {
            let found = own_cgroup::own_pid(root).and_then(|pid| {
                own_cgroup::search(&mount_dir, depth, &rest, pid, own_cgroup::MAX_DIRS)
            });
            found.unwrap_or_else(|missed| {
                let w = format!(
                    "{version} cgroup at {}: a private cgroup namespace hides this process's cgroup below the mount (its root in {} is {:?}, {} says {path:?}) and {missed}; reading only the limits of the mount's root, an ancestor: this cgroup's own limits are unknown (mount a fresh cgroupfs in the namespace, or give the workers by --workers)",
                    mount.mount_point,
                    join(root, "/proc/self/mountinfo").display(),
                    mount.root,
                    join(root, "/proc/self/cgroup").display(),
                );
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
                String::new()
            })
        }
        Located::Outside => {
            warnings.push(format!(
                "{version} path {path:?} lies outside the mounted root {:?} at {}; reading the mount point only",
                mount.root, mount.mount_point
            ));
            String::new()
        }
    };
    let mut dirs = Vec::new();
    let components: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for depth in (0..=components.len()).rev() {
        let mut d = mount_dir.clone();
        for c in &components[..depth] {
            d.push(c);
        }
        dirs.push(d);
    }
    Chain { version, dirs }
}

/// `root` joined with an absolute path.
pub fn join(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

/// Reads a file if it exists. Missing files are silent (most levels have
/// none); unreadable ones are a warning.
fn read_optional(path: &Path, warnings: &mut Warnings) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            warnings.push(format!("cannot read {}: {e}; ignoring it", path.display()));
            None
        }
    }
}

fn bad_value(path: &Path, e: &ValueError, warnings: &mut Warnings) {
    warnings.push(format!("ignoring {}: {e}", path.display()));
}

fn source(chain: &Chain, path: &Path) -> LimitSource {
    LimitSource {
        cgroup: chain.version,
        file: path.display().to_string(),
    }
}

fn min_v2_quota(chain: &Chain, warnings: &mut Warnings) -> Option<CpuQuota> {
    smallest(
        chain,
        "cpu.max",
        warnings,
        cpus_below,
        |_, path, text, warnings| {
            let (quota_us, period_us) = parse::cpu_max(text)
                .map_err(|e| bad_value(path, &e, warnings))
                .ok()??;
            Some(quota(chain, path, quota_us, period_us))
        },
    )
}

fn min_v1_quota(chain: &Chain, warnings: &mut Warnings) -> Option<CpuQuota> {
    smallest(
        chain,
        "cpu.cfs_quota_us",
        warnings,
        cpus_below,
        |dir, qpath, qtext, warnings| {
            let quota_us = match parse::cfs_quota(qtext) {
                Ok(q) => q?,
                Err(e) => {
                    bad_value(qpath, &e, warnings);
                    return None;
                }
            };
            let ppath = dir.join("cpu.cfs_period_us");
            match read_optional(&ppath, warnings).map(|t| parse::cfs_period(&t)) {
                Some(Ok(period_us)) => Some(quota(chain, qpath, quota_us, period_us)),
                Some(Err(e)) => {
                    bad_value(&ppath, &e, warnings);
                    None
                }
                None => {
                    warnings.push(format!(
                        "{} is set but {} is missing; ignoring the quota",
                        qpath.display(),
                        ppath.display()
                    ));
                    None
                }
            }
        },
    )
}

fn quota(chain: &Chain, path: &Path, quota_us: u64, period_us: u64) -> CpuQuota {
    CpuQuota {
        quota_us,
        period_us,
        source: source(chain, path),
    }
}

fn cpus_below(a: &CpuQuota, b: &CpuQuota) -> bool {
    a.cpus() < b.cpus()
}

fn min_limit(
    chain: &Chain,
    file: &str,
    warnings: &mut Warnings,
    parser: LimitParser,
) -> Option<MemoryLimit> {
    let below = |a: &MemoryLimit, b: &MemoryLimit| a.bytes < b.bytes;
    smallest(chain, file, warnings, below, |_, path, text, warnings| {
        match parser(text) {
            Ok(Some(0)) => bad_value(path, &ValueError::Zero("0".to_owned()), warnings),
            Ok(Some(bytes)) => {
                return Some(MemoryLimit {
                    bytes,
                    source: source(chain, path),
                })
            }
            Ok(None) => {}
            Err(e) => bad_value(path, &e, warnings),
        }
        None
    })
}

/// The smallest value along the chain by `below`: `value_of(dir, path,
/// text)` reads one from each directory's `file` that exists.
fn smallest<T>(
    chain: &Chain,
    file: &str,
    warnings: &mut Warnings,
    below: impl Fn(&T, &T) -> bool,
    mut value_of: impl FnMut(&Path, &Path, &str, &mut Warnings) -> Option<T>,
) -> Option<T> {
    let mut best: Option<T> = None;
    for dir in &chain.dirs {
        let path = dir.join(file);
        let Some(text) = read_optional(&path, warnings) else {
            continue;
        };
        if let Some(v) = value_of(dir, &path, &text, warnings) {
            if best.as_ref().is_none_or(|b| below(&v, b)) {
                best = Some(v);
            }
        }
    }
    best
}

fn min_over_chain(
    chain: &Chain,
    file: &str,
    warnings: &mut Warnings,
    parser: fn(&str) -> Result<u32, ValueError>,
) -> Option<(u32, String, LimitSource)> {
    let mut best: Option<(u32, String, LimitSource)> = None;
    for dir in &chain.dirs {
        let path = dir.join(file);
        let Some(text) = read_optional(&path, warnings) else {
            continue;
        };
        // cgroup v2 leaves `cpuset.cpus` empty to mean "inherit"; the
        // effective file is never empty in a live cgroup. Empty = no limit.
        if text.trim().is_empty() {
            continue;
        }
        match parser(&text) {
            Ok(0) => bad_value(&path, &ValueError::Zero("0".to_owned()), warnings),
            Ok(n) if best.as_ref().is_none_or(|b| n < b.0) => {
                best = Some((n, text.trim().to_owned(), source(chain, &path)))
            }
            Ok(_) => {}
            Err(e) => bad_value(&path, &e, warnings),
        }
    }
    best
}
