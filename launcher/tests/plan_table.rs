//! The decision matrix as a table: one row per platform x CPU x memory
//! case, covering every row of DESIGN.md's baseline and each refinement.

use corefit::plan::facts::{Hint, Platform, PlatformKind};
use corefit::plan::{plan, resolve, Env, FlagValues, Mode, Scaling};
use corefit_test_support::facts::{limits, with_cpuset, GIB, MIB};

struct Row {
    name: &'static str,
    platform: PlatformKind,
    limits: corefit::plan::Limits,
    env: &'static [(&'static str, &'static str)],
    mode: Mode,
    workers: u32,
    /// A phrase that must appear among the reasons.
    reason: &'static str,
    /// A phrase that must appear among the warnings ("" = no warning).
    warning: &'static str,
}

fn run(row: &Row, platform: Platform) {
    let env: Env = row
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let overrides = resolve(&FlagValues::default(), &env).unwrap();
    let p = plan(&row.limits, &platform, &overrides);
    assert_eq!(
        (p.mode, p.workers),
        (row.mode, row.workers),
        "{}: {:#?}",
        row.name,
        p.reasons
    );
    assert!(
        p.reasons.iter().any(|r| r.contains(row.reason)),
        "{}: no reason containing {:?} in {:#?}",
        row.name,
        row.reason,
        p.reasons
    );
    if row.warning.is_empty() {
        assert!(
            p.warnings.is_empty(),
            "{}: unexpected warnings {:?}",
            row.name,
            p.warnings
        );
    } else {
        assert!(
            p.warnings.iter().any(|w| w.contains(row.warning)),
            "{}: no warning containing {:?} in {:?}",
            row.name,
            row.warning,
            p.warnings
        );
    }
    let expected_scaling = if row.platform.orchestrated() {
        Scaling::Horizontal
    } else {
        Scaling::Vertical
    };
    assert_eq!(p.scaling, expected_scaling, "{}", row.name);
    assert_eq!(
        p.worker_env.common["COREFIT_WORKERS"],
        row.workers.to_string(),
        "{}",
        row.name
    );
    assert_eq!(
        p.worker_env.common["COREFIT_MODE"],
        row.mode.as_str(),
        "{}",
        row.name
    );
}

use PlatformKind::*;

#[test]
fn baseline_every_platform() {
    // Baseline: orchestrators -> single (no CPU limit: the host's cores are not ours);
    // VPS / bare metal / plain hosts -> workers = CPU count.
    for kind in PlatformKind::ALL {
        let host = limits(48, None, 64 * GIB, None);
        let (mode, workers, reason) = if kind.orchestrated() {
            (Mode::Single, 1, "no CPU limit is set")
        } else {
            (Mode::Cluster, 48, "48 whole CPUs -> 48 workers")
        };
        let row = Row {
            name: kind.id(),
            platform: kind,
            limits: host,
            env: &[],
            mode,
            workers,
            reason,
            warning: "",
        };
        run(&row, Platform::new(kind, "test"));
    }
}

#[test]
fn refinements_every_platform() {
    for kind in PlatformKind::ALL {
        // 2 whole CPUs and enough memory: floor(CPUs) workers everywhere.
        let row = Row {
            name: kind.id(),
            platform: kind,
            limits: limits(48, Some(2.0), 64 * GIB, Some(2 * GIB)),
            env: &[],
            mode: Mode::Cluster,
            workers: 2,
            reason: "2 whole CPUs -> 2 workers",
            warning: "",
        };
        run(&row, Platform::new(kind, "test"));
        // 1.5 CPUs: fewer than 2 whole CPUs -> single.
        let row = Row {
            name: kind.id(),
            platform: kind,
            limits: limits(48, Some(1.5), 64 * GIB, Some(2 * GIB)),
            env: &[],
            mode: Mode::Single,
            workers: 1,
            reason: "fewer than 2 whole CPUs -> single process",
            warning: "",
        };
        run(&row, Platform::new(kind, "test"));
    }
}

