//! The settings every request of a [`ResponseCacheLayer`](super::ResponseCacheLayer) is served
//! with, as its builder leaves them.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::cache::Cache;

/// Which statuses are cached.
pub(super) type StatusFilter = Arc<dyn Fn(StatusCode) -> bool + Send + Sync>;

#[derive(Clone)]
pub(super) struct Settings {
    pub(super) ttl: Duration,
    pub(super) cache: &'static Cache,
    /// Already escaped: safe as one key field.
    pub(super) prefix: String,
    pub(super) excluded: Vec<String>,
    /// Lowercased, sorted, deduplicated.
    pub(super) vary: Vec<String>,
    /// Cookie names keyed by [`ResponseCacheLayer::vary_by_cookie`](super::ResponseCacheLayer::vary_by_cookie); sorted, deduplicated.
    pub(super) cookies: Vec<String>,
    /// [`ResponseCacheLayer::downstream_max_age`](super::ResponseCacheLayer::downstream_max_age).
    pub(super) downstream_max_age: Option<Duration>,
    pub(super) max_body_bytes: usize,
    pub(super) cache_status: StatusFilter,
    pub(super) evict_on_write: bool,
}
