//! The machine's [`Notice`]s as people and log collectors read them: the
//! sentence (`Display`, what corefit has always printed) and, for JSON
//! log lines, the notice's own fields beside `msg`.

use std::fmt;

use serde_json::{Map, Value};

use crate::supervise::config::human_duration as human;
use crate::supervise::machine::Notice;

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Notice::*;
        let pid_or_nothing =
            |p: &Option<i32>| p.map_or("nothing".to_owned(), |p| format!("pid {p}"));
        match self {
            Started { worker, pid, restarts } => {
                write!(f, "worker {worker} started, pid {pid}")?;
                if *restarts > 0 {
                    write!(f, " (restart {restarts})")?;
                }
                Ok(())
            }
            Ready { worker, pid, after } => {
                write!(f, "worker {worker} (pid {pid}) ready after {}", human(*after))
            }
            NotReady { worker, pid, after } => write!(
                f,
                "worker {worker} (pid {pid}) not ready after {}; killing it",
                human(*after)
            ),
            Exited { worker, pid, reason, uptime } => {
                write!(f, "worker {worker} (pid {pid}) {reason} after {}", human(*uptime))
            }
            Restarting { worker, pid, reason, uptime, delay, in_a_row, limit } => {
                write!(
                    f,
                    "worker {worker} (pid {pid}) {reason} after {}; restarting in {}",
                    human(*uptime),
                    human(*delay)
                )?;
                if *in_a_row > 0 {
                    write!(f, ", crash {in_a_row} in a row (limit {limit})")?;
                }
                Ok(())
            }
            RespawnLimit { worker, pid, reason, failures, ready, window, limit } => {
                let each = if *ready {
                    format!("each within {} of being ready", human(*window))
                } else {
                    format!("each before it was ready or within {} of it", human(*window))
                };
                write!(
                    f,
                    "worker {worker} failed {failures} times in a row, {each} (last: pid {pid} {reason}); \
                     respawn limit {limit} reached, giving up"
                )
            }
            CannotRun { worker, pid, reason } => write!(
                f,
                "worker {worker} (pid {pid}) {reason} before any worker was ready: the command cannot run as given \
                 (126: not executable, or an exec refused; 127: not found); not restarting it"
            ),
            SpawnFailed { worker, message, .. } => write!(f, "worker {worker}: {message}"),
            StopRequested { signal, workers, grace } => write!(
                f,
                "received {}: stopping {workers} worker(s), grace period {}",
                signal.as_str(),
                human(*grace)
            ),
            Stopped { worker, pid, reason } => write!(f, "worker {worker} (pid {pid}) stopped: {reason}"),
            FailedWhileStopping { worker, pid, reason } => {
                write!(f, "worker {worker} (pid {pid}) {reason} while stopping")
            }
            KilledAfterGrace { worker, pid, grace, signal } => write!(
                f,
                "worker {worker} (pid {pid}) still running {} after {}; sending SIGKILL",
                human(*grace),
                signal.as_str()
            ),
            AllStopped { code } => write!(f, "all workers stopped; exiting with code {code}"),
            ReloadStarted { workers, parallel } => {
                write!(f, "rolling reload of {workers} worker(s), {parallel} at a time")
            }
            Refreshing { workers, parallel } => write!(
                f,
                "the new plan changes the workers' environment: replacing {workers} worker(s) started under the old one, {parallel} at a time, as in a rolling reload"
            ),
            ReloadQueued => f.write_str("reload requested during a reload: one more round follows this one"),
            ReloadSkipped { worker } => write!(
                f,
                "worker {worker} is not running and ready: it gets the new code when it starts"
            ),
            ReloadComplete { replaced } => write!(f, "reload complete: {replaced} worker(s) replaced"),
            ReloadCancelled => f.write_str("reload cancelled by the stop"),
            ReloadAborted { worker, kept, replaced } => write!(
                f,
                "reload aborted: worker {worker}'s replacement failed; worker {worker} keeps {} \
                 ({replaced} worker(s) were replaced before; the rest keep running the old code)",
                pid_or_nothing(kept)
            ),
            ReplacementFailed { worker, kept } => {
                write!(f, "worker {worker} keeps {}", pid_or_nothing(kept))
            }
            ReplacementStarting { worker, old, why } => write!(
                f,
                "worker {worker}: starting a replacement for pid {old} ({})",
                why.as_str()
            ),
            ReplacementStarted { worker, pid, why } => write!(
                f,
                "worker {worker}: replacement started, pid {pid} ({})",
                why.as_str()
            ),
            ReplacementReady { worker, pid, after, old, why } => write!(
                f,
                "worker {worker}: replacement pid {pid} ready after {}; routed in place of pid {old}, which is told to stop ({})",
                human(*after),
                why.as_str()
            ),
            ReplacementNotReady { worker, pid, after } => write!(
                f,
                "worker {worker}: replacement pid {pid} not ready after {}; killing it",
                human(*after)
            ),
            ReplacementExited { worker, pid, reason } => {
                write!(f, "worker {worker}: replacement pid {pid} {reason} before it was ready")
            }
            ReplacementSpawnFailed { worker, message } => {
                write!(f, "worker {worker}: cannot start a replacement: {message}")
            }
            ExitedWhileReplaced { worker, pid, reason, why } => write!(
                f,
                "worker {worker} (pid {pid}) {reason} while being replaced ({}); its replacement takes over",
                why.as_str()
            ),
            StoppingToRestart { worker, pid, why } => write!(
                f,
                "worker {worker}: stopping pid {pid} to start it again ({})",
                why.as_str()
            ),
            RestartedInPlace { worker, pid, reason, why } => write!(
                f,
                "worker {worker} (pid {pid}) stopped: {reason}; starting it again ({})",
                why.as_str()
            ),
            InPlaceKilled { worker, pid, grace } => write!(
                f,
                "worker {worker} (pid {pid}) still running {} after SIGTERM; sending SIGKILL",
                human(*grace)
            ),
            RetiredStopped { worker, pid, reason } => {
                write!(f, "worker {worker} old pid {pid} stopped: {reason}")
            }
            RetiredKilled { worker, pid, grace } => write!(
                f,
                "worker {worker} old pid {pid} still running {} after SIGTERM; sending SIGKILL",
                human(*grace)
            ),
            Scaling { from, to } => write!(f, "scaling from {from} to {to} worker(s)"),
            ScaledAway { worker, pid } => write!(f, "worker {worker} (pid {pid}) scaled away: stopping it"),
            Unresponsive { worker, pid, failures } => write!(
                f,
                "worker {worker} (pid {pid}) failed {failures} liveness probes in a row: replacing it"
            ),
            AboveCeiling { worker, pid, rss_bytes, limit_bytes } => write!(
                f,
                "worker {worker} (pid {pid}) uses {} MiB, above its ceiling of {} MiB: restarting it gracefully",
                rss_bytes / (1024 * 1024),
                limit_bytes / (1024 * 1024)
            ),
        }
    }
}

