//! The layer and its builder: the settings every request of the service is served with.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode, Uri};
use tower::Layer;

use crate::cache::Cache;
use crate::error::Error;
use crate::key::render;

use super::service::ResponseCache;
use super::settings::Settings;
use super::{DEFAULT_MAX_BODY_BYTES, DEFAULT_PREFIX};

/// A tower [`Layer`] caching whole `GET` responses of an axum 0.8 [`Router`](::axum::Router)
/// in Redis (feature `axum`).
///
/// Built from a ttl and refined with builder methods; apply it with `Router::layer` (every
/// route), `Router::route_layer`, or `MethodRouter::layer` (one route).
///
/// * **Cached:** `GET` responses whose status passes [`cache_status`](Self::cache_status)
///   (default: `200` only), whose body is at most [`max_body_bytes`](Self::max_body_bytes), that
///   carry no `Set-Cookie`, no `Cache-Control: no-store`, `private` or `no-cache`, and no `Vary`
///   on a header the key does not include. `HEAD` is answered from a stored `GET` entry.
/// * **Credentials:** requests with `Cookie` or `Authorization` pass through uncached unless
///   the key covers them ([`vary_by_header`](Self::vary_by_header),
///   [`vary_by_cookie`](Self::vary_by_cookie)).
/// * **Key:** `{namespace}:{prefix}:{digest}`, the digest being SHA-256 (128 bits, 32 hex
///   digits) over the path, the query parameters sorted by name, the values of the
///   [varied headers](Self::vary_by_header) and of the [varied cookies](Self::vary_by_cookie).
/// * **Downstream headers** (hits, stored misses, bypasses of cacheable responses alike):
///   `Vary` lists the varied headers (merged with the handler's); `Cache-Control` is the
///   handler's, its `max-age` reduced by the entry's age, with `private` added (and `public`,
///   `s-maxage` removed) when the key holds a user's data. The layer adds a `max-age` only with
///   [`downstream_max_age`](Self::downstream_max_age).
/// * **Conditional requests:** an `If-None-Match` matching the entry's strong `ETag` (hex
///   SHA-256 of the body) is answered `304 Not Modified` with an empty body.
/// * **Writes:** `POST`, `PUT`, `PATCH` and `DELETE` are never cached; a 2xx answer to one
///   evicts the `GET` entry of the same path, query and varied headers (see
///   [`evict_on_write`](Self::evict_on_write)).
/// * **Fail-open:** Redis trouble makes the request go to the handler (`X-Cache: BYPASS`);
///   a corrupt entry is a miss that gets overwritten.
///
/// ```no_run
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use memo_redis::axum::ResponseCacheLayer;
/// use memo_redis::Cache;
///
/// static HTTP_CACHE: Cache = Cache::from_env();
///
/// let app: Router = Router::new()
///     .route("/reports/{id}", get(|| async { "report" }))
///     .layer(
///         ResponseCacheLayer::new(Duration::from_secs(30))
///             .cache(&HTTP_CACHE)
///             .prefix("reports")
///             .max_body_bytes(256 * 1024)
///             .cache_status(|s| s.is_success()),
///     );
///
/// // A signed-in area: cached per session cookie (analytics cookies ignored), sent downstream
/// // as `Vary: cookie`, `Cache-Control: private, max-age=<at most 30>`.
/// let account: Router = Router::new()
///     .route("/account", get(|| async { "your account" }))
///     .layer(
///         ResponseCacheLayer::new(Duration::from_secs(30))
///             .cache(&HTTP_CACHE)
///             .vary_by_cookie("session")
///             .downstream_max_age(Duration::from_secs(30)),
///     );
/// ```
#[derive(Clone)]
pub struct ResponseCacheLayer {
    pub(super) settings: Arc<Settings>,
}

impl fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("ResponseCacheLayer")
            .field("ttl", &s.ttl)
            .field("cache", &s.cache)
            .field("prefix", &s.prefix)
            .field("excluded", &s.excluded)
            .field("vary", &s.vary)
            .field("cookies", &s.cookies)
            .field("downstream_max_age", &s.downstream_max_age)
            .field("max_body_bytes", &s.max_body_bytes)
            .field("evict_on_write", &s.evict_on_write)
            .finish_non_exhaustive()
    }
}

