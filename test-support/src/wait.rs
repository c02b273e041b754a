//! Polling a condition with a deadline: a test bug or a regression fails
//! with what was awaited, never hangs.

use std::time::{Duration, Instant};

/// Polls `cond` every 10 ms until it yields `Some` or `limit` passes
/// (then panics naming `what`).
pub fn wait_for<T>(limit: Duration, what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