/// The notice's fields for a JSON log line (`event`, `worker`, `pid`,
/// `reason`, `*_ms`...), without the sentence.
pub fn fields(notice: &Notice) -> Map<String, Value> {
    match serde_json::to_value(notice) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use super::*;
    use crate::exit::ExitReason;
    use crate::supervise::machine::Restart;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The sentences corefit printed before notices were typed, exactly.
    #[test]
    fn renders_the_same_sentences() {
        let cases = [
            (Notice::Started { worker: 1, pid: 200, restarts: 1 }, "worker 1 started, pid 200 (restart 1)"),
            (Notice::Started { worker: 0, pid: 7, restarts: 0 }, "worker 0 started, pid 7"),
            (Notice::Ready { worker: 0, pid: 7, after: ms(200) }, "worker 0 (pid 7) ready after 200ms"),
            (Notice::NotReady { worker: 0, pid: 7, after: ms(5000) }, "worker 0 (pid 7) not ready after 5s; killing it"),
            (
                Notice::Restarting {
                    worker: 1,
                    pid: 101,
                    reason: ExitReason::Signal(9),
                    uptime: ms(10_000),
                    delay: Duration::ZERO,
                    in_a_row: 0,
                    limit: 3,
                },
                "worker 1 (pid 101) was killed by signal 9 (SIGKILL) after 10s; restarting in 0ms",
            ),
            (
                Notice::Restarting {
                    worker: 0,
                    pid: 7,
                    reason: ExitReason::Code(1),
                    uptime: ms(100),
                    delay: ms(100),
                    in_a_row: 1,
                    limit: 3,
                },
                "worker 0 (pid 7) exited with code 1 after 100ms; restarting in 100ms, crash 1 in a row (limit 3)",
            ),
            (
                Notice::RespawnLimit {
                    worker: 1,
                    pid: 4101,
                    reason: ExitReason::Code(3),
                    failures: 4,
                    ready: true,
                    window: ms(10_000),
                    limit: 3,
                },
                "worker 1 failed 4 times in a row, each within 10s of being ready (last: pid 4101 exited with code 3); respawn limit 3 reached, giving up",
            ),
            (
                Notice::StopRequested { signal: Signal::SIGTERM, workers: 2, grace: ms(25_000) },
                "received SIGTERM: stopping 2 worker(s), grace period 25s",
            ),
            (
                Notice::KilledAfterGrace { worker: 1, pid: 101, grace: ms(25_000), signal: Signal::SIGINT },
                "worker 1 (pid 101) still running 25s after SIGINT; sending SIGKILL",
            ),
            (Notice::AllStopped { code: 0 }, "all workers stopped; exiting with code 0"),
            (Notice::ReloadComplete { replaced: 2 }, "reload complete: 2 worker(s) replaced"),
            (
                Notice::ReloadAborted { worker: 0, kept: Some(100), replaced: 0 },
                "reload aborted: worker 0's replacement failed; worker 0 keeps pid 100 (0 worker(s) were replaced before; the rest keep running the old code)",
            ),
            (Notice::ReplacementFailed { worker: 2, kept: None }, "worker 2 keeps nothing"),
            (
                Notice::ReplacementReady { worker: 0, pid: 200, after: ms(1500), old: 100, why: Restart::Reload },
                "worker 0: replacement pid 200 ready after 1.5s; routed in place of pid 100, which is told to stop (reload)",
            ),
            (
                Notice::RetiredKilled { worker: 0, pid: 100, grace: ms(25_000) },
                "worker 0 old pid 100 still running 25s after SIGTERM; sending SIGKILL",
            ),
            (
                Notice::AboveCeiling { worker: 1, pid: 101, rss_bytes: 300 << 20, limit_bytes: 256 << 20 },
                "worker 1 (pid 101) uses 300 MiB, above its ceiling of 256 MiB: restarting it gracefully",
            ),
            (
                Notice::Unresponsive { worker: 1, pid: 101, failures: 3 },
                "worker 1 (pid 101) failed 3 liveness probes in a row: replacing it",
            ),
        ];
        for (notice, text) in cases {
            assert_eq!(notice.to_string(), text);
        }
    }

    #[test]
    fn json_fields_carry_ids_reasons_and_milliseconds() {
        let f = fields(&Notice::Restarting {
            worker: 1,
            pid: 101,
            reason: ExitReason::Signal(9),
            uptime: ms(10_000),
            delay: ms(200),
            in_a_row: 2,
            limit: 3,
        });
        assert_eq!(f["event"], "restarting");
        assert_eq!(f["worker"], 1);
        assert_eq!(f["pid"], 101);
        assert_eq!(f["reason"]["signal"], 9);
        assert_eq!(f["uptime_ms"], 10_000);
        assert_eq!(f["delay_ms"], 200);
        assert_eq!(f["in_a_row"], 2);
        let f = fields(&Notice::StopRequested {
            signal: Signal::SIGINT,
            workers: 2,
            grace: ms(500),
        });
        assert_eq!(f["signal"], "SIGINT");
        assert_eq!(f["grace_ms"], 500);
        assert_eq!(fields(&Notice::ReloadQueued)["event"], "reload_queued");
    }
}