impl ResponseCacheLayer {
    /// A layer storing responses for `ttl` in the global cache ([`crate::global`]), under prefix
    /// [`DEFAULT_PREFIX`]. A zero `ttl` stores nothing (every request is a `MISS`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(60));
    /// assert_eq!(layer.ttl(), Duration::from_secs(60));
    /// ```
    pub fn new(ttl: Duration) -> ResponseCacheLayer {
        ResponseCacheLayer {
            settings: Arc::new(Settings {
                ttl,
                cache: crate::global(),
                prefix: DEFAULT_PREFIX.to_string(),
                excluded: Vec::new(),
                vary: Vec::new(),
                cookies: Vec::new(),
                downstream_max_age: None,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                cache_status: Arc::new(|s| s == StatusCode::OK),
                evict_on_write: true,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(Arc::make_mut(&mut self.settings));
        self
    }

    /// Stores entries in `cache` instead of the global one (its Redis, namespace, codec,
    /// timeouts, breaker and `max_value_bytes` apply).
    ///
    /// ```
    /// use std::time::Duration;
    /// static HTTP: memo_redis::Cache = memo_redis::Cache::from_env();
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(5)).cache(&HTTP);
    /// ```
    pub fn cache(self, cache: &'static Cache) -> Self {
        self.with(|s| s.cache = cache)
    }

    /// The second key field (default [`DEFAULT_PREFIX`]). Bytes outside `[A-Za-z0-9-._~]` are
    /// percent-escaped, so a prefix can never add a key field or a glob.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(5)).prefix("a:b");
    /// assert_eq!(layer.key_prefix(), "a%3Ab");
    /// ```
    pub fn prefix(self, prefix: impl AsRef<str>) -> Self {
        let prefix = prefix.as_ref();
        let escaped = if prefix.is_empty() {
            DEFAULT_PREFIX.to_string()
        } else {
            render(|w| w.arg(prefix))
        };
        self.with(|s| s.prefix = escaped)
    }

    /// Never caches requests whose path is `prefix` or lies below it (`/admin` excludes
    /// `/admin` and `/admin/users`, not `/administrator`). Excluded requests pass through
    /// untouched. May be called several times.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(5))
    ///     .exclude_path("/admin")
    ///     .exclude_path("/live/");
    /// assert!(layer.is_excluded("/admin/users"));
    /// assert!(!layer.is_excluded("/administrator"));
    /// ```
    pub fn exclude_path(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.with(|s| s.excluded.push(prefix))
    }

    /// Makes the values of request header `name` part of the key: requests differing in it get
    /// separate entries (an absent header and an empty one differ too). Use it for every header
    /// the response depends on (`x-user-id`, `accept-language`, `cookie`…). Header names are
    /// case-insensitive; may be called several times.
    ///
    /// Every response the layer stores or serves then carries `Vary: <name>` (merged with the
    /// handler's own `Vary`), and unless `name` only selects a representation (`accept`,
    /// `accept-charset`, `accept-encoding`, `accept-language`, `host`, `origin`) it is taken to
    /// identify a user: the response goes out `Cache-Control: private`, so no shared cache
    /// downstream stores it.
    ///
    /// Requests carrying `Cookie` or `Authorization` pass through uncached (neither read nor
    /// stored) unless the key covers them: `vary_by_header("authorization")` caches per
    /// credential, `vary_by_header("cookie")` per whole `Cookie` header (see also
    /// [`vary_by_cookie`](Self::vary_by_cookie)).
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(5))
    ///     .vary_by_header("X-User-Id")
    ///     .vary_by_header("accept-language");
    /// // One user's bearer token never gets another's page: the key holds the token.
    /// let per_credential = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(5))
    ///     .vary_by_header("authorization");
    /// ```
    pub fn vary_by_header(self, name: impl AsRef<str>) -> Self {
        let name = name.as_ref().trim().to_ascii_lowercase();
        self.with(|s| {
            if !s.vary.contains(&name) {
                s.vary.push(name);
                s.vary.sort();
            }
        })
    }

    /// Makes the value of cookie `name` part of the key, and only that cookie: requests carrying
    /// `Cookie` are then cached, keyed on the values of the named cookies (an absent cookie is a
    /// value too, shared by every request without it), so analytics or consent cookies do not
    /// split the cache. Cookie names are case-sensitive; may be called several times.
    ///
    /// Declare every cookie the response depends on: the layer cannot see which cookies a
    /// handler reads. Responses go out `Vary: cookie` and `Cache-Control: private`, like
    /// `vary_by_header("cookie")`, which keys on the whole header instead.
    ///
    /// ```
    /// use std::time::Duration;
    /// // `session=a; _ga=1` and `session=a; _ga=2` share an entry; `session=b` gets its own.
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(5))
    ///     .vary_by_cookie("session");
    /// ```
    pub fn vary_by_cookie(self, name: impl AsRef<str>) -> Self {
        let name = name.as_ref().trim().to_string();
        self.with(|s| {
            if !s.cookies.contains(&name) {
                s.cookies.push(name);
                s.cookies.sort();
            }
        })
    }