#[test]
fn table() {
    let rows = [
        Row {
            name: "k8s 1.5 CPUs 768Mi",
            platform: Kubernetes,
            limits: limits(2, Some(1.5), 24 * GIB, Some(768 * MIB)),
            env: &[],
            mode: Mode::Single,
            workers: 1,
            reason: "1.5 CPUs from cgroup v2 quota 150000/100000",
            warning: "",
        },
        Row {
            name: "k8s 4 CPUs 4Gi",
            platform: Kubernetes,
            limits: limits(48, Some(4.0), 64 * GIB, Some(4 * GIB)),
            env: &[],
            mode: Mode::Cluster,
            workers: 4,
            reason: "one single-threaded process cannot use them",
            warning: "",
        },
        Row {
            name: "k8s 4 CPUs 1Gi: memory caps at 2",
            platform: Kubernetes,
            limits: limits(48, Some(4.0), 64 * GIB, Some(GIB)),
            env: &[],
            mode: Mode::Cluster,
            workers: 2,
            reason: "allows 2 workers -> 2 workers",
            warning: "",
        },
        Row {
            name: "k8s 4 CPUs 768Mi: memory allows 1 -> single",
            platform: Kubernetes,
            limits: limits(48, Some(4.0), 64 * GIB, Some(768 * MIB)),
            env: &[],
            mode: Mode::Single,
            workers: 1,
            reason: "allows 1 worker -> single process",
            warning: "",
        },
        Row {
            name: "ecs 2.5 CPUs",
            platform: Ecs,
            limits: limits(8, Some(2.5), 16 * GIB, Some(4 * GIB)),
            env: &[],
            mode: Mode::Cluster,
            workers: 2,
            reason: "2.5 CPUs",
            warning: "",
        },
        Row {
            name: "vps 8 CPUs 32Gi",
            platform: Vps,
            limits: limits(8, None, 32 * GIB, None),
            env: &[],
            mode: Mode::Cluster,
            workers: 8,
            reason: "workers = CPU count",
            warning: "",
        },
        Row {
            name: "vps 1 CPU",
            platform: Vps,
            limits: limits(1, None, 2 * GIB, None),
            env: &[],
            mode: Mode::Single,
            workers: 1,
            reason: "fewer than 2 whole CPUs",
            warning: "",
        },
        Row {
            name: "vps 8 CPUs 1Gi host memory",
            platform: Vps,
            limits: limits(8, None, GIB, None),
            env: &[],
            mode: Mode::Cluster,
            workers: 2,
            reason: "of memory at 512 MiB per worker allows 2",
            warning: "",
        },
        Row {
            name: "bare metal 16 CPUs",
            platform: BareMetal,
            limits: limits(16, None, 128 * GIB, None),
            env: &[],
            mode: Mode::Cluster,
            workers: 16,
            reason: "16 whole CPUs -> 16 workers",
            warning: "",
        },
        Row {
            name: "container quota 3 on 48",
            platform: Container,
            limits: limits(48, Some(3.0), 64 * GIB, None),
            env: &[],
            mode: Mode::Cluster,
            workers: 3,
            reason: "3 CPUs from cgroup v2 quota",
            warning: "",
        },
        Row {
            name: "cpuset narrower than quota",
            platform: Kubernetes,
            limits: with_cpuset(limits(8, Some(4.0), 16 * GIB, Some(8 * GIB)), 1),
            env: &[],
            mode: Mode::Single,
            workers: 1,
            reason: "cpuset 0-0",
            warning: "",
        },
        Row {
            name: "explicit 8 on 2 CPUs is capped",
            platform: Kubernetes,
            limits: limits(48, Some(2.0), 64 * GIB, Some(8 * GIB)),
            env: &[("COREFIT_WORKERS", "8")],
            mode: Mode::Cluster,
            workers: 2,
            reason: "capped to 2 by the CPU count",
            warning: "COREFIT_WORKERS=8 is above the 2 CPUs available",
        },
        Row {
            name: "explicit 8 on 2 CPUs, oversubscribe",
            platform: Kubernetes,
            limits: limits(48, Some(2.0), 64 * GIB, Some(8 * GIB)),
            env: &[
                ("WEB_CONCURRENCY", "8"),
                ("COREFIT_ALLOW_OVERSUBSCRIBE", "true"),
            ],
            mode: Mode::Cluster,
            workers: 8,
            reason: "oversubscription is allowed",
            warning: "",
        },
        Row {
            name: "explicit 8 oversubscribed but memory for 4",
            platform: Kubernetes,
            limits: limits(48, Some(2.0), 64 * GIB, Some(2 * GIB)),
            env: &[
                ("WEB_CONCURRENCY", "8"),
                ("COREFIT_ALLOW_OVERSUBSCRIBE", "1"),
            ],
            mode: Mode::Cluster,
            workers: 4,
            reason: "allows 4 workers",
            warning: "worker count capped by memory",
        },
        Row {
            name: "explicit single on 8 CPUs",
            platform: Vps,
            limits: limits(8, None, 32 * GIB, None),
            env: &[("CLUSTER_MODE", "false")],
            mode: Mode::Single,
            workers: 1,
            reason: "CLUSTER_MODE=single -> single process",
            warning: "",
        },
        Row {
            name: "explicit single ignores a count",
            platform: Vps,
            limits: limits(8, None, 32 * GIB, None),
            env: &[("COREFIT_MODE", "single"), ("CLUSTER_WORKERS", "4")],
            mode: Mode::Single,
            workers: 1,
            reason: "single process",
            warning: "CLUSTER_WORKERS=4 is ignored",
        },
        Row {
            name: "explicit cluster on 1 CPU",
            platform: Kubernetes,
            limits: limits(48, Some(1.0), 64 * GIB, Some(GIB)),
            env: &[("COREFIT_MODE", "cluster")],
            mode: Mode::Cluster,
            workers: 1,
            reason: "cluster mode with 1 worker",
            warning: "",
        },
        Row {
            name: "MAX_WORKERS caps",
            platform: Vps,
            limits: limits(8, None, 32 * GIB, None),
            env: &[("MAX_WORKERS", "3")],
            mode: Mode::Cluster,
            workers: 3,
            reason: "MAX_WORKERS=3 caps the count at 3",
            warning: "",
        },
        Row {
            name: "MAX_WORKERS=1 -> single",
            platform: Vps,
            limits: limits(8, None, 32 * GIB, None),
            env: &[("MAX_WORKERS", "1")],
            mode: Mode::Single,
            workers: 1,
            reason: "caps the count at 1",
            warning: "",
        },
        Row {
            name: "memory per worker 1Gi",
            platform: Vps,
            limits: limits(8, None, 4 * GIB, None),
            env: &[("COREFIT_MEMORY_PER_WORKER", "1Gi")],
            mode: Mode::Cluster,
            workers: 4,
            reason: "at 1 GiB per worker allows 4",
            warning: "",
        },
        Row {
            name: "huge explicit count is capped, not trusted",
            platform: Vps,
            limits: limits(2, None, 32 * GIB, None),
            env: &[("CLUSTER_WORKERS", "4096")],
            mode: Mode::Cluster,
            workers: 2,
            reason: "capped to 2",
            warning: "above the 2 CPUs",
        },
        Row {
            name: "workers=auto behaves as no override",
            platform: Vps,
            limits: limits(4, None, 32 * GIB, None),
            env: &[("COREFIT_WORKERS", "max")],
            mode: Mode::Cluster,
            workers: 4,
            reason: "4 whole CPUs",
            warning: "",
        },
        Row {
            name: "orchestrated explicit count without limit",
            platform: Kubernetes,
            limits: limits(48, None, 64 * GIB, None),
            env: &[("COREFIT_WORKERS", "4")],
            mode: Mode::Cluster,
            workers: 4,
            reason: "COREFIT_WORKERS asks for 4 workers",
            warning: "",
        },
    ];
    for row in &rows {
        run(row, Platform::new(row.platform, "test"));
    }
}

