//! Properties of the plan over arbitrary facts and overrides: never 0
//! workers, never above its caps, never fewer workers when CPUs grow.

use corefit::plan::facts::{Platform, PlatformKind};
use corefit::plan::{plan, resolve, Env, FlagValues};
use corefit_test_support::facts::{limits, MIB};
use proptest::prelude::*;

fn platform() -> impl Strategy<Value = PlatformKind> {
    proptest::sample::select(PlatformKind::ALL.to_vec())
}

fn env_strategy() -> impl Strategy<Value = Env> {
    (
        proptest::option::of(prop_oneof![
            Just("auto".to_owned()),
            (1u32..5000).prop_map(|n| n.to_string())
        ]),
        proptest::option::of((1u32..64).prop_map(|n| n.to_string())),
        proptest::option::of((16u64..4096).prop_map(|n| format!("{n}Mi"))),
        proptest::option::of(proptest::bool::ANY),
        proptest::option::of(proptest::sample::select(vec!["auto", "single", "cluster"])),
    )
        .prop_map(|(workers, max, mem, over, mode)| {
            let mut env = Env::new();
            if let Some(w) = workers.filter(|w| w == "auto" || w.parse::<u32>().unwrap() <= 4096) {
                env.insert("COREFIT_WORKERS".into(), w);
            }
            if let Some(m) = max {
                env.insert("MAX_WORKERS".into(), m);
            }
            if let Some(m) = mem {
                env.insert("COREFIT_MEMORY_PER_WORKER".into(), m);
            }
            if let Some(o) = over {
                env.insert("COREFIT_ALLOW_OVERSUBSCRIBE".into(), o.to_string());
            }
            if let Some(m) = mode {
                env.insert("COREFIT_MODE".into(), m.into());
            }
            env
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_zero_and_never_above_caps(
        host in 1u32..512,
        quota in proptest::option::of(0.01f64..600.0),
        host_mem in (64u64..1_048_576).prop_map(|m| m * MIB),
        mem_limit in proptest::option::of((1u64..262_144).prop_map(|m| m * MIB)),
        kind in platform(),
        env in env_strategy(),
    ) {
        let overrides = resolve(&FlagValues::default(), &env).unwrap();
        let p = plan(&limits(host, quota, host_mem, mem_limit), &Platform::new(kind, "prop"), &overrides);
        prop_assert!(p.workers >= 1);
        if let Some(max) = p.caps.max_workers {
            prop_assert!(p.workers <= max);
        }
        if !p.oversubscribe {
            prop_assert!(p.workers <= p.caps.cpu, "{} > cpu cap {}", p.workers, p.caps.cpu);
        }
        if let Some(mem_cap) = p.caps.memory {
            prop_assert!(p.workers <= mem_cap.max(1), "{} > memory cap {}", p.workers, mem_cap);
        }
        // The cap that binds is one of them, and the count stays within it.
        if let Some(b) = p.caps.binding {
            prop_assert!(p.workers <= b.max.max(1), "{} > binding {b:?}", p.workers);
        }
        let uncapped = p.oversubscribe && p.caps.memory.is_none() && p.caps.max_workers.is_none();
        prop_assert_eq!(p.caps.binding.is_none(), uncapped);
        prop_assert!(p.effective_cpus.value <= host as f64 + 1e-9);
        prop_assert_eq!(p.worker_env.common["COREFIT_WORKERS"].clone(), p.workers.to_string());
    }

    #[test]
    fn more_cpus_never_means_fewer_workers(
        host in 1u32..512,
        q1 in 0.01f64..600.0,
        extra in 0.0f64..600.0,
        host_mem in (64u64..1_048_576).prop_map(|m| m * MIB),
        mem_limit in proptest::option::of((1u64..262_144).prop_map(|m| m * MIB)),
        kind in platform(),
        env in env_strategy(),
    ) {
        let overrides = resolve(&FlagValues::default(), &env).unwrap();
        let platform = Platform::new(kind, "prop");
        let small = plan(&limits(host, Some(q1), host_mem, mem_limit), &platform, &overrides);
        let large = plan(&limits(host, Some(q1 + extra), host_mem, mem_limit), &platform, &overrides);
        prop_assert!(large.workers >= small.workers, "quota {} -> {} workers, {} -> {}", q1, small.workers, q1 + extra, large.workers);
        // And more host CPUs under the same quota.
        let bigger_host = plan(&limits(host + 64, Some(q1), host_mem, mem_limit), &platform, &overrides);
        prop_assert!(bigger_host.workers >= small.workers);
    }
}
