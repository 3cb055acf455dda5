//! HTTP response caching for [axum] 0.8 (feature `axum`): [`ResponseCacheLayer`].
//!
//! A tower [`Layer`](tower::Layer) that stores whole `GET` responses in Redis through a memo-redis [`Cache`](crate::Cache)
//! and serves them again (also to `HEAD`) without calling the handler, with the same fail-open
//! promise as `#[redis_cache]`: when Redis is down, slow, the breaker is open or an entry is
//! corrupt, the handler answers normally. The cache never turns a request into a 5xx.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use memo_redis::axum::ResponseCacheLayer;
//!
//! async fn report() -> &'static str {
//!     "expensive report"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/reports", get(report))
//!     .layer(
//!         ResponseCacheLayer::new(Duration::from_secs(60))
//!             .prefix("reports")
//!             .vary_by_header("x-user-id") // goes out `Vary: x-user-id`, `private`
//!             .exclude_path("/reports/live"),
//!     );
//! ```
//!
//! Every response the layer looked at carries `X-Cache`:
//!
//! | `X-Cache` | meaning |
//! |---|---|
//! | `HIT` | served from Redis, with `ETag` and the downstream headers below (the handler's `max-age` reduced by the entry's age; no `Age`) |
//! | `MISS` | the handler ran; if the response was cacheable it was stored and carries `ETag` and the downstream headers |
//! | `BYPASS` | Redis could not be used (unreachable, timed out, breaker open, invalid configuration): the handler's response, with the downstream headers if it was cacheable |
//!
//! **Privacy.** No response reaches a user it was not made for:
//!
//! * requests carrying `Cookie` or `Authorization` pass through uncached unless the key covers
//!   them ([`vary_by_header("cookie")`](ResponseCacheLayer::vary_by_header),
//!   `vary_by_header("authorization")` or [`vary_by_cookie`](ResponseCacheLayer::vary_by_cookie));
//! * responses with `Set-Cookie` or `Cache-Control: private`, `no-store` or `no-cache` are
//!   never stored;
//! * downstream headers are honest: every stored or served response carries
//!   `Vary: <varied headers>` merged with the handler's, `Cache-Control: private` when the key
//!   holds a user's data, and a `max-age` only if the handler declared one (or
//!   [`downstream_max_age`](ResponseCacheLayer::downstream_max_age) allows it).
//!
//! Requests the layer does not cache at all (other methods, excluded paths, credentials the key
//! does not cover) pass through untouched, without `X-Cache`. See
//! `docs/http-response-caching.md` for the full rules.
//!
//! [axum]: https://docs.rs/axum/0.8

mod layer;
mod privacy;
mod response;
mod service;
mod settings;

use std::convert::Infallible;

use ::axum::body::Body;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Request;
use tower::Service;

pub use layer::ResponseCacheLayer;
pub use service::ResponseCache;

/// The response header telling how the layer served a request: `HIT`, `MISS` or `BYPASS`.
///
/// ```
/// assert_eq!(memo_redis::axum::X_CACHE, "x-cache");
/// ```
pub const X_CACHE: &str = "x-cache";

/// Default of [`ResponseCacheLayer::max_body_bytes`]: 1 MiB.
///
/// ```
/// assert_eq!(memo_redis::axum::DEFAULT_MAX_BODY_BYTES, 1024 * 1024);
/// ```
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Default of [`ResponseCacheLayer::prefix`], the second field of every key.
///
/// ```
/// assert_eq!(memo_redis::axum::DEFAULT_PREFIX, "http");
/// ```
pub const DEFAULT_PREFIX: &str = "http";

const HIT: &str = "HIT";
const MISS: &str = "MISS";
const BYPASS: &str = "BYPASS";

fn x_cache_name() -> HeaderName {
    HeaderName::from_static(X_CACHE)
}

fn mark(headers: &mut HeaderMap, value: &'static str) {
    headers.insert(x_cache_name(), HeaderValue::from_static(value));
}

// Compile-time check that the service meets `Router::layer`'s bounds (Clone + Send + Sync,
// infallible like axum's routes).
const _: fn() = || {
    fn assert_service<T: Service<Request<Body>, Error = Infallible> + Clone + Send + Sync>() {}
    assert_service::<ResponseCache<::axum::routing::Route>>();
};
