//! Circuit breaker around Redis: closed → open after N consecutive failures → one probe after the
//! cooldown → closed again on success.
//!
//! While open, [`Breaker::allow`] is an atomic load plus a clock read: no lock, no allocation, no
//! timer. There is no separate half-open state to get stuck in: when the cooldown has passed, the
//! first caller to move `retry_at` forward (compare-and-swap) is the probe; if the probe is
//! cancelled before it reports, the next probe simply comes one cooldown later.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// State of a breaker, as reported in stats and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Redis is used normally.
    Closed,
    /// Redis failed repeatedly; calls bypass it until a probe succeeds.
    Open,
}

/// One Redis Cluster master's circuit breaker, as [`crate::Cache::breaker_nodes`] and
/// [`crate::Health::nodes`] report it.
///
/// ```no_run
/// # async fn run() {
/// static CACHE: memo_redis::Cache = memo_redis::Cache::from_env();
/// for n in CACHE.breaker_nodes() {
///     println!("{}: {:?}", n.node, n.state); // 10.0.0.7:6379: Open
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeBreaker {
    /// The master's address, `host:port` as the cluster announces it.
    pub node: String,
    /// Its breaker: open, calls whose keys it serves bypass Redis (their bodies run).
    pub state: BreakerState,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    epoch: Instant,
    threshold: u32,
    cooldown_ms: u64,
    failures: AtomicU32,
    open: AtomicBool,
    /// ms since `epoch` at which the next probe may go.
    retry_at: AtomicU64,
}

/// What the caller should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Use Redis.
    Yes,
    /// Breaker open: bypass Redis.
    No,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            epoch: Instant::now(),
            threshold: threshold.max(1),
            cooldown_ms: u64::try_from(cooldown.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            failures: AtomicU32::new(0),
            open: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    #[inline]
    pub(crate) fn allow(&self) -> Admit {
        if !self.open.load(Ordering::Acquire) {
            return Admit::Yes;
        }
        let retry_at = self.retry_at.load(Ordering::Acquire);
        let now = self.now_ms();
        if now < retry_at {
            return Admit::No;
        }
        // Cooldown over: exactly one caller wins the right to probe.
        match self.retry_at.compare_exchange(
            retry_at,
            now.saturating_add(self.cooldown_ms),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Admit::Yes,
            Err(_) => Admit::No,
        }
    }

    /// Whether calls should skip Redis right now (open, cooldown not over). No side effect: the
    /// probe itself is claimed by [`Breaker::allow`].
    #[inline]
    pub(crate) fn bypassing(&self) -> bool {
        self.open.load(Ordering::Acquire) && self.now_ms() < self.retry_at.load(Ordering::Acquire)
    }

    pub(crate) fn state(&self) -> BreakerState {
        if self.open.load(Ordering::Acquire) {
            BreakerState::Open
        } else {
            BreakerState::Closed
        }
    }

    /// Returns true if this success closed an open breaker.
    pub(crate) fn success(&self) -> bool {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        self.open.load(Ordering::Acquire) && self.open.swap(false, Ordering::AcqRel)
    }

    /// Opens the breaker now, whatever the count; true if it was closed.
    pub(crate) fn trip(&self) -> bool {
        self.failures.store(self.threshold, Ordering::Release);
        self.retry_at.store(
            self.now_ms().saturating_add(self.cooldown_ms),
            Ordering::Release,
        );
        !self.open.swap(true, Ordering::AcqRel)
    }

    /// Returns true if this failure opened the breaker.
    pub(crate) fn failure(&self) -> bool {
        let n = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if n >= self.threshold {
            self.retry_at.store(
                self.now_ms().saturating_add(self.cooldown_ms),
                Ordering::Release,
            );
            return !self.open.swap(true, Ordering::AcqRel);
        }
        false
    }
}

/// Reports a breaker transition on the `memo_redis_breaker_open` gauge (see `observe.rs` for
/// the metric table), labelled with the Redis URL, redacted by the caller.
pub(crate) fn gauge(url: &str, open: bool) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("memo_redis_breaker_open", "url" => url.to_string()).set(if open {
        1.0
    } else {
        0.0
    });
    #[cfg(not(feature = "metrics"))]
    let _ = (url, open);
}

/// Reports a cluster master's breaker transition on `memo_redis_breaker_open` labelled with the
/// cache's (redacted) URL and the master's `host:port`.
pub(crate) fn node_gauge(url: &str, node: &str, open: bool) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("memo_redis_breaker_open", "url" => url.to_string(), "node" => node.to_string())
        .set(if open { 1.0 } else { 0.0 });
    #[cfg(not(feature = "metrics"))]
    let _ = (url, node, open);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once_per_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(20));
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.failure(), "third failure opens");
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.allow(), Admit::No);
        // Wait for the cooldown by polling the clock the breaker itself uses.
        while b.now_ms() < b.retry_at.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        assert_eq!(b.allow(), Admit::Yes, "one probe");
        assert_eq!(b.allow(), Admit::No, "only one probe");
        assert!(b.success(), "probe success closes");
        assert_eq!(b.allow(), Admit::Yes);
        assert!(!b.success());
    }

    #[test]
    fn trip_opens_at_once_and_reports_only_the_first_time() {
        let b = Breaker::new(5, Duration::from_secs(60));
        assert!(b.trip(), "the trip opened it");
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.bypassing());
        assert_eq!(b.allow(), Admit::No);
        assert!(!b.trip(), "already open: nothing to report");
        assert!(!b.failure(), "already open: nothing to report");
    }

    #[test]
    fn bypassing_lasts_the_cooldown_of_an_open_breaker_only() {
        let b = Breaker::new(1, Duration::from_millis(20));
        assert!(!b.bypassing(), "closed");
        assert!(b.failure());
        assert!(b.bypassing(), "open, cooldown running");
        while b.now_ms() < b.retry_at.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        assert!(
            !b.bypassing(),
            "cooldown over: calls go to Redis (one probes)"
        );

        // Closed again by a success while the next probe time is still far ahead.
        let b = Breaker::new(1, Duration::from_secs(60));
        assert!(b.trip());
        assert!(b.success(), "the success closed it");
        assert!(
            !b.bypassing(),
            "closed: never bypassing, whatever retry_at says"
        );
        assert_eq!(b.allow(), Admit::Yes);
    }

    #[test]
    fn the_probe_may_go_in_the_millisecond_the_cooldown_ends() {
        let b = Breaker::new(1, Duration::from_secs(60));
        assert!(b.trip());
        // Retry until the checks ran within the millisecond `retry_at` names (almost always the
        // first attempt); a tick between them proves nothing either way.
        loop {
            let now = b.now_ms();
            b.retry_at.store(now, Ordering::Release);
            let bypassing = b.bypassing();
            let admitted = b.allow();
            if b.now_ms() == now {
                assert!(!bypassing, "not bypassing at retry_at");
                assert_eq!(admitted, Admit::Yes, "the probe goes at retry_at");
                break;
            }
        }
    }

    #[test]
    fn success_resets_consecutive_count() {
        let b = Breaker::new(2, Duration::from_secs(1));
        b.failure();
        b.success();
        assert!(!b.failure());
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