#[test]
fn platform_published_sizes_bound_the_plan() {
    // Render publishes its CPU count; Fly its memory.
    let mut render = Platform::new(Render, "RENDER is set");
    render.cpu_hint = Some(Hint {
        value: 1.0,
        variable: "RENDER_CPU_COUNT".into(),
    });
    let row = Row {
        name: "render 1 CPU on an 8-core host",
        platform: Render,
        limits: limits(8, None, 32 * GIB, None),
        env: &[],
        mode: Mode::Single,
        workers: 1,
        reason: "RENDER_CPU_COUNT=1",
        warning: "",
    };
    run(&row, render);

    let mut fly = Platform::new(FlyIo, "FLY_APP_NAME is set");
    fly.memory_hint = Some(Hint {
        value: 256 * MIB,
        variable: "FLY_VM_MEMORY_MB".into(),
    });
    let row = Row {
        name: "fly 4 CPUs 256 MB",
        platform: FlyIo,
        limits: limits(4, Some(4.0), 32 * GIB, None),
        env: &[],
        mode: Mode::Single,
        workers: 1,
        reason: "FLY_VM_MEMORY_MB=256 MiB",
        warning: "",
    };
    run(&row, fly);
}

#[test]
fn worker_environment_follows_the_decision() {
    let overrides = resolve(&FlagValues::default(), &Env::new()).unwrap();
    let p = plan(
        &limits(48, Some(2.0), 64 * GIB, Some(GIB)),
        &Platform::new(Kubernetes, "t"),
        &overrides,
    );
    let w0 = p.worker_env.for_worker(0);
    assert_eq!(w0["COREFIT_WORKER_ID"], "0");
    assert_eq!(w0["NODE_APP_INSTANCE"], "0");
    assert_eq!(w0["WEB_CONCURRENCY"], "1");
    assert_eq!(w0["GOMAXPROCS"], "1");
    // 1 GiB / 2 workers = 512 MiB each; 75 % for V8's old space.
    assert_eq!(w0["NODE_OPTIONS"], "--max-old-space-size=384");
    assert_eq!(p.worker_memory_share, Some(512 * MIB));
}
