//! CFS throttling over a window, and the warning it earns: corefit samples
//! its cgroup's `cpu.stat` (see `probe::cgroup_stats`) with the workers'
//! memory; when more than [`WARN_PERCENT`] % of the enforcement periods
//! over the last [`WINDOW`] were throttled (at least [`MIN_PERIODS`] of
//! them), it warns once, and not again until the share has fallen below
//! [`CLEAR_PERCENT`] % (the episode ended). Pure: samples in, findings out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::plan::decide::cpus_phrase;
use crate::probe::cgroup_stats::{CgroupStats, Throttling};

/// Share of periods throttled above which an episode starts.
pub const WARN_PERCENT: f64 = 20.0;

/// Share below which the episode is over.
pub const CLEAR_PERCENT: f64 = 10.0;

/// How far back the share is measured.
pub const WINDOW: Duration = Duration::from_secs(30);

/// Fewer periods than this in the window say nothing (an idle app).
pub const MIN_PERIODS: u64 = 10;

/// What `/metrics`, `/health` and `corefit status` show of the cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupSnapshot {
    #[serde(flatten)]
    pub stats: CgroupStats,
    /// Percent of the periods over the window that were throttled, when
    /// the window holds enough of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_percent: Option<f64>,
    /// Throttling episodes warned about since corefit started.
    #[serde(default)]
    pub throttling_episodes: u64,
}

/// The window's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub periods: u64,
    pub throttled: u64,
    pub throttled_seconds: f64,
    pub span: Duration,
}

impl Window {
    pub fn percent(&self) -> f64 {
        if self.periods == 0 {
            0.0
        } else {
            self.throttled as f64 * 100.0 / self.periods as f64
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Point {
    at: Instant,
    periods: u64,
    throttled: u64,
    seconds: f64,
}

/// The samples of the window and whether an episode is on.
#[derive(Debug, Default)]
pub struct ThrottleWatch {
    points: VecDeque<Point>,
    in_episode: bool,
    episodes: u64,
}

impl ThrottleWatch {
    /// Adds a sample; `Some(window)` when it starts an episode.
    pub fn observe(&mut self, now: Instant, t: &Throttling) -> Option<Window> {
        if self
            .points
            .back()
            .is_some_and(|p| t.periods < p.periods || t.throttled_periods < p.throttled)
        {
            // Counters went back: another cgroup, start over.
            self.points.clear();
        }
        self.points.push_back(Point {
            at: now,
            periods: t.periods,
            throttled: t.throttled_periods,
            seconds: t.throttled_seconds,
        });
        while self.points.len() > 1
            && self
                .points
                .front()
                .is_some_and(|p| now.saturating_duration_since(p.at) > WINDOW)
        {
            self.points.pop_front();
        }
        let w = self.window()?;
        let percent = w.percent();
        if !self.in_episode && percent > WARN_PERCENT {
            self.in_episode = true;
            self.episodes += 1;
            return Some(w);
        }
        if self.in_episode && percent < CLEAR_PERCENT {
            self.in_episode = false;
        }
        None
    }

    /// The window's figures, when it holds [`MIN_PERIODS`] periods.
    pub fn window(&self) -> Option<Window> {
        let (first, last) = (self.points.front()?, self.points.back()?);
        let periods = last.periods - first.periods;
        (periods >= MIN_PERIODS).then(|| Window {
            periods,
            throttled: last.throttled - first.throttled,
            throttled_seconds: (last.seconds - first.seconds).max(0.0),
            span: last.at.saturating_duration_since(first.at),
        })
    }

    pub fn episodes(&self) -> u64 {
        self.episodes
    }
}

/// The warning for an episode: what, where, the likely cause and what to
/// change.
pub fn warning(w: &Window, file: &str, workers: u32, cpus: f64) -> String {
    format!(
        "CPU throttled in {:.0}% of {} CFS periods over the last {:.1}s ({:.2}s waiting; {file}): \
         more threads are runnable than the CPU quota of {} allows ({workers} worker{}); \
         run fewer workers or fewer threads per worker (GOMAXPROCS, UV_THREADPOOL_SIZE, \
         a thread or process pool size), or raise the CPU limit",
        w.percent(),
        w.periods,
        w.span.as_secs_f64(),
        w.throttled_seconds,
        cpus_phrase(cpus),
        if workers == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(periods: u64, throttled: u64) -> Throttling {
        Throttling {
            periods,
            throttled_periods: throttled,
            throttled_seconds: throttled as f64 * 0.05,
            file: "cpu.stat".into(),
        }
    }

    #[test]
    fn warns_once_per_episode() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut w = ThrottleWatch::default();
        assert_eq!(w.observe(s(0), &t(0, 0)), None);
        // 5 periods: too few to say anything.
        assert_eq!(w.observe(s(1), &t(5, 5)), None);
        let first = w.observe(s(2), &t(20, 18)).expect("an episode starts");
        assert_eq!((first.periods, first.throttled), (20, 18));
        assert_eq!(first.percent(), 90.0);
        // Still throttled: no second warning.
        assert_eq!(w.observe(s(3), &t(30, 28)), None);
        assert_eq!(w.observe(s(4), &t(40, 38)), None);
        assert_eq!(w.episodes(), 1);
        // Throttling stops; after the window slides past it, it clears...
        for n in 5..40 {
            assert_eq!(w.observe(s(n), &t(40 + 10 * (n - 4), 38)), None, "{n}");
        }
        // ...and a new episode warns again.
        assert!(w.observe(s(40), &t(400, 300)).is_some());
        assert_eq!(w.episodes(), 2);
    }

    #[test]
    fn unthrottled_or_idle_never_warns() {
        let t0 = Instant::now();
        let mut w = ThrottleWatch::default();
        for n in 0..50 {
            let at = t0 + Duration::from_millis(200 * n);
            assert_eq!(w.observe(at, &t(n * 10, n)), None);
        }
        assert!(w.window().unwrap().percent() < WARN_PERCENT);
        let mut idle = ThrottleWatch::default();
        assert_eq!(idle.observe(t0, &t(0, 0)), None);
        assert_eq!(idle.observe(t0, &t(3, 3)), None);
    }

    #[test]
    fn counters_going_back_start_over() {
        let t0 = Instant::now();
        let mut w = ThrottleWatch::default();
        w.observe(t0, &t(1000, 0));
        assert_eq!(w.observe(t0, &t(5, 5)), None);
        assert_eq!(w.window(), None);
    }

    #[test]
    fn the_warning_names_cause_and_cure() {
        let w = Window {
            periods: 25,
            throttled: 23,
            throttled_seconds: 1.8,
            span: Duration::from_millis(2500),
        };
        let text = warning(&w, "/sys/fs/cgroup/cpu/x/cpu.stat", 1, 1.0);
        assert!(text.starts_with("CPU throttled in 92% of 25 CFS periods over the last 2.5s"));
        assert!(text.contains("/sys/fs/cgroup/cpu/x/cpu.stat"));
        assert!(text.contains("CPU quota of 1 CPU allows (1 worker)"));
        assert!(text.contains("run fewer workers or fewer threads"));
    }
}
