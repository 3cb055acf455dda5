//! What varies between the callers of the pipeline: TTLs, codec, the per-function options and
//! the counters. A cached function's rules are its [`Spec`]; the typed handle and the HTTP
//! layer have rules of their own (every option off, no counters).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Cache, Inner};
use crate::codec::CodecKind;
use crate::error::Error;
use crate::guard::Refusal;
use crate::observe::CallOutcome;
use crate::spec::{Spec, Ttl};
use crate::store::Budget;

use super::Target;

impl Cache {
    /// The cache's state, or its configuration error as an [`Error::Config`].
    pub(crate) fn ready(&self) -> Result<&Arc<Inner>, Error> {
        self.inner().map_err(|e| Error::Config(e.clone()))
    }
}

/// A TTL as a function declares it, resolved against the cache's default: `None` never expires.
pub(crate) fn resolve(ttl: Ttl, inner: &Inner) -> Option<Duration> {
    match ttl {
        Ttl::Default => inner.config.default_ttl,
        Ttl::Never => None,
        Ttl::Millis(ms) => Some(Duration::from_millis(ms)),
    }
}

/// The rules one caller of the pipeline applies. Only `label` and `base_ttl` are required: the
/// defaults are "option off" and "not counted".
pub(crate) trait Rules: Sync {
    /// Names the caller in log lines.
    fn label(&self) -> &str;

    /// The codec new entries are written with.
    fn codec(&self, inner: &Inner) -> CodecKind {
        inner.config.codec
    }

    /// The payload size from which entries are compressed (`None`: never).
    fn compress(&self, inner: &Inner) -> Option<usize> {
        inner.config.compress_min_bytes
    }

    /// How long an entry is fresh (`is_none`: a cached `None`); `None` never expires. The one
    /// place the base TTL is resolved.
    fn base_ttl(&self, inner: &Inner, is_none: bool) -> Option<Duration>;

    /// The PX an entry is written with (by default its base TTL).
    fn store_ttl(&self, inner: &Inner, is_none: bool) -> Option<Duration> {
        self.base_ttl(inner, is_none)
    }

    /// Whether a `None` result is stored (the `Opt` and `ResOpt` shapes).
    fn cache_none(&self) -> bool {
        false
    }

    /// Sliding expiry: reads extend the entry (`GETEX`).
    fn sliding(&self) -> bool {
        false
    }

    /// Concurrent calls with one key share one read and one body run.
    fn single_flight(&self) -> bool {
        true
    }

    /// The lease of the cross-process lock taken on a miss, if any.
    fn lock_lease(&self) -> Option<Duration> {
        None
    }

    /// The near-cache option (`Some(0)`: as long as the TTL).
    fn local_ms(&self) -> Option<u64> {
        None
    }

    /// The window past the TTL during which an entry is served stale.
    fn stale_ms(&self) -> Option<u64> {
        None
    }

    /// The XFetch factor of early refreshes.
    fn beta(&self) -> Option<f64> {
        None
    }

    /// Counts a call's outcome.
    fn count(&self, _outcome: CallOutcome) {}

    /// Counts a hit served by the near cache.
    fn count_local_hit(&self) {}

    /// Counts a hit received from another caller's flight or `GET` in flight.
    fn count_coalesced(&self) {}

    /// Counts a background refresh that ran.
    fn count_refresh(&self) {}

    /// A result the encode guards refused to store.
    fn refused(&self, _codec: CodecKind, _why: &Refusal) {}

    /// A result too large to store (`len`: its encoded size).
    fn too_large(&self, _len: usize) {}

    /// Records the time one read took.
    fn observe_redis(&self, _took: Duration) {}

    /// Records the time one body run took.
    fn observe_body(&self, _took: Duration) {}

    /// Writes an encoded entry under `target` with expiry `ttl`, within `budget`: by default a
    /// `SET` and the tag bookkeeping ([`super::write::plain`]).
    fn write<'f>(
        &'f self,
        target: Target<'f>,
        bytes: &'f [u8],
        ttl: Option<Duration>,
        budget: &'f mut Budget,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'f {
        super::write::plain(self.label(), target, bytes, ttl, budget)
    }
}

impl Rules for Spec {
    fn label(&self) -> &str {
        self.name
    }

    fn codec(&self, inner: &Inner) -> CodecKind {
        self.codec_for(inner)
    }

    fn compress(&self, inner: &Inner) -> Option<usize> {
        self.compress_for(inner)
    }

    fn base_ttl(&self, inner: &Inner, is_none: bool) -> Option<Duration> {
        match (is_none, self.none_ttl) {
            (true, Some(t)) => resolve(t, inner),
            _ => resolve(self.ttl, inner),
        }
    }

    /// The base TTL spread by `jitter`, plus the `stale` window during which the entry may
    /// still be served.
    fn store_ttl(&self, inner: &Inner, is_none: bool) -> Option<Duration> {
        let base = self.base_ttl(inner, is_none)?;
        let jittered = if self.jitter > 0.0 {
            // Uniform in [1 - j, 1 + j].
            let factor = 1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0);
            base.mul_f64(factor.max(0.001))
        } else {
            base
        };
        Some(jittered + Duration::from_millis(self.stale_ms.unwrap_or(0)))
    }

    fn cache_none(&self) -> bool {
        self.cache_none
    }

    fn sliding(&self) -> bool {
        self.sliding
    }

    fn single_flight(&self) -> bool {
        self.single_flight
    }

    fn lock_lease(&self) -> Option<Duration> {
        self.lock_ms.map(Duration::from_millis)
    }

    fn local_ms(&self) -> Option<u64> {
        self.local_ms
    }

    fn stale_ms(&self) -> Option<u64> {
        self.stale_ms
    }

    fn beta(&self) -> Option<f64> {
        self.beta
    }

    fn count(&self, outcome: CallOutcome) {
        Spec::count(self, outcome);
    }

    fn count_local_hit(&self) {
        self.stats.mine().local_hits.fetch_add(1, Ordering::Relaxed);
    }

    fn count_coalesced(&self) {
        self.stats.mine().coalesced.fetch_add(1, Ordering::Relaxed);
    }

    fn count_refresh(&self) {
        self.stats.mine().refreshes.fetch_add(1, Ordering::Relaxed);
    }

    fn refused(&self, codec: CodecKind, why: &Refusal) {
        self.count_refused(codec, why);
    }

    fn too_large(&self, len: usize) {
        self.count_too_large(len);
    }

    fn observe_redis(&self, took: Duration) {
        Spec::observe_redis(self, took);
    }

    fn observe_body(&self, took: Duration) {
        Spec::observe_body(self, took);
    }
}
