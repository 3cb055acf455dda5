//! Rate-limited warnings: a Redis outage produces one line per interval, not one per call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const INTERVAL_MS: u64 = 10_000;

#[derive(Debug)]
pub(crate) struct RateLimited {
    epoch: Instant,
    /// ms since epoch + 1 of the last emitted line (0 = never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimited {
    pub(crate) fn new() -> Self {
        RateLimited {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Calls `emit(suppressed_count)` at most once per interval.
    pub(crate) fn hit(&self, emit: impl FnOnce(u64)) {
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < INTERVAL_MS {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            emit(self.suppressed.swap(0, Ordering::Relaxed));
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval() {
        let r = RateLimited::new();
        let mut lines = Vec::new();
        for _ in 0..100 {
            r.hit(|s| lines.push(s));
        }
        assert_eq!(lines, vec![0]);
        assert_eq!(r.suppressed.load(Ordering::Relaxed), 99);
    }
}
