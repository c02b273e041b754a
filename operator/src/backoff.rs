//! Per-object requeue backoff for failed reconciles (kube-runtime has none
//! built in): the delay doubles with each consecutive failure of the same
//! object, up to a ceiling, and a success forgets the object. Plain data:
//! no clock, so tests drive it directly.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// Consecutive failures per key.
#[derive(Debug, Clone)]
pub struct Backoff<K> {
    base: Duration,
    max: Duration,
    failures: HashMap<K, u32>,
}

impl<K: Eq + Hash> Backoff<K> {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            failures: HashMap::new(),
        }
    }

    /// Records a failure of `key`; returns how long to wait before retrying.
    pub fn fail(&mut self, key: K) -> Duration {
        let n = self.failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        delay(self.base, self.max, *n)
    }

    /// Records a success: the next failure starts from `base` again.
    pub fn succeed(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// Consecutive failures of `key` so far.
    pub fn failures(&self, key: &K) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }
}

/// base * 2^(n-1), at most `max`.
pub fn delay(base: Duration, max: Duration, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    base.checked_mul(1u32 << exp).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets_per_key() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let got: Vec<_> = (0..8).map(|_| b.fail("a").as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.fail("b"), Duration::from_secs(1), "keys are independent");
        b.succeed(&"a");
        assert_eq!(b.failures(&"a"), 0);
        assert_eq!(b.fail("a"), Duration::from_secs(1));
        assert_eq!(b.failures(&"b"), 1);
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let max = Duration::from_secs(300);
        assert_eq!(delay(Duration::from_secs(1), max, u32::MAX), max);
    }
}
