//! How a function's spec counts: its counters (`stats()`), the call's span and the metrics, by
//! the function's label.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Spec;
use crate::guard::Refusal;
use crate::observe::{self, CallOutcome};

impl Spec {
    /// The span a call of this function runs in.
    pub(crate) fn call_span(&self) -> tracing::Span {
        observe::call_span(self.module, self.name)
    }

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
        observe::record_outcome(outcome);
        self.metrics.call(outcome, || self.identity_for_logs());
    }

    /// Counts a hit served by the near tier: a hit and a local hit (one stripe lookup).
    #[inline]
    pub(crate) fn count_served_locally(&self) {
        let s = self.stats.mine();
        s.hits.fetch_add(1, Ordering::Relaxed);
        s.local_hits.fetch_add(1, Ordering::Relaxed);
        observe::record_outcome(CallOutcome::Hit);
        self.metrics
            .call(CallOutcome::Hit, || self.identity_for_logs());
    }

    pub(crate) fn observe_redis(&self, took: Duration) {
        self.metrics.redis(took, || self.identity_for_logs());
    }

    pub(crate) fn observe_body(&self, took: Duration) {
        self.metrics.body(took, || self.identity_for_logs());
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
        self.metrics.too_large(|| self.identity_for_logs());
    }

    /// A result the encode guards refused (too deep, or not decoding back to itself): counted,
    /// and warned about once per function and kind, naming the function and the remedy.
    pub(crate) fn count_refused(&self, codec: crate::CodecKind, why: &Refusal) {
        let mine = self.stats.mine();
        let (counter, bit, kind) = match why {
            Refusal::TooDeep => (&mine.skipped_too_deep, 1u8, "too_deep"),
            Refusal::NotRoundTrip(_) => (&mine.skipped_not_roundtrip, 2u8, "not_roundtrip"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.metrics.refused(kind, || self.identity_for_logs());
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
