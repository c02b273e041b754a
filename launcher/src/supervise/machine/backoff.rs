//! The restart rule, pure: how one crash of a worker counts (crashes in a
//! row, reset only by a run as long as the *window*) and how long corefit
//! waits before the restart (immediate after a stable run, then doubling).
//!
//! With `m` = `--min-uptime`, the window `w` = [`WINDOW_FACTOR`] x `m`
//! (10 s by default) and "up" measured from the worker's readiness (its
//! start when no readiness check applies):
//!
//! - a crash of a worker that was never ready, or up less than `w`, counts:
//!   one more crash in a row; up `w` or longer, the count starts again at 0
//!   (the crash does not count);
//! - more than `--respawn-limit` crashes in a row end the run;
//! - the delay is `--backoff` x 2^(n-1) for the n-th crash in a row (capped
//!   at `--backoff-max`), one step less after a *stable* run (ready and up
//!   at least `m`): so a worker that ran stably restarts at once the first
//!   time, and a worker that crashes again and again, however long after
//!   its start, backs off and reaches the limit.

use std::time::Duration;

/// The window, in multiples of `--min-uptime`: a worker up this long after
/// its readiness is forgiven its earlier crashes (as systemd's default
/// start-limit interval of 10 s, with the default `--min-uptime` of 1 s).
pub const WINDOW_FACTOR: u32 = 10;

/// `initial * 2^(n-1)`, capped at `max`, for step n; no delay at step 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay at backoff step `step` (0: none).
    pub fn delay(&self, step: u32) -> Duration {
        if step == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (step - 1).min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// How one crash counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    /// Crashes in a row, this one included (0: it came after a run as long
    /// as the window, and does not count).
    pub in_a_row: u32,
    /// The wait before the restart.
    pub delay: Duration,
    /// The worker was ready and up at least `--min-uptime`.
    pub stable: bool,
}

/// The window for `min_uptime`.
pub fn window(min_uptime: Duration) -> Duration {
    min_uptime.saturating_mul(WINDOW_FACTOR)
}

/// Judges a crash: `up` is how long the process had been up since it was
/// ready (`None`: never ready), `before` the crashes in a row before it.
pub fn judge(min_uptime: Duration, backoff: Backoff, up: Option<Duration>, before: u32) -> Crash {
    let stable = up.is_some_and(|u| u >= min_uptime);
    let in_a_row = match up {
        Some(u) if u >= window(min_uptime) => 0,
        _ => before.saturating_add(1),
    };
    let step = if stable {
        in_a_row.saturating_sub(1)
    } else {
        in_a_row
    };
    Crash {
        in_a_row,
        delay: backoff.delay(step),
        stable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const B: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
    };

    #[test]
    fn doubles_then_caps_and_never_overflows() {
        assert_eq!(B.delay(0), Duration::ZERO);
        assert_eq!(B.delay(1), ms(100));
        assert_eq!(B.delay(2), ms(200));
        assert_eq!(B.delay(4), ms(800));
        assert_eq!(B.delay(7), Duration::from_secs(5));
        assert_eq!(B.delay(u32::MAX), Duration::from_secs(5));
    }

    /// (up since ready, crashes in a row before) -> (in a row, delay).
    #[test]
    fn each_kind_of_crash() {
        let m = ms(1000);
        for (up, before, in_a_row, delay, why) in [
            (Some(600_000), 0, 0, 0, "up minutes: at once, not counted"),
            (Some(10_000), 7, 0, 0, "up the whole window: reset"),
            (Some(5_000), 0, 1, 0, "stable, first in a row: at once"),
            (Some(2_000), 1, 2, 100, "stable, again within the window"),
            (Some(2_000), 3, 4, 400, "a loop of stable-looking runs"),
            (Some(999), 0, 1, 100, "up less than min-uptime"),
            (None, 0, 1, 100, "never ready"),
            (None, 2, 3, 400, "never ready, third in a row"),
        ] {
            let c = judge(m, B, up.map(ms), before);
            assert_eq!((c.in_a_row, c.delay), (in_a_row, ms(delay)), "{why}");
        }
    }

    #[test]
    fn window_is_ten_min_uptimes_and_saturates() {
        assert_eq!(window(ms(1000)), ms(10_000));
        assert_eq!(window(Duration::MAX), Duration::MAX);
        // --min-uptime 0: a crash after readiness never counts.
        let c = judge(Duration::ZERO, B, Some(Duration::ZERO), 5);
        assert_eq!((c.in_a_row, c.delay, c.stable), (0, Duration::ZERO, true));
        assert_eq!(judge(Duration::ZERO, B, None, 5).in_a_row, 6);
    }
}
