//! The probes against fixture trees: one per cgroup layout the launcher
//! must read right, plus every file made empty, non-numeric, negative and
//! overflowing.

use corefit::plan::facts::{CgroupLayout, CgroupVersion, LimitSource, Limits};
use corefit::probe::{self, LiveFacts, Warnings};
use corefit_test_support::facts::{copy_fixture, fixture, fixture_with};

/// Live facts for fixtures: no affinity mask, sysconf says 1 (the fixtures'
/// `cpu/online` says 8, so a fallback to sysconf would show).
const FIXTURE_LIVE: LiveFacts = LiveFacts {
    affinity_cpus: None,
    sysconf_cpus: 1,
};

/// Probes a copy of fixture `name` with `file` overwritten by `contents`.
fn probe_with(name: &str, file: &str, contents: &str) -> (Limits, Warnings) {
    probe(fixture_with(name, file, contents).path())
}

/// Probes fixture `name`, which must give no warning.
fn probe_clean(name: &str) -> Limits {
    let (l, w) = probe(&fixture(name));
    assert!(w.is_empty(), "{w:?}");
    l
}

/// Probes a tree.
fn probe(root: &std::path::Path) -> (Limits, Warnings) {
    let mut w = Warnings::new();
    let l = probe::limits(root, FIXTURE_LIVE, &mut w);
    (l, w)
}

/// The limit was read from a file whose path ends with `suffix`.
fn assert_read_from(source: &LimitSource, suffix: &str) {
    assert!(
        source.file.ends_with(suffix),
        "{} not {suffix}",
        source.file
    );
}

/// The CPU quota is `cpus` (`why`), read from a file ending with `file`.
fn assert_quota(l: &Limits, cpus: f64, file: &str, why: &str) {
    let q = l.cpu.quota.as_ref().expect("a CPU quota");
    assert_eq!(q.cpus(), cpus, "{why}");
    assert_read_from(&q.source, file);
}

/// The memory limit is `bytes`, read from a file ending with `file`.
fn assert_memory_limit(l: &Limits, bytes: u64, file: &str) {
    let m = l.memory.limit.as_ref().expect("a memory limit");
    assert_eq!(m.bytes, bytes);
    assert_read_from(&m.source, file);
}

/// One of the warnings names `file`.
fn a_warning_names(w: &Warnings, file: &str) -> bool {
    w.iter().any(|m| m.contains(file))
}

const MIB: u64 = 1024 * 1024;

#[test]
fn v2_leaf_quota() {
    let l = probe_clean("cgroup-v2-leaf");
    assert_eq!(l.cgroup, CgroupLayout::V2);
    let q = l.cpu.quota.unwrap();
    assert_eq!((q.quota_us, q.period_us), (200000, 100000));
    assert_eq!(q.cpus(), 2.0);
    assert_eq!(q.source.cgroup, CgroupVersion::V2);
    assert_read_from(&q.source, "kubepods/pod1/ctr/cpu.max");
    assert_eq!(l.memory.limit.unwrap().bytes, 1024 * MIB);
    assert_eq!(l.memory.high, None);
    assert_eq!(l.cpu.host_cpus, 8);
    assert_eq!(l.memory.host_bytes, Some(16384000 * 1024));
}

#[test]
fn v2_nested_ancestor_smaller_than_leaf_wins() {
    let l = probe_clean("cgroup-v2-nested");
    assert_quota(
        &l,
        1.0,
        "kubepods/pod1/cpu.max",
        "the pod's 1 CPU bounds the container's 4",
    );
    assert_memory_limit(&l, 1024 * MIB, "kubepods/pod1/memory.max");
    assert_eq!(l.memory.high.unwrap().bytes, 768 * MIB);
}

#[test]
fn v2_max_means_no_limit() {
    let l = probe_clean("cgroup-v2-max");
    assert_eq!(l.cpu.quota, None);
    assert_eq!(l.memory.limit, None);
}

