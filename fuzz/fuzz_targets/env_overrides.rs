//! Arbitrary environments through override resolution and the plan: either
//! an error naming a variable, or a plan with 1..=caps workers.
#![no_main]

use corefit::plan::facts::{CgroupLayout, CpuFacts, Limits, MemoryFacts, Platform, PlatformKind};
use corefit::plan::{plan, resolve, Env, FlagValues};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    // First line: host CPUs and memory in MiB, so the plan's inputs vary too.
    let (host, mem) = lines
        .next()
        .and_then(|l| l.split_once(' '))
        .map(|(a, b)| {
            (
                a.parse::<u32>().unwrap_or(2).clamp(1, 4096),
                b.parse::<u64>().unwrap_or(1024).clamp(1, 1 << 24),
            )
        })
        .unwrap_or((2, 1024));
    let env: Env = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    match resolve(&FlagValues::default(), &env) {
        Err(e) => assert!(
            env.contains_key(&e.source_name),
            "error names {}",
            e.source_name
        ),
        Ok(overrides) => {
            let limits = Limits {
                cgroup: CgroupLayout::None,
                cpu: CpuFacts {
                    host_cpus: host,
                    affinity_cpus: None,
                    quota: None,
                    cpuset: None,
                },
                memory: MemoryFacts {
                    host_bytes: Some(mem << 20),
                    limit: None,
                    high: None,
                },
            };
            for kind in PlatformKind::ALL {
                let p = plan(&limits, &Platform::new(kind, "fuzz"), &overrides);
                assert!(p.workers >= 1);
                if !p.oversubscribe {
                    assert!(p.workers <= p.caps.cpu);
                }
            }
        }
    }
});
