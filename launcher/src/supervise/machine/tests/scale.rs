//! Scaling up and down.

use super::*;
use crate::control::scale::{ScaleCap, ScaleTarget};
use crate::plan::Cap;
use crate::supervise::settings::tests::Vars;
use admission::{Refusal, ReloadAdmitted};

#[test]
fn scaling_up_spawns_new_ids_and_down_retires_the_highest() {
    let (mut s, t0) = ready(checked(2));
    let a = acts(s.handle(t0, Event::Scale { workers: 4 }));
    assert_eq!(a, vec![Action::Spawn { id: 2 }, Action::Spawn { id: 3 }]);
    assert_eq!(s.desired(), 4);
    s.handle(t0, Event::Spawned { id: 2, pid: 102 });
    s.handle(t0, Event::Spawned { id: 3, pid: 103 });
    let a = acts(s.handle(t0, Event::Ready { id: 3, pid: 103 }));
    assert_eq!(a, vec![Action::Route { id: 3 }]);
    let a = acts(s.handle(t0, Event::Scale { workers: 1 }));
    assert_eq!(a, retire(&[1, 2, 3]));
    assert_eq!(s.running(), vec![(0, 100)]);
    // Their exits are not restarts.
    for pid in [101, 102, 103] {
        let a = acts(s.handle(t0, exited(pid, ExitReason::Code(0))));
        assert_eq!(a, vec![kill9(pid)]);
    }
    // Up again reuses the ids.
    assert_eq!(
        acts(s.handle(t0, Event::Scale { workers: 2 })),
        vec![Action::Spawn { id: 1 }]
    );
    assert!(s.restarts_by_reason().is_empty());
}

#[test]
fn a_spawn_in_flight_when_scaled_away_is_stopped_when_it_reports() {
    let (mut s, t0) = ready(checked(1));
    s.handle(t0, Event::Scale { workers: 2 });
    s.handle(t0, Event::Scale { workers: 1 });
    let a = acts(s.handle(t0, Event::Spawned { id: 1, pid: 7 }));
    assert_eq!(a, vec![term(7)]);
    assert_eq!(s.running(), vec![(0, 100)]);
}

// ---- admission: whether a request becomes an event ----

#[test]
fn scale_requests_are_admitted_within_the_cap_and_refused_otherwise() {
    use crate::control::scale::ScaleTarget::{Absolute, Delta};
    let (mut s, t0) = ready(checked(2));
    let four = ScaleCap::of(Cap::Cpu, 4);
    // (target, --force, one worker on the app's own port, wanted)
    type Case = (ScaleTarget, bool, bool, Result<Option<u32>, &'static str>);
    let cases: [Case; 6] = [
        (Delta(1), false, false, Ok(Some(3))),
        (Absolute(2), false, false, Ok(None)),
        (Absolute(8), false, false, Err("the cap is 4 (4 CPU(s))")),
        (Absolute(8), true, false, Ok(Some(8))),
        (Delta(-2), false, false, Err("at least 1 is needed")),
        (
            Absolute(3),
            false,
            true,
            Err("one worker on the app's own port"),
        ),
    ];
    for (target, force, single_port, want) in cases {
        let got = s.admit_scale(target, force, &four, single_port);
        match (got, want) {
            (Ok(n), Ok(w)) => assert_eq!(n, w, "{target}"),
            (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{target}: {e}"),
            (got, want) => panic!("{target}: {got:?}, wanted {want:?}"),
        }
    }
    // Scaling down to one on the app's own port is fine.
    assert_eq!(s.admit_scale(Absolute(1), false, &four, true), Ok(Some(1)));

    assert_eq!(
        s.admit_reload(),
        Ok(ReloadAdmitted::Starts {
            workers: 2,
            parallel: 1
        })
    );
    s.handle(t0, Event::Reload);
    assert_eq!(s.admit_reload(), Ok(ReloadAdmitted::Queued));
    assert_eq!(
        s.admit_scale(Delta(1), false, &four, false),
        Err(Refusal::Reloading)
    );
    assert_eq!(s.admit_resize(3, false), None, "not during a reload");
    s.handle(t0, Event::Signal(Signal::SIGTERM));
    assert_eq!(s.admit_reload(), Err(Refusal::Stopping));
    assert_eq!(
        s.admit_scale(Delta(1), false, &four, false),
        Err(Refusal::Stopping)
    );
}

#[test]
fn a_resize_follows_the_plan_unless_the_count_is_fixed() {
    let (s, _) = ready(checked(2));
    assert_eq!(s.admit_resize(3, false), Some(3));
    assert_eq!(s.admit_resize(2, false), None);
    assert_eq!(s.admit_resize(3, true), None);
}

/// A plan for a VPS with `cpus` CPUs, `mib` MiB and the given overrides.
fn plan_for(cpus: f64, mib: u64, overrides: &[(&str, &str)]) -> crate::plan::Plan {
    use crate::plan::facts::{Hint, Platform, PlatformKind, PodResources};
    let flags = crate::plan::FlagValues::default();
    let env: crate::plan::Env = overrides
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let o = crate::plan::resolve(&flags, &env).unwrap();
    crate::plan::plan_for_pod(
        &PodResources {
            node_cpus: 64,
            cpus: Some(Hint {
                value: cpus,
                variable: "test".into(),
            }),
            memory: Some(Hint {
                value: mib << 20,
                variable: "test".into(),
            }),
        },
        &Platform::new(PlatformKind::Vps, "test"),
        &o,
    )
}

#[test]
fn the_scale_cap_is_the_cap_the_plan_says_binds() {
    // (CPUs, MiB, variables, cap, why)
    type Case = (f64, u64, Vars, u32, &'static str);
    let cases: [Case; 5] = [
        (4.0, 8192, &[], 4, "4 CPU(s)"),
        (8.0, 1536, &[], 3, "memory for 3 worker(s)"),
        (
            8.0,
            8192,
            &[("MAX_WORKERS", "2")],
            2,
            "a maximum of 2 worker(s)",
        ),
        (
            2.0,
            8192,
            &[
                ("COREFIT_ALLOW_OVERSUBSCRIBE", "1"),
                ("COREFIT_WORKERS", "6"),
            ],
            16,
            "memory for 16 worker(s)",
        ),
        (2.0, 8192, &[("COREFIT_WORKERS", "6")], 2, "2 CPU(s)"),
    ];
    for (cpus, mib, overrides, max, why) in cases {
        let plan = plan_for(cpus, mib, overrides);
        let cap = admission::scale_cap(&plan);
        assert_eq!(
            (cap.max, cap.why.as_str()),
            (max, why),
            "{cpus} {mib} {overrides:?}"
        );
        assert!(cap.max >= plan.workers, "never below the plan's count");
    }
}