    /// Lets downstream caches (browsers, proxies, CDNs) keep responses the layer stores for up
    /// to `max`: responses whose handler declared no freshness of its own (no `max-age`,
    /// `s-maxage` or `Expires`) go out with `Cache-Control: max-age=<min(max, remaining ttl)>`
    /// (with `private` when the key holds a user's data). Off by default: the layer then never
    /// makes a response more cacheable downstream than the handler declared.
    ///
    /// ```
    /// use std::time::Duration;
    /// // Entries live 5 minutes in Redis; browsers and CDNs may reuse a response for 1 minute.
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(300))
    ///     .downstream_max_age(Duration::from_secs(60));
    /// ```
    pub fn downstream_max_age(self, max: Duration) -> Self {
        self.with(|s| s.downstream_max_age = Some(max))
    }

    /// Responses with a larger body are streamed to the client without being stored
    /// (default [`DEFAULT_MAX_BODY_BYTES`]). The layer buffers at most this much of a body; the
    /// cache's `max_value_bytes` bounds the stored entry as well.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(5))
    ///     .max_body_bytes(64 * 1024);
    /// ```
    pub fn max_body_bytes(self, n: usize) -> Self {
        self.with(|s| s.max_body_bytes = n)
    }

    /// Which statuses are cacheable (default: `200 OK` only).
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::StatusCode;
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(5))
    ///     .cache_status(|s| s == StatusCode::OK || s == StatusCode::NOT_FOUND);
    /// ```
    pub fn cache_status<F>(self, filter: F) -> Self
    where
        F: Fn(StatusCode) -> bool + Send + Sync + 'static,
    {
        self.with(|s| s.cache_status = Arc::new(filter))
    }

    /// Whether a 2xx answer to `POST`, `PUT`, `PATCH` or `DELETE` deletes the `GET` entry with
    /// the same path, query and varied header values before the answer is returned (default
    /// `true`, as RFC 9111 §4.4 asks of caches). One `DEL`, bounded by the cache's operation
    /// timeout; a failure is ignored (the entry then lives until its ttl).
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(5))
    ///     .evict_on_write(false);
    /// ```
    pub fn evict_on_write(self, evict: bool) -> Self {
        self.with(|s| s.evict_on_write = evict)
    }

    /// The configured ttl.
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_millis(1500));
    /// assert_eq!(layer.ttl(), Duration::from_millis(1500));
    /// ```
    pub fn ttl(&self) -> Duration {
        self.settings.ttl
    }

    /// The second key field, as used in keys (escaped).
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(1));
    /// assert_eq!(layer.key_prefix(), "http");
    /// ```
    pub fn key_prefix(&self) -> &str {
        &self.settings.prefix
    }

    /// Whether requests for `path` are excluded (see [`exclude_path`](Self::exclude_path)).
    ///
    /// ```
    /// use std::time::Duration;
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(1)).exclude_path("/a");
    /// assert!(layer.is_excluded("/a") && layer.is_excluded("/a/b") && !layer.is_excluded("/ab"));
    /// ```
    pub fn is_excluded(&self, path: &str) -> bool {
        self.settings.is_excluded(path)
    }

    /// The Redis key of the `GET` (and `HEAD`) entry for `uri` with request `headers` (only the
    /// varied headers matter).
    ///
    /// # Errors
    /// [`Error::Config`] when the cache's configuration is invalid.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::{HeaderMap, Uri};
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(1)).prefix("web");
    /// let a = layer.key(&Uri::from_static("/r?b=2&a=1"), &HeaderMap::new())?;
    /// let b = layer.key(&Uri::from_static("/r?a=1&b=2"), &HeaderMap::new())?;
    /// assert_eq!(a, b);
    /// assert!(a.starts_with("memo:web:"));
    /// # Ok::<(), memo_redis::Error>(())
    /// ```
    pub fn key(&self, uri: &Uri, headers: &HeaderMap) -> Result<String, Error> {
        let inner = self.settings.cache.ready()?;
        self.settings
            .key(&inner.config.namespace, uri, headers)
            .map_err(Error::Key)
    }

    /// Deletes the entry for `uri` and `headers`; `Ok(true)` if there was one.
    ///
    /// # Errors
    /// The cache's configuration is invalid, or Redis failed (the breaker is open, a timeout…).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// use std::time::Duration;
    /// use http::{HeaderMap, Uri};
    /// let layer = memo_redis::axum::ResponseCacheLayer::new(Duration::from_secs(60));
    /// layer.evict(&Uri::from_static("/reports/7"), &HeaderMap::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn evict(&self, uri: &Uri, headers: &HeaderMap) -> Result<bool, Error> {
        let key = self.key(uri, headers)?;
        let inner = self.settings.cache.ready()?;
        inner.store.del(&key).await
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> ResponseCache<S> {
        ResponseCache::new(inner, Arc::clone(&self.settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> ResponseCacheLayer {
        ResponseCacheLayer::new(Duration::from_secs(10))
    }

    #[test]
    fn prefixes_are_escaped() {
        assert_eq!(layer().prefix("x y:*").key_prefix(), "x%20y%3A%2A");
        assert_eq!(layer().prefix("").key_prefix(), DEFAULT_PREFIX);
        assert_eq!(layer().prefix("pages").key_prefix(), "pages");
    }
}
