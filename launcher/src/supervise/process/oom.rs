//! Keeping the supervisor out of the OOM killer's way: corefit's
//! `oom_score_adj` stays [`SUPERVISOR_OFFSET`] below its workers'.
//!
//! When a memory cgroup runs out, the kernel kills the process with the
//! highest badness: resident memory, swap and page tables, plus
//! `oom_score_adj` thousandths of the limit. In `proxy` mode corefit holds
//! two 16 KiB buffers per client connection, so a couple of thousand open
//! connections make it the largest process of its cgroup (a Node worker
//! starts at about 45 MiB). Killing it takes the whole service down (in a
//! container PID 1 ends the container; elsewhere the workers are left
//! running without their supervisor), while killing a worker costs one
//! restart.
//!
//! Two ways, the first that is allowed:
//! - corefit lowers its own value by the offset (never to -1000, "never
//!   kill": a corefit that leaks must stay killable) and sets each worker
//!   back to the inherited value, as PostgreSQL's postmaster does. Lowering
//!   needs CAP_SYS_RESOURCE (root on a host; most containers lack it).
//! - Otherwise each worker gets the inherited value plus the offset (at
//!   most 1000), which needs no privilege. Within a container's memory
//!   limit this only orders corefit's own processes; on a host-wide OOM
//!   the workers, which corefit restarts, go before other programs.
//!
//! Either way corefit is chosen over a worker only when it uses half the
//! limit more than that worker. A worker runs with corefit's value from
//! its exec until corefit's write right after the spawn; a child it forked
//! in between (microseconds) would keep corefit's value.

use std::path::Path;

/// How far below its workers corefit's value is.
pub const SUPERVISOR_OFFSET: i32 = 500;

/// The lowest value corefit asks for (-1000 would make it unkillable).
pub const LOWEST: i32 = -999;

/// The highest value the kernel accepts.
pub const HIGHEST: i32 = 1000;

/// What corefit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// corefit lowered its own from `inherited` to `own`; workers get
    /// `inherited` back.
    Lowered { inherited: i32, own: i32 },
    /// corefit could not lower its own (`why`); workers get `workers`.
    WorkersRaised { own: i32, workers: i32, why: String },
    /// Nothing to do or nothing possible; workers inherit corefit's value.
    Unchanged(String),
}

impl Protection {
    /// The value each worker is given right after it starts, if any.
    pub fn worker_value(&self) -> Option<i32> {
        match self {
            Protection::Lowered { inherited, .. } => Some(*inherited),
            Protection::WorkersRaised { workers, .. } => Some(*workers),
            Protection::Unchanged(_) => None,
        }
    }

    /// One line for corefit's log, when something changed.
    pub fn describe(&self) -> Option<String> {
        match self {
            Protection::Lowered { inherited, own } => Some(format!(
                "oom_score_adj {own} for corefit (was {inherited}), {inherited} for workers: out of memory, the kernel kills a worker (restarted) before the supervisor"
            )),
            Protection::WorkersRaised { own, workers, why } => Some(format!(
                "oom_score_adj {own} for corefit, {workers} for workers (corefit cannot lower its own: {why}): out of memory, the kernel kills a worker (restarted) before the supervisor"
            )),
            Protection::Unchanged(_) => None,
        }
    }
}

/// The value corefit asks for itself, given the inherited one; `None`
/// when it cannot go lower.
pub fn supervisor_value(inherited: i32) -> Option<i32> {
    let target = inherited.saturating_sub(SUPERVISOR_OFFSET).max(LOWEST);
    (target < inherited).then_some(target)
}

/// The value workers get when corefit keeps `own`; `None` when they
/// cannot go higher.
pub fn raised_worker_value(own: i32) -> Option<i32> {
    let target = own.saturating_add(SUPERVISOR_OFFSET).min(HIGHEST);
    (target > own).then_some(target)
}

/// Decides, given the inherited value and a way to lower corefit's own
/// (called with the lower value, if there is one).
pub fn protect(inherited: i32, lower: impl FnOnce(i32) -> Result<(), String>) -> Protection {
    let why = match supervisor_value(inherited) {
        Some(own) => match lower(own) {
            Ok(()) => return Protection::Lowered { inherited, own },
            Err(why) => why,
        },
        None => format!("already at {inherited}"),
    };
    match raised_worker_value(inherited) {
        Some(workers) => Protection::WorkersRaised {
            own: inherited,
            workers,
            why,
        },
        None => Protection::Unchanged(why),
    }
}

