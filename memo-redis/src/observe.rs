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
//! | `memo_redis_breaker_open` | gauge | `url` (redacted): 1 while the breaker is open (cluster: every master's); with `node` (`host:port`), on a cluster: 1 while that master's breaker is open |
//!
//! Metric handles are resolved once per function, so install the recorder (exporter) before the
//! first cached call. This module knows functions only by their label (the `fn` label, the
//! span's `module` and `function`): the spec (`spec/count.rs`) decides what is counted.

use std::time::Duration;

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

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn index(self) -> usize {
        self as usize
    }
}

/// The span every cached call of `module::function` runs in (level TRACE: free when not
/// enabled).
pub(crate) fn call_span(module: &'static str, function: &'static str) -> tracing::Span {
    tracing::trace_span!(
        "memo_redis.call",
        module,
        function,
        outcome = tracing::field::Empty,
        key = tracing::field::Empty,
    )
}

/// Records a call's outcome on the current span.
pub(crate) fn record_outcome(outcome: CallOutcome) {
    tracing::Span::current().record("outcome", outcome.as_str());
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

/// One function's metric handles, each registered on first use under the `fn` label `label()`
/// returns (the name `stats()` reports).
#[cfg(feature = "metrics")]
#[derive(Debug, Default)]
pub(crate) struct FnMetrics {
    calls: [std::sync::OnceLock<metrics::Counter>; 5],
    redis: std::sync::OnceLock<metrics::Histogram>,
    body: std::sync::OnceLock<metrics::Histogram>,
    too_large: std::sync::OnceLock<metrics::Counter>,
}

/// Without the `metrics` feature: nothing.
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

    /// `memo_redis_calls_total{fn, outcome}`.
    pub(crate) fn call(&self, outcome: CallOutcome, label: impl FnOnce() -> String) {
        #[cfg(feature = "metrics")]
        self.calls[outcome.index()]
            .get_or_init(|| {
                metrics::counter!("memo_redis_calls_total", "fn" => label(), "outcome" => outcome.as_str())
            })
            .increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = (outcome, label);
    }

    /// `memo_redis_redis_seconds{fn}`.
    pub(crate) fn redis(&self, took: Duration, label: impl FnOnce() -> String) {
        #[cfg(feature = "metrics")]
        self.redis
            .get_or_init(|| metrics::histogram!("memo_redis_redis_seconds", "fn" => label()))
            .record(took.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = (took, label);
    }

    /// `memo_redis_body_seconds{fn}`.
    pub(crate) fn body(&self, took: Duration, label: impl FnOnce() -> String) {
        #[cfg(feature = "metrics")]
        self.body
            .get_or_init(|| metrics::histogram!("memo_redis_body_seconds", "fn" => label()))
            .record(took.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = (took, label);
    }

    /// `memo_redis_skipped_too_large_total{fn}`.
    pub(crate) fn too_large(&self, label: impl FnOnce() -> String) {
        #[cfg(feature = "metrics")]
        self.too_large
            .get_or_init(
                || metrics::counter!("memo_redis_skipped_too_large_total", "fn" => label()),
            )
            .increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = label;
    }

    /// `memo_redis_skipped_total{fn, reason}` (rare: not cached).
    pub(crate) fn refused(&self, reason: &'static str, label: impl FnOnce() -> String) {
        #[cfg(feature = "metrics")]
        metrics::counter!("memo_redis_skipped_total", "fn" => label(), "reason" => reason)
            .increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = (reason, label);
    }
}
