//! The near-cache tier as the cache holds it: created by the first `local = ...` call (on a
//! single node or a Redis Cluster), emptied of a key at once by this process's own invalidations, and reported
//! by [`Cache::near_cache`]. The tier itself is `near/`.

use std::sync::Arc;

use super::{Cache, Inner};
use crate::near::{Near, HEARTBEAT};

impl Cache {
    /// The state of this cache's near cache (the in-process tier of `local = ...` functions):
    /// `None` until such a function was first called. On Redis Cluster `live` means every
    /// master's tracking link and the topology watch are in sync.
    ///
    /// ```
    /// static C: memo_redis::Cache = memo_redis::Cache::from_env();
    /// assert!(C.near_cache().is_none());
    /// ```
    pub fn near_cache(&self) -> Option<NearCacheState> {
        let near = self.inner().ok()?.near.get()?;
        Some(NearCacheState {
            live: near.is_live(),
            entries: near.len(),
            bytes: near.weight(),
        })
    }
}

/// A snapshot of a cache's near cache, from [`Cache::near_cache`].
///
/// ```no_run
/// # async fn run() {
/// #[memo_redis::redis_cache(ttl = "5m", local = "30s")]
/// async fn flags(tenant: u64) -> Vec<String> {
///     vec![tenant.to_string()]
/// }
/// flags(1).await;
/// if let Some(state) = memo_redis::global().near_cache() {
///     println!("near cache live: {}, {} entries, {} bytes", state.live, state.entries, state.bytes);
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheState {
    /// The tracking connection is up (on a cluster: every master's, and the slot map was read):
    /// local entries are being served. While it is down the tier is empty and every call goes
    /// to Redis.
    pub live: bool,
    /// Entries held.
    pub entries: usize,
    /// Bytes held (keys, encoded values and a fixed per-entry overhead), at most
    /// `REDIS_LOCAL_MAX_BYTES`.
    pub bytes: u64,
}

impl Inner {
    /// The near cache of this cache, starting its tracking (on a cluster: one link per master)
    /// on first use; `None` outside a tokio runtime.
    pub(crate) fn near(self: &Arc<Self>) -> Option<&Near> {
        let near = self.near.get_or_init(|| {
            Arc::new(Near::new(
                self.config.local_max_bytes,
                HEARTBEAT.saturating_add(self.config.op_timeout),
            ))
        });
        near.start(&self.config, self.store.breaker.nodes.as_ref());
        Some(near)
    }

    /// Drops this process's local copy of `key` at once (after an evict or a write-through).
    pub(crate) fn forget_local(&self, key: &str) {
        if let Some(near) = self.near.get() {
            near.invalidate(key.as_bytes());
        }
    }

    /// Drops every local copy (after a bulk invalidation).
    pub(crate) fn forget_local_all(&self) {
        if let Some(near) = self.near.get() {
            near.flush();
        }
    }
}