/// [`protect`] for this process, under `proc_root` (`/proc`).
pub fn protect_self(proc_root: &Path) -> Protection {
    let file = proc_root.join("self/oom_score_adj");
    let inherited = match std::fs::read_to_string(&file)
        .map_err(|e| e.to_string())
        .and_then(|t| t.trim().parse::<i32>().map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => return Protection::Unchanged(format!("{}: {e}", file.display())),
    };
    protect(inherited, |own| {
        std::fs::write(&file, own.to_string()).map_err(|e| e.to_string())
    })
}

/// Sets worker `pid`'s `oom_score_adj` (under `proc_root`) to `value`.
pub fn set_worker(proc_root: &Path, pid: i32, value: i32) -> std::io::Result<()> {
    std::fs::write(
        proc_root.join(pid.to_string()).join("oom_score_adj"),
        value.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corefit_asks_for_500_lower_but_never_for_never_kill() {
        assert_eq!(supervisor_value(0), Some(-500));
        assert_eq!(supervisor_value(1000), Some(500));
        // Kubernetes' Guaranteed pods start at -997.
        assert_eq!(supervisor_value(-997), Some(-999));
        assert_eq!(supervisor_value(-999), None);
        assert_eq!(supervisor_value(-1000), None);
        assert_eq!(supervisor_value(i32::MIN), None);
    }

    #[test]
    fn workers_go_500_higher_up_to_1000() {
        assert_eq!(raised_worker_value(0), Some(500));
        assert_eq!(raised_worker_value(900), Some(1000));
        assert_eq!(raised_worker_value(1000), None);
        assert_eq!(raised_worker_value(-1000), Some(-500));
        assert_eq!(raised_worker_value(i32::MAX), None);
    }

    #[test]
    fn lowers_its_own_when_allowed_else_raises_the_workers() {
        let lowered = protect(0, |v| {
            assert_eq!(v, -500);
            Ok(())
        });
        assert_eq!(
            lowered,
            Protection::Lowered {
                inherited: 0,
                own: -500
            }
        );
        assert_eq!(lowered.worker_value(), Some(0));
        assert!(lowered.describe().unwrap().contains("-500 for corefit"));

        // No CAP_SYS_RESOURCE: EACCES.
        let raised = protect(0, |_| Err("Permission denied".into()));
        assert_eq!(raised.worker_value(), Some(500));
        assert!(raised.describe().unwrap().contains("Permission denied"));

        // Kubernetes BestEffort: 1000, and no way down.
        let stuck = protect(1000, |_| Err("Permission denied".into()));
        assert_eq!(stuck, Protection::Unchanged("Permission denied".into()));
        assert_eq!(stuck.worker_value(), None);
        assert_eq!(stuck.describe(), None);

        // Already at the bottom: only the workers can move.
        let bottom = protect(-1000, |_| panic!("nothing lower to ask for"));
        assert_eq!(bottom.worker_value(), Some(-500));
    }

    fn fake_proc(adj: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        std::fs::write(dir.path().join("self/oom_score_adj"), adj).unwrap();
        dir
    }

    #[test]
    fn reads_and_writes_the_proc_files() {
        let proc = fake_proc("200\n");
        let p = protect_self(proc.path());
        assert_eq!(
            p,
            Protection::Lowered {
                inherited: 200,
                own: -300
            }
        );
        let own = std::fs::read_to_string(proc.path().join("self/oom_score_adj")).unwrap();
        assert_eq!(own, "-300");

        std::fs::create_dir_all(proc.path().join("42")).unwrap();
        set_worker(proc.path(), 42, 200).unwrap();
        let worker = std::fs::read_to_string(proc.path().join("42/oom_score_adj")).unwrap();
        assert_eq!(worker, "200");
        assert!(set_worker(proc.path(), 43, 200).is_err(), "no such process");
    }

    #[test]
    fn leaves_everything_when_it_cannot_read_its_own_value() {
        let missing = tempfile::tempdir().unwrap();
        assert!(matches!(
            protect_self(missing.path()),
            Protection::Unchanged(_)
        ));
        let garbage = fake_proc("lots");
        assert_eq!(protect_self(garbage.path()).worker_value(), None);
    }
}
