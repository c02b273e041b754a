//! Restart delays: exponential in the number of unstable restarts in a row.

use std::time::Duration;

/// `initial * 2^(n-1)`, capped at `max`, for the n-th unstable restart in a
/// row; no delay after a worker that had been up long enough (n = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before restart number `unstable_in_a_row`.
    pub fn delay(&self, unstable_in_a_row: u32) -> Duration {
        if unstable_in_a_row == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (unstable_in_a_row - 1).min(20);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_and_never_overflows() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        assert_eq!(b.delay(0), Duration::ZERO);
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(7), Duration::from_secs(5));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(5));
    }
}