#[test]
fn v2_fractional_quota_is_kept() {
    let (l, _) = probe(&fixture("cgroup-v2-fractional"));
    assert_eq!(l.cpu.quota.unwrap().cpus(), 1.5);
}

#[test]
fn v2_cpuset_narrower_than_quota() {
    let l = probe_clean("cgroup-v2-cpuset");
    assert_eq!(l.cpu.quota.as_ref().unwrap().cpus(), 3.0);
    let s = l.cpu.cpuset.unwrap();
    assert_eq!((s.cpus, s.list.as_str()), (1, "2"));
}

#[test]
fn v1_cpu_cpuacct_comounted() {
    let l = probe_clean("cgroup-v1-comounted");
    assert_eq!(l.cgroup, CgroupLayout::V1);
    let q = l.cpu.quota.unwrap();
    assert_eq!((q.quota_us, q.period_us), (150000, 100000));
    assert_eq!(q.source.cgroup, CgroupVersion::V1);
    assert_read_from(&q.source, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us");
    assert_eq!(l.memory.limit.unwrap().bytes, 768 * MIB);
    assert_eq!(l.cpu.cpuset.unwrap().cpus, 8);
}

#[test]
fn v1_nested_path_with_namespaced_root() {
    let l = probe_clean("cgroup-v1-namespaced");
    // The mount root is the container's cgroup: its files sit at the mount point.
    assert_quota(
        &l,
        2.5,
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
        "the mounted root's 2.5 bounds the child's 3",
    );
    let m = l.memory.limit.unwrap();
    assert_eq!(
        m.bytes,
        512 * MIB,
        "the child is unlimited; the mounted root's 512 MiB wins"
    );
}

#[test]
fn hybrid_reads_v1_controllers_not_the_empty_unified_mount() {
    let l = probe_clean("cgroup-hybrid");
    assert_eq!(l.cgroup, CgroupLayout::Hybrid);
    let q = l.cpu.quota.unwrap();
    assert_eq!(q.cpus(), 0.5);
    assert_eq!(q.source.cgroup, CgroupVersion::V1);
    // v1 memory is a page-rounded 2^63: unlimited; the unified decoy is not read.
    assert_eq!(l.memory.limit, None);
    assert_eq!(l.cpu.cpuset.unwrap().cpus, 2);
}

const GARBAGE: [(&str, &str); 4] = [
    ("empty", ""),
    ("non-numeric", "abc"),
    ("negative", "-5"),
    ("overflowing", "99999999999999999999999"),
];

/// Probes each case, "FIXTURE/FILE", with each [`GARBAGE`] value written
/// to the file; `check` gets the file, (what, value) and what the probe
/// saw.
fn with_garbage(cases: &[&str], check: impl Fn(&str, (&str, &str), &Limits, &Warnings)) {
    for case in cases {
        let (fixture, file) = case.split_once('/').expect("FIXTURE/FILE");
        for garbage in GARBAGE {
            let (l, w) = probe_with(fixture, file, garbage.1);
            check(file, garbage, &l, &w);
        }
    }
}

#[test]
fn garbage_cpu_files_are_ignored_with_a_warning_naming_the_file() {
    let cases = [
        "cgroup-v2-leaf/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max",
        "cgroup-v1-comounted/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us",
        "cgroup-v1-comounted/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us",
    ];
    with_garbage(&cases, |file, (what, _), l, w| {
        assert_eq!(
            l.cpu.quota, None,
            "{file} {what}: the garbage quota must not be used"
        );
        assert!(
            a_warning_names(w, file),
            "{file} {what}: expected a warning naming the file, got {w:?}"
        );
    });
}

#[test]
fn garbage_memory_files_are_ignored_with_a_warning_naming_the_file() {
    let cases = [
        "cgroup-v2-leaf/sys/fs/cgroup/kubepods/pod1/ctr/memory.max",
        "cgroup-v1-comounted/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
    ];
    with_garbage(&cases, |file, (what, _), l, w| {
        assert_eq!(l.memory.limit, None, "{file} {what}");
        assert!(a_warning_names(w, file), "{file} {what}: {w:?}");
    });
    // memory.high too, beside a valid memory.max that must survive.
    let high = ["cgroup-v2-nested/sys/fs/cgroup/kubepods/pod1/ctr/memory.high"];
    with_garbage(&high, |file, (what, _), l, w| {
        assert_eq!(l.memory.high, None, "{what}");
        assert_eq!(l.memory.limit.as_ref().unwrap().bytes, 1024 * MIB, "{what}");
        assert!(a_warning_names(w, file), "{what}: {w:?}");
    });
}

#[test]
fn garbage_cpusets_are_ignored() {
    let cases = [
        "cgroup-v2-cpuset/sys/fs/cgroup/pinned/cpuset.cpus.effective",
        "cgroup-v1-comounted/sys/fs/cgroup/cpuset/docker/abc/cpuset.cpus",
    ];
    with_garbage(&cases, |file, (what, value), l, w| {
        if value.is_empty() {
            // An empty cpuset file means "inherit" in cgroup v2: no limit, no warning.
            assert!(!a_warning_names(w, file), "{file} {what}: {w:?}");
        } else {
            assert!(a_warning_names(w, file), "{file} {what}: {w:?}");
        }
        // The parent's cpuset (v1: 0-7) or none (v2) remains.
        assert!(
            l.cpu.cpuset.as_ref().is_none_or(|s| s.cpus == 8),
            "{file} {what}: {:?}",
            l.cpu.cpuset
        );
    });
}

#[test]
fn garbage_proc_files_degrade_to_host_facts_with_warnings() {
    for (what, value) in GARBAGE {
        let dir = fixture_with("cgroup-v2-leaf", "proc/meminfo", value);
        std::fs::write(dir.path().join("sys/devices/system/cpu/online"), value).unwrap();
        let (l, w) = probe(dir.path());
        assert_eq!(l.memory.host_bytes, None, "{what}");
        assert!(a_warning_names(&w, "proc/meminfo"), "{what}: {w:?}");
        assert_eq!(
            l.cpu.host_cpus, FIXTURE_LIVE.sysconf_cpus,
            "{what}: falls back to sysconf"
        );
        // The cgroup limits are still read.
        assert_eq!(l.cpu.quota.unwrap().cpus(), 2.0);
    }
}

#[test]
fn garbage_mountinfo_and_cgroup_membership() {
    let (l, w) = probe_with(
        "cgroup-v1-comounted",
        "proc/self/mountinfo",
        "garbage\n\0\0\n1 2 3 4\n",
    );
    assert_eq!(l.cgroup, CgroupLayout::None);
    assert_eq!(l.cpu.quota, None);
    assert!(
        w.iter()
            .any(|m| m.contains("malformed") && m.contains("mountinfo")),
        "{w:?}"
    );

    let (l, w) = probe_with("cgroup-v1-comounted", "proc/self/cgroup", "nonsense\n");
    // Without a membership line the mount points are read (here: unlimited roots).
    assert_eq!(l.cpu.quota, None);
    assert!(a_warning_names(&w, "no cpu line"), "{w:?}");

    let dir = copy_fixture("cgroup-v2-leaf");
    std::fs::remove_file(dir.path().join("proc/self/mountinfo")).unwrap();
    let (l, w) = probe(dir.path());
    assert_eq!(l.cgroup, CgroupLayout::None);
    assert!(a_warning_names(&w, "mountinfo"), "{w:?}");
}

/// A private cgroup namespace with the host's cgroupfs mounted as is:
/// mountinfo shows the mount's root as `/../..`, /proc/self/cgroup says
/// `/`. The cgroup two levels down whose cgroup.procs lists the pid of
/// /proc/self/stat (4242) is this process's, with its ancestors.
#[test]
fn hidden_namespace_root_is_found_by_its_cgroup_procs() {
    let l = probe_clean("cgroup-v1-namespace-hidden");
    assert_quota(
        &l,
        1.5,
        "cpu,cpuacct/docker/ctr/cpu.cfs_quota_us",
        "docker/ctr's quota, not a sibling's or none",
    );
    assert_memory_limit(&l, 768 * MIB, "memory/docker/ctr/memory.limit_in_bytes");

    let l = probe_clean("cgroup-v2-namespace-hidden");
    assert_eq!(l.cpu.quota.unwrap().cpus(), 1.5);
    assert_eq!(l.memory.limit.unwrap().bytes, 768 * MIB);
    assert_eq!(l.memory.high.unwrap().bytes, 512 * MIB);

    // An ancestor above the namespace's root still bounds it.
    let (l, w) = probe_with(
        "cgroup-v1-namespace-hidden",
        "sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_quota_us",
        "100000",
    );
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(l.cpu.quota.unwrap().cpus(), 1.0);
}

/// When no cgroup.procs at that depth lists the pid (or the pid is
/// unknown) the plan says so, naming the files, and reads the mount's
/// root only: never a silent host-sized plan.
#[test]
fn hidden_namespace_root_not_found_is_a_warning_naming_the_files() {
    let cases = [
        ("cgroup-v1-namespace-hidden", "proc/self/stat", "777 (x) R"),
        ("cgroup-v1-namespace-hidden", "proc/self/stat", "garbage"),
        ("cgroup-v2-namespace-hidden", "proc/self/stat", "777 (x) R"),
    ];
    for (fixture, file, contents) in cases {
        let (l, w) = probe_with(fixture, file, contents);
        assert_eq!(l.cpu.quota, None, "{fixture} {contents}: the root has none");
        assert_eq!(l.memory.limit, None, "{fixture} {contents}");
        let hidden: Vec<&String> = w
            .iter()
            .filter(|m| m.contains("private cgroup namespace hides"))
            .collect();
        // v1: one per hierarchy read (cpu, memory); v2: one for the mount.
        let expect = if fixture.contains("v1") { 2 } else { 1 };
        assert_eq!(hidden.len(), expect, "{fixture} {contents}: {w:?}");
        for m in hidden {
            for named in ["proc/self/mountinfo", "proc/self/cgroup", "\"/../..\""] {
                assert!(m.contains(named), "{fixture}: {named} not in {m}");
            }
            if contents.starts_with("777") {
                assert!(m.contains("lists pid 777"), "{m}");
            } else {
                assert!(m.contains("proc/self/stat"), "{m}");
            }
        }
    }
}

/// The whole detect -> plan step on a tree, with `env` as the environment.
fn plan_of(root: &std::path::Path, env: &[(&str, &str)]) -> corefit::explain::Report {
    let env: corefit::plan::Env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    corefit::decision::decide(
        &corefit::plan::FlagValues::default(),
        None,
        &env,
        root,
        FIXTURE_LIVE,
    )
    .unwrap()
}

const ON_K8S: (&str, &str) = ("KUBERNETES_SERVICE_HOST", "10.96.0.1");

/// The reason that says where the CPUs came from.
fn cpu_reason(r: &corefit::explain::Report) -> String {
    let d = &r.decision;
    let src = &d.effective_cpus.source;
    d.reasons
        .iter()
        .find(|l| l.ends_with(src.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("no reason names {src}: {:?}", d.reasons))
}

/// A Kubernetes pod with a 1.5-CPU request and no limit on cgroup v1: the
/// kubelet's cpu.shares 1536 is read back as 1.5 CPUs (one process; the
/// plan names the request), the downward API's variable wins over it (3
/// workers), and with a quota the quota wins.
#[test]
fn k8s_v1_request_from_cpu_shares() {
    let root = fixture("k8s-v1-request");
    let r = plan_of(&root, &[ON_K8S]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.decision.workers, 1);
    assert_eq!(r.decision.effective_cpus.value, 1.5);
    let why = cpu_reason(&r);
    assert!(
        why.starts_with("1.5 CPUs from the CPU request (cpu.shares 1536, cgroup v1, ")
            && why.ends_with("sys/fs/cgroup/cpu,cpuacct/cpu.shares)"),
        "{why}"
    );
    let r = plan_of(&root, &[ON_K8S, ("COREFIT_CPU_REQUEST", "3000")]);
    assert_eq!(r.decision.workers, 3);
    assert_eq!(
        cpu_reason(&r),
        "3 CPUs from the CPU request (COREFIT_CPU_REQUEST=3000)"
    );
    let with_shares =
        |v: &str| fixture_with("k8s-v1-request", "sys/fs/cgroup/cpu,cpuacct/cpu.shares", v);
    let r = plan_of(with_shares("4096\n").path(), &[ON_K8S]);
    assert_eq!(r.decision.workers, 4);
    // A quota (2 CPUs) wins over the request (4).
    let quota = with_shares("4096\n");
    std::fs::write(
        quota
            .path()
            .join("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"),
        "200000\n",
    )
    .unwrap();
    let r = plan_of(quota.path(), &[ON_K8S]);
    assert_eq!(r.decision.workers, 2);
    assert!(cpu_reason(&r).contains("quota 200000/100000"), "{r:?}");
    // The floor (no request) and the default: the host's CPUs are not the
    // pod's, one process, as before.
    for v in ["2", "1024"] {
        let r = plan_of(with_shares(v).path(), &[ON_K8S]);
        assert_eq!(r.decision.workers, 1, "shares {v}");
        assert!(!r.decision.cpu_limited, "shares {v}");
        assert_eq!(r.decision.effective_cpus.value, 8.0);
    }
}

/// The same tree outside Kubernetes: cpu.shares are a relative weight,
/// not a request; the plan is today's (the host's 8 CPUs, 8 workers on a
/// VPS), and COREFIT_CPU_REQUEST is ignored with a warning.
#[test]
fn outside_kubernetes_shares_are_not_a_request() {
    let root = fixture("k8s-v1-request");
    let r = plan_of(&root, &[]);
    assert_eq!(r.decision.platform, corefit::plan::PlatformKind::Vps);
    assert_eq!(r.decision.effective_cpus.value, 8.0);
    assert_eq!(r.decision.workers, 8);
    assert!(!cpu_reason(&r).contains("request"), "{r:?}");
    let r = plan_of(&root, &[("DYNO", "web.1"), ("COREFIT_CPU_REQUEST", "2000")]);
    assert_eq!(r.decision.workers, 1);
    assert!(!r.decision.cpu_limited);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("ignoring COREFIT_CPU_REQUEST=\"2000\"")),
        "{:?}",
        r.warnings
    );
}

/// cgroup v2: the container's cpu.weight 79 (runc's conversion of 2048
/// shares) reads back as 2 CPUs -> 2 workers; the pod's own weight one
/// level up is not read. A weight out of range is a warning naming it.
#[test]
fn k8s_v2_request_from_cpu_weight() {
    let root = fixture("k8s-v2-request");
    let r = plan_of(&root, &[ON_K8S]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.decision.workers, 2);
    let why = cpu_reason(&r);
    assert!(
        why.starts_with("2 CPUs from the CPU request (cpu.weight 79, cgroup v2, ")
            && why.ends_with("kubepods/burstable/pod1/ctr/cpu.weight)"),
        "{why}"
    );
    let ctr = "sys/fs/cgroup/kubepods/burstable/pod1/ctr/cpu.weight";
    let r = plan_of(
        fixture_with("k8s-v2-request", ctr, "100\n").path(),
        &[ON_K8S],
    );
    assert_eq!((r.decision.workers, r.decision.cpu_limited), (1, false));
    let r = plan_of(fixture_with("k8s-v2-request", ctr, "0\n").path(), &[ON_K8S]);
    assert_eq!(r.decision.workers, 1);
    assert!(a_warning_names(&r.warnings, ctr), "{:?}", r.warnings);
}
