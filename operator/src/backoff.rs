//! Per-object requeue backoff for failed reconciles (kube-runtime has none
//! built in): the delay doubles with each consecutive failure of the same
//! object, up to a ceiling, and a success forgets the object. Plain data:
//! no clock, so tests drive it directly.
//!
//! And the backoff of the watch streams feeding the controller
//! ([`WatchBackoff`], [`NoTriggerBackoff`]): each stream paces its own
//! retries, briefly, and the controller adds none on top. With
//! kube-runtime's defaults, an apiserver stopped for 20 s left the operator
//! deaf to every watch event for one to two minutes after it was back
//! (operator/tests/faults.rs): the controller's trigger backoff is one
//! client-go-style backoff (0.8 s doubling to 30 s, jittered up to twice
//! that) shared by all its watch streams, so every error of any stream
//! doubled one delay during which no event reached a reconcile.

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

/// The retry delay of one watch stream after an error: `base` doubling to
/// `max`, back to `base` once the stream yields an event again (kube's
/// `StreamBackoff` resets it). The defaults, 0.5 s to 5 s, keep the
/// operator at most 5 s behind an apiserver that comes back; its three
/// watches retrying every 5 s during an outage cost the apiserver nothing
/// (client-go's 30 s ceiling protects it from thousands of kubelets).
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    base: Duration,
    max: Duration,
    next: Duration,
}

impl WatchBackoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        WatchBackoff {
            base,
            max,
            next: base.min(max),
        }
    }
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff::new(Duration::from_millis(500), Duration::from_secs(5))
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = now.saturating_mul(2).min(self.max);
        Some(now)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = self.base.min(self.max);
    }
}

/// The controller's own backoff over its merged watch streams: none. Each
/// stream already waits with its [`WatchBackoff`]; a shared one on top
/// would stop every stream for the sum of all their errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTriggerBackoff;

impl Iterator for NoTriggerBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for NoTriggerBackoff {
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use kube::runtime::utils::{Backoff as _, StreamBackoff};

    #[test]
    fn watch_backoff_doubles_to_its_ceiling_and_resets() {
        let mut b = WatchBackoff::default();
        let got: Vec<u128> = b.by_ref().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(500)));
    }

    /// Errors of several watch streams, merged as the controller merges
    /// them: with [`NoTriggerBackoff`] every item passes at once (the
    /// streams pace themselves); with a shared exponential backoff (kube's
    /// default) the errors alone stall the merged stream for seconds, and
    /// an event that arrives after them waits just as long.
    #[tokio::test(start_paused = true)]
    async fn the_merged_trigger_stream_is_not_delayed_by_errors() {
        fn merged() -> impl futures::Stream<Item = Result<u32, &'static str>> + Unpin {
            futures::stream::iter([Err("a"), Err("b"), Err("c"), Err("a"), Err("b"), Ok(1)])
        }
        let start = tokio::time::Instant::now();
        let items: Vec<_> = StreamBackoff::new(merged(), NoTriggerBackoff)
            .collect()
            .await;
        assert_eq!(items.len(), 6);
        assert_eq!(items[5], Ok(1));
        assert_eq!(start.elapsed(), Duration::ZERO, "no delay of its own");

        let start = tokio::time::Instant::now();
        let items: Vec<_> = StreamBackoff::new(
            merged(),
            WatchBackoff::new(Duration::from_millis(800), Duration::from_secs(30)),
        )
        .collect()
        .await;
        assert_eq!(items.len(), 6);
        // 0.8 + 1.6 + 3.2 + 6.4 + 12.8 s before the event got through.
        assert_eq!(start.elapsed(), Duration::from_millis(24_800));
    }

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
