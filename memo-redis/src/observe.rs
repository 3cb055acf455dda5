//! Observability: the outcome of every call, counted in relaxed atomics (`stats()`), recorded on
//! the call's `tracing` span, and — with the `metrics` feature — reported through the `metrics`
//! facade under stable names:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `memo_redis_calls_total` | counter | `fn`, `outcome` = hit / miss / stale / bypass / error |
//! | `memo_redis_redis_seconds` | histogram | `fn`: time waiting for the read |
//! | `memo_redis_body_seconds` | histogram | `fn`: time the body took when it ran after a read (miss or error) |
//! | `memo_redis_skipped_too_large_total` | counter | `fn` |
//! | `memo_redis_skipped_total` | counter | `fn`, `reason` = too_deep / not_roundtrip (the encode guards, `guard.rs`) |
//! | `memo_redis_breaker_open` | gauge | `url` (redacted): 1 while the breaker is open |
//!
//! Metric handles are resolved once per function, so install the recorder (exporter) before the
//! first cached call.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::memo::{FunctionStats, Spec};

/// How a call ended; every call ends as exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    Hit,
    Miss,
    Stale,
    Bypass,
    Error,
}

impl CallOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Hit => "hit",
            CallOutcome::Miss => "miss",
            CallOutcome::Stale => "stale",
            CallOutcome::Bypass => "bypass",
            CallOutcome::Error => "error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The span every cached call runs in (level TRACE: free when not enabled).
pub(crate) fn call_span(spec: &Spec) -> tracing::Span {
    tracing::trace_span!(
        "memo_redis.call",
        module = spec.module,
        function = spec.name,
        outcome = tracing::field::Empty,
        key = tracing::field::Empty,
    )
}

/// Records a short digest of the key on the span (never the key itself: templates can contain
/// argument values).
pub(crate) fn record_key(span: &tracing::Span, key: &str) {
    if !span.is_disabled() {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(key.as_bytes());
        let mut s = String::with_capacity(16);
        crate::key::push_hex(&mut s, &d[..8]);
        span.record("key", s.as_str());
    }
}

#[cfg(feature = "metrics")]
#[derive(Debug, Default)]
pub(crate) struct FnMetrics {
    calls: [std::sync::OnceLock<metrics::Counter>; 5],
    redis: std::sync::OnceLock<metrics::Histogram>,
    body: std::sync::OnceLock<metrics::Histogram>,
    too_large: std::sync::OnceLock<metrics::Counter>,
}

#[cfg(not(feature = "metrics"))]
#[derive(Debug, Default)]
pub(crate) struct FnMetrics;

impl FnMetrics {
    pub(crate) const fn new() -> FnMetrics {
        #[cfg(feature = "metrics")]
        {
            FnMetrics {
                calls: [const { std::sync::OnceLock::new() }; 5],
                redis: std::sync::OnceLock::new(),
                body: std::sync::OnceLock::new(),
                too_large: std::sync::OnceLock::new(),
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            FnMetrics
        }
    }
}

#[cfg(feature = "metrics")]
fn fn_label(spec: &Spec) -> String {
    // The same name `stats()` reports (includes `Self` for methods, or `name = ...`).
    spec.head
        .get()
        .map(|h| h.identity.clone())
        .unwrap_or_else(|| format!("{}::{}", spec.module, spec.name))
}

impl Spec {
    /// Counts the outcome of one call everywhere it is reported.
    pub(crate) fn count(&self, outcome: CallOutcome) {
        let s = self.stats.mine();
        let counter = match outcome {
            CallOutcome::Hit => &s.hits,
            CallOutcome::Miss => &s.misses,
            CallOutcome::Stale => &s.stale,
            CallOutcome::Bypass => &s.bypass,
            CallOutcome::Error => &s.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::Span::current().record("outcome", outcome.as_str());
        #[cfg(feature = "metrics")]
        self.metrics.calls[outcome.index()]
            .get_or_init(|| {
                metrics::counter!("memo_redis_calls_total", "fn" => fn_label(self), "outcome" => outcome.as_str())
            })
            .increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = outcome.index();
    }

    pub(crate) fn observe_redis(&self, took: Duration) {
        #[cfg(feature = "metrics")]
        self.metrics
            .redis
            .get_or_init(|| metrics::histogram!("memo_redis_redis_seconds", "fn" => fn_label(self)))
            .record(took.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = took;
    }

    pub(crate) fn observe_body(&self, took: Duration) {
        #[cfg(feature = "metrics")]
        self.metrics
            .body
            .get_or_init(|| metrics::histogram!("memo_redis_body_seconds", "fn" => fn_label(self)))
            .record(took.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = took;
    }

    pub(crate) fn count_too_large(&self, size: usize) {
        self.stats
            .mine()
            .skipped_too_large
            .fetch_add(1, Ordering::Relaxed);
        self.warn_limited(
            &format!("{size} bytes"),
            "memo-redis: result larger than max_value_bytes returned but not cached",
        );
        #[cfg(feature = "metrics")]
        self.metrics
            .too_large
            .get_or_init(
                || metrics::counter!("memo_redis_skipped_too_large_total", "fn" => fn_label(self)),
            )
            .increment(1);
    }

    /// A result the encode guards refused (too deep, or not decoding back to itself): counted,
    /// and warned about once per function and kind, naming the function and the remedy.
    pub(crate) fn count_refused(&self, codec: crate::CodecKind, why: &crate::guard::Refusal) {
        use crate::guard::Refusal;
        let mine = self.stats.mine();
        let (counter, bit, kind) = match why {
            Refusal::TooDeep => (&mine.skipped_too_deep, 1u8, "too_deep"),
            Refusal::NotRoundTrip(_) => (&mine.skipped_not_roundtrip, 2u8, "not_roundtrip"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("memo_redis_skipped_total", "fn" => fn_label(self), "reason" => kind)
            .increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = kind;
        if self.refusals_warned.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            return;
        }
        let function = self.identity_for_logs();
        match why {
            Refusal::TooDeep => tracing::warn!(
                function = %function,
                max_depth = crate::depth::MAX_DEPTH,
                "memo-redis: result nested deeper than the codec limit returned but not cached \
                 (warned once per function)"
            ),
            Refusal::NotRoundTrip(_) => tracing::warn!(
                function = %function,
                %codec,
                detail = %why,
                "memo-redis: result does not decode back to the same value with this codec; \
                 returned but not cached (warned once per function). Choose a codec that \
                 represents the type faithfully: a self-describing one (`codec = json` or \
                 `msgpack`) for `skip_serializing_if`, `flatten` and untagged or internally \
                 tagged enums; `bincode` or `postcard` for `Option<Option<T>>` and NaN or \
                 infinite floats"
            ),
        }
    }
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
