//! Outcome counters: the striped atomics each function counts in ([`Counters`]), their snapshot
//! [`Stats`], and the per-function entries of [`stats`](crate::stats()) ([`FunctionStats`],
//! [`StatsTable`]). Who counts what is the spec's business (`spec/count.rs`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Stripes of [`Counters`]: threads spread their increments over them, so that two cores counting
/// hits of one hot function do not fight over one cache line.
const STAT_STRIPES: usize = 4;

/// Outcome counters of one function: relaxed atomics, striped per thread (nothing on the hit path
/// waits for them or shares a cache line with another core's); a snapshot sums the stripes.
#[derive(Debug)]
pub(crate) struct Counters {
    stripes: [Stripe; STAT_STRIPES],
}

impl Counters {
    pub(crate) const fn new() -> Counters {
        Counters {
            stripes: [const { Stripe::new() }; STAT_STRIPES],
        }
    }

    /// This thread's stripe.
    #[inline]
    pub(crate) fn mine(&self) -> &Stripe {
        use std::cell::Cell;
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local! {
            static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        let i = STRIPE
            .try_with(|s| {
                if s.get() == usize::MAX {
                    s.set(NEXT.fetch_add(1, Ordering::Relaxed) % STAT_STRIPES);
                }
                s.get()
            })
            .unwrap_or(0);
        &self.stripes[i]
    }

    /// The counters summed over the stripes.
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            hits: self.sum(|c| &c.hits),
            misses: self.sum(|c| &c.misses),
            bypass: self.sum(|c| &c.bypass),
            errors: self.sum(|c| &c.errors),
            skipped_too_large: self.sum(|c| &c.skipped_too_large),
            skipped_too_deep: self.sum(|c| &c.skipped_too_deep),
            skipped_not_roundtrip: self.sum(|c| &c.skipped_not_roundtrip),
            coalesced: self.sum(|c| &c.coalesced),
            stale: self.sum(|c| &c.stale),
            refreshes: self.sum(|c| &c.refreshes),
            local_hits: self.sum(|c| &c.local_hits),
        }
    }

    fn sum(&self, field: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
        self.stripes
            .iter()
            .map(|c| field(c).load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

/// One stripe of a function's counters, alone on its cache lines.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Stripe {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bypass: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) skipped_too_large: AtomicU64,
    pub(crate) skipped_too_deep: AtomicU64,
    pub(crate) skipped_not_roundtrip: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) local_hits: AtomicU64,
}

impl Stripe {
    const fn new() -> Stripe {
        Stripe {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypass: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            skipped_too_large: AtomicU64::new(0),
            skipped_too_deep: AtomicU64::new(0),
            skipped_not_roundtrip: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            local_hits: AtomicU64::new(0),
        }
    }
}

/// A snapshot of one function's outcome counters (companion `f_stats()`, [`FunctionStats`]).
///
/// Every call ends as exactly one of hit, miss, stale, bypass or error (a call whose body
/// panics never ends, and is not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Served from Redis; the body did not run.
    pub hits: u64,
    /// Not in Redis (or the entry was corrupt); the body ran and the result was offered to Redis.
    pub misses: u64,
    /// Redis was not asked (breaker open, invalid configuration, key not computable); the body ran.
    pub bypass: u64,
    /// Redis failed or timed out on the read; the body ran.
    pub errors: u64,
    /// Results not stored because their encoding exceeded the size limit.
    pub skipped_too_large: u64,
    /// Results not stored because they nest deeper than
    /// [`depth::MAX_DEPTH`](crate::depth::MAX_DEPTH) levels.
    pub skipped_too_deep: u64,
    /// Results not stored because the function's codec cannot encode them, or their encoding
    /// does not decode back to the same value (see the codec section of the guide).
    pub skipped_not_roundtrip: u64,
    /// Hits served by a concurrent identical call's read or body run (single-flight); included
    /// in `hits`.
    pub coalesced: u64,
    /// Served a stale value (within the `stale` window) while a background refresh ran.
    pub stale: u64,
    /// Background refreshes run (stale-while-revalidate and early refresh).
    pub refreshes: u64,
    /// Hits served from the in-process near cache (`local = ...`) without asking Redis;
    /// included in `hits`.
    pub local_hits: u64,
}

impl Stats {
    /// Calls counted: hits + misses + stale + bypass + errors.
    pub fn calls(&self) -> u64 {
        self.hits + self.misses + self.stale + self.bypass + self.errors
    }
    /// Hits divided by calls (0 when there were none).
    pub fn hit_ratio(&self) -> f64 {
        match self.calls() {
            0 => 0.0,
            n => self.hits as f64 / n as f64,
        }
    }
}

/// Outcome counters of one function, as returned by [`stats`](crate::stats()).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionStats {
    /// The function's identity (`module::function`, `module::Type::method`, or its `name`).
    pub function: String,
    /// Its counters.
    pub stats: Stats,
}

/// A table of [`FunctionStats`] for logs.
///
/// ```
/// let table = memo_redis::StatsTable(memo_redis::stats());
/// println!("{table}");
/// ```
#[derive(Debug, Clone)]
pub struct StatsTable(pub Vec<FunctionStats>);

impl fmt::Display for StatsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .0
            .iter()
            .map(|s| s.function.len())
            .chain(std::iter::once("function".len()))
            .max()
            .unwrap_or(8);
        writeln!(
            f,
            "{:<width$}  {:>9}  {:>9}  {:>9}  {:>7}  {:>8}  {:>7}  {:>6}",
            "function", "calls", "hits", "misses", "stale", "bypass", "errors", "hit %"
        )?;
        for s in &self.0 {
            let st = &s.stats;
            writeln!(
                f,
                "{:<width$}  {:>9}  {:>9}  {:>9}  {:>7}  {:>8}  {:>7}  {:>5.1}%",
                s.function,
                st.calls(),
                st.hits,
                st.misses,
                st.stale,
                st.bypass,
                st.errors,
                st.hit_ratio() * 100.0
            )?;
        }
        Ok(())
    }
}
