//! `get_or_set_with`'s way through the entry pipeline: the handle's rules (its TTL, no counters,
//! refusals logged, the tag-list-aware write).

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::{Cache, Inner};
use crate::envelope;
use crate::error::Error;
use crate::pipeline::{self, Rules, Target};
use crate::shape::Res;
use crate::store::Budget;

use super::tag_list::write;
use super::{full_key_in, resolve_ttl, FAIL_OPEN_LOG};

impl Cache {
    /// `get_or_set_with`'s flow: `Err` only for errors before `make` runs; `Ok(make's result)`.
    pub(super) async fn fill<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        make: F,
    ) -> Result<Result<T, E>, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let inner = self.ready()?;
        let full = full_key_in(&inner.config.namespace, key)?;
        let target = Target {
            inner,
            key: &full,
            tags: &[],
        };
        let rules = Fill { key: &full, ttl };
        Ok(pipeline::run::<Res, Result<T, E>, Fill<'_>, F, Fut>(&rules, target, make, None).await)
    }
}

/// The rules of [`Cache::get_or_set_with`] in the pipeline: the TTL it was given, no counters,
/// refusals logged (rate-limited), and the handle's write (which keeps tag lists right).
struct Fill<'a> {
    key: &'a str,
    ttl: Option<Duration>,
}

impl Fill<'_> {
    fn not_stored(&self, why: &dyn std::fmt::Display) {
        FAIL_OPEN_LOG.hit(|suppressed| {
            tracing::warn!(key = self.key, error = %why, suppressed, "memo-redis: get_or_set_with did not store the value");
        });
    }
}

impl Rules for Fill<'_> {
    fn label(&self) -> &str {
        "get_or_set_with"
    }

    fn base_ttl(&self, inner: &Inner, _is_none: bool) -> Option<Duration> {
        resolve_ttl(inner, self.ttl).map(Duration::from_millis)
    }

    fn refused(&self, _codec: crate::CodecKind, why: &crate::guard::Refusal) {
        self.not_stored(why);
    }

    fn too_large(&self, len: usize) {
        self.not_stored(&format_args!(
            "value of {} bytes exceeds max_value_bytes",
            len.saturating_sub(envelope::HEADER_LEN)
        ));
    }

    fn write<'f>(
        &'f self,
        target: Target<'f>,
        bytes: &'f [u8],
        ttl: Option<Duration>,
        budget: &'f mut Budget,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'f {
        let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        write(target.inner, target.key, bytes, ttl_ms, target.tags, budget)
    }
}
