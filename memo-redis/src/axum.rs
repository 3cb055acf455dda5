//! HTTP response caching for [axum] 0.8 (feature `axum`): [`ResponseCacheLayer`].
//!
//! A tower [`Layer`] that stores whole `GET` responses in Redis through a memo-redis [`Cache`]
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

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ::axum::body::{Body, Bytes, HttpBody};
use ::axum::extract::OriginalUri;
use ::axum::BoxError;
use futures_util::stream::{self, StreamExt};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::cache::{Cache, Inner};
use crate::clock::now_ms;
use crate::envelope::{self, Envelope};
use crate::error::Error;
use crate::key::{push_digest, push_hex, render};
use crate::store::Budget;

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

/// Response headers never stored with an entry: hop-by-hop headers, framing (recomputed from the
/// stored body) and the headers the layer sets itself on every hit. The handler's
/// `Cache-Control` is stored: hits replay it (see `Settings::downstream`).
const NOT_STORED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "date",
    "age",
    "etag",
    X_CACHE,
];

/// Varied request headers that select a representation rather than identify a user: a
/// response keyed only on these is not made `private`. Any other varied header (`cookie`,
/// `authorization`, `x-user-id`, ...) is taken to identify a user.
const NOT_PERSONAL: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "host",
    "origin",
];

type StatusFilter = Arc<dyn Fn(StatusCode) -> bool + Send + Sync>;

#[derive(Clone)]
struct Settings {
    ttl: Duration,
    cache: &'static Cache,
    /// Already escaped: safe as one key field.
    prefix: String,
    excluded: Vec<String>,
    /// Lowercased, sorted, deduplicated.
    vary: Vec<String>,
    /// Cookie names keyed by [`ResponseCacheLayer::vary_by_cookie`]; sorted, deduplicated.
    cookies: Vec<String>,
    /// [`ResponseCacheLayer::downstream_max_age`].
    downstream_max_age: Option<Duration>,
    max_body_bytes: usize,
    cache_status: StatusFilter,
    evict_on_write: bool,
}

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
    settings: Arc<Settings>,
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
        let inner = self
            .settings
            .cache
            .inner()
            .map_err(|e| Error::Config(e.clone()))?;
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
        let inner = self
            .settings
            .cache
            .inner()
            .map_err(|e| Error::Config(e.clone()))?;
        inner.store.del(&key).await
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> ResponseCache<S> {
        ResponseCache {
            inner,
            settings: Arc::clone(&self.settings),
        }
    }
}

/// The service produced by [`ResponseCacheLayer`]; see there.
///
/// ```no_run
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use memo_redis::axum::{ResponseCache, ResponseCacheLayer};
/// use tower::Layer;
///
/// let router: Router = Router::new().route("/", get(|| async { "hi" }));
/// // Wrapping a whole Router (e.g. to serve it with `axum::serve`):
/// let svc: ResponseCache<Router> = ResponseCacheLayer::new(Duration::from_secs(5)).layer(router);
/// ```
#[derive(Clone)]
pub struct ResponseCache<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S: fmt::Debug> fmt::Debug for ResponseCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .field("prefix", &self.settings.prefix)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ResponseCache<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone goes back into `self`; the service that was polled ready answers this call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let settings = Arc::clone(&self.settings);
        Box::pin(serve(settings, inner, req))
    }
}

/// One stored response, the envelope's payload.
#[derive(Serialize, Deserialize)]
struct StoredResponse {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Settings {
    fn is_excluded(&self, path: &str) -> bool {
        self.excluded.iter().any(|p| {
            path.strip_prefix(p.as_str()).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('/') || p.ends_with('/') || p.is_empty()
            })
        })
    }

    fn key(&self, namespace: &str, uri: &Uri, headers: &HeaderMap) -> Result<String, String> {
        let mut query: Vec<(&str, &str)> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|s| (s.split_once('=').map_or(s, |(name, _)| name), s))
            .collect();
        // Stable: repeated parameters keep their relative order (`a=1&a=2` ≠ `a=2&a=1`).
        query.sort_by(|a, b| a.0.cmp(b.0));
        let query: Vec<&str> = query.into_iter().map(|(_, seg)| seg).collect();
        let mut varied: Vec<(Cow<'_, str>, Vec<&[u8]>)> = self
            .vary
            .iter()
            .map(|name| {
                let values = headers
                    .get_all(name.as_str())
                    .iter()
                    .map(HeaderValue::as_bytes)
                    .collect();
                (Cow::Borrowed(name.as_str()), values)
            })
            .collect();
        // `cookie=<name>` cannot collide with a header name (`=` is not a token character), and
        // layers without `vary_by_cookie` keep the keys they always had.
        varied.extend(
            self.cookies
                .iter()
                .map(|name| (Cow::Owned(format!("cookie={name}")), cookie(headers, name))),
        );
        // HEAD is answered from GET entries: the method field is always GET.
        let mut key = format!("{namespace}:{}:", self.prefix);
        push_digest(&mut key, &("GET", uri.path(), query, varied))?;
        Ok(key)
    }

    /// Requests carrying credentials (`Authorization`, `Cookie`) are only cached when the key
    /// includes them: otherwise one user's answer could be served to another.
    fn credentials_unkeyed(&self, headers: &HeaderMap) -> bool {
        let keyed = |name: &str| self.vary.iter().any(|v| v == name);
        (headers.contains_key(header::AUTHORIZATION) && !keyed("authorization"))
            || (headers.contains_key(header::COOKIE) && !keyed("cookie") && self.cookies.is_empty())
    }

    /// The request headers the key depends on, as named in `Vary` downstream.
    fn varied_headers(&self) -> impl Iterator<Item = &str> + '_ {
        let cookie = (!self.cookies.is_empty() && !self.vary.iter().any(|v| v == "cookie"))
            .then_some("cookie");
        self.vary.iter().map(String::as_str).chain(cookie)
    }

    /// Whether the key holds something identifying a user, so that responses must not be
    /// stored by shared caches downstream.
    fn personal(&self) -> bool {
        !self.cookies.is_empty()
            || self
                .vary
                .iter()
                .any(|v| !NOT_PERSONAL.contains(&v.as_str()))
    }

    /// Sets the downstream headers of a response the layer stores or serves (`HIT`, a `MISS`
    /// that is cacheable, and the `BYPASS` of a cacheable one, so all three look alike):
    ///
    /// * `Vary`: the handler's tokens plus every varied header;
    /// * `Cache-Control`: the handler's, with `max-age` / `s-maxage` reduced by the entry's
    ///   age (`age_secs`, 0 on a miss); if it declared no freshness, `max-age=<min(downstream
    ///   max age, remaining_secs)>` when [`ResponseCacheLayer::downstream_max_age`] is set,
    ///   nothing otherwise; with a personal key, `private` first and `public` / `s-maxage`
    ///   dropped.
    fn downstream(&self, headers: &mut HeaderMap, age_secs: u64, remaining_secs: u64) {
        let mut vary: Vec<String> = directives(headers, header::VARY).collect();
        for name in self.varied_headers() {
            if !vary.iter().any(|v| v == name) {
                vary.push(name.to_string());
            }
        }
        if let Ok(v) = HeaderValue::try_from(vary.join(", ")) {
            if !vary.is_empty() {
                headers.insert(header::VARY, v);
            }
        }

        let personal = self.personal();
        let mut fresh = headers.contains_key(header::EXPIRES);
        let mut cache_control: Vec<String> = Vec::new();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else {
                // Not representable as text: dropped rather than replayed half-understood.
                continue;
            };
            for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
                let name = name.trim().to_ascii_lowercase();
                if personal && (name == "public" || name == "s-maxage") {
                    continue;
                }
                if name == "max-age" || name == "s-maxage" {
                    fresh = true;
                    if let Ok(secs) = arg.trim().trim_matches('"').parse::<u64>() {
                        cache_control.push(format!("{name}={}", secs.saturating_sub(age_secs)));
                        continue;
                    }
                }
                cache_control.push(directive.to_string());
            }
        }
        if let (false, Some(max)) = (fresh, self.downstream_max_age) {
            cache_control.push(format!("max-age={}", max.as_secs().min(remaining_secs)));
        }
        if personal
            && !cache_control
                .iter()
                .any(|d| d.eq_ignore_ascii_case("private"))
        {
            cache_control.insert(0, "private".to_string());
        }
        match HeaderValue::try_from(cache_control.join(", ")) {
            Ok(v) if !cache_control.is_empty() => {
                headers.insert(header::CACHE_CONTROL, v);
            }
            _ => {
                headers.remove(header::CACHE_CONTROL);
            }
        }
    }

    /// Whether a response head allows storing; checked before any body is buffered.
    fn cacheable(&self, parts: &http::response::Parts) -> bool {
        if !(self.cache_status)(parts.status) || parts.headers.contains_key(header::SET_COOKIE) {
            return false;
        }
        let forbidden = directives(&parts.headers, header::CACHE_CONTROL)
            .any(|d| matches!(d.as_str(), "no-store" | "private" | "no-cache"));
        if forbidden {
            return false;
        }
        if directives(&parts.headers, header::VARY)
            .any(|v| v == "*" || !self.varied_headers().any(|k| k == v))
        {
            return false;
        }
        let streaming = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if streaming {
            return false;
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        declared.is_none_or(|n| n <= self.max_body_bytes as u64)
    }
}

/// Lowercased comma-separated tokens of a header, directive names only (`max-age=5` → `max-age`).
fn directives(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            d.split_once('=')
                .map_or(d, |(name, _)| name)
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty())
}

/// The values of cookie `name` in the request's `Cookie` headers, in order (RFC 6265 §5.4:
/// `name=value` pairs separated by `;`).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h [u8]> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
        .collect()
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 §13.1.2 asks) or is `*`.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let ours = etag.trim_matches('"');
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| {
            tag == "*" || {
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.len() >= 2
                    && tag.starts_with('"')
                    && tag.ends_with('"')
                    && tag.trim_matches('"') == ours
            }
        })
}

/// The strong ETag of a body: the quoted hex SHA-256.
fn etag_of(body: &[u8]) -> String {
    let mut s = String::with_capacity(66);
    s.push('"');
    push_hex(&mut s, &Sha256::digest(body));
    s.push('"');
    s
}

/// The URI as the client sent it: inside `Router::nest` the router strips the nest prefix from
/// `req.uri()`, so two nested routers would otherwise share keys for `/a/x` and `/b/x`.
fn public_uri<B>(req: &Request<B>) -> &Uri {
    req.extensions()
        .get::<OriginalUri>()
        .map_or(req.uri(), |original| &original.0)
}

fn mark(headers: &mut HeaderMap, value: &'static str) {
    headers.insert(x_cache_name(), HeaderValue::from_static(value));
}

fn passthrough<B>(res: Response<B>, x_cache: Option<&'static str>) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut res = res.map(Body::new);
    if let Some(v) = x_cache {
        mark(res.headers_mut(), v);
    }
    res
}

/// The handler's answer when Redis cannot be used: a response that would have been cached gets
/// the downstream headers a `MISS` would carry (its `Vary` and privacy hold whether or not
/// Redis is up); anything else goes out untouched.
fn bypass<B>(settings: &Settings, res: Response<B>) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = res.into_parts();
    if !settings.ttl.is_zero() && settings.cacheable(&parts) {
        parts.headers.remove(header::AGE);
        settings.downstream(&mut parts.headers, 0, settings.ttl.as_secs());
    }
    passthrough(Response::from_parts(parts, body), Some(BYPASS))
}

async fn serve<S, ReqBody, ResBody>(
    settings: Arc<Settings>,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let method = req.method().clone();
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        return write_through(&settings, inner, req).await;
    }
    if settings.is_excluded(public_uri(&req).path()) || settings.credentials_unkeyed(req.headers())
    {
        return Ok(passthrough(inner.call(req).await?, None));
    }
    let Ok(cache) = settings.cache.inner() else {
        // Invalid configuration (logged once by the cache): never use Redis.
        return Ok(bypass(&settings, inner.call(req).await?));
    };
    let key = match settings.key(&cache.config.namespace, public_uri(&req), req.headers()) {
        Ok(key) => key,
        Err(_) => return Ok(bypass(&settings, inner.call(req).await?)),
    };

    let mut budget = Budget::new(cache.store.op_timeout());
    let started = Instant::now();
    let read = cache.store.get(&key, cache.store.op_timeout()).await;
    budget.spend(started);
    let mut corrupt: Option<Vec<u8>> = None;
    match read {
        Ok(Some(bytes)) => match hit(&settings, cache, &bytes, req.headers(), head) {
            Some(res) => return Ok(res),
            None => {
                tracing::debug!(key = %key, "undecodable response cache entry; recomputing");
                corrupt = Some(bytes);
            }
        },
        Ok(None) => {}
        // Foreign data under our key: a miss, and the entry is repaired below.
        Err(Error::WrongType) => corrupt = Some(Vec::new()),
        // Unreachable, timed out, breaker open: the handler answers; no write is attempted.
        Err(_) => return Ok(bypass(&settings, inner.call(req).await?)),
    }

    let mut conditional = HeaderMap::new();
    for v in req.headers().get_all(header::IF_NONE_MATCH) {
        conditional.append(header::IF_NONE_MATCH, v.clone());
    }
    let computing = Instant::now();
    let res = inner.call(req).await?;
    let (parts, body) = res.into_parts();
    let body = Body::new(body);
    let cacheable = !settings.ttl.is_zero() && settings.cacheable(&parts);
    if head || !cacheable {
        // A HEAD answer has no body to store; the rest is not cacheable.
        repair(cache, &key, corrupt, &budget).await;
        let mut parts = parts;
        if cacheable {
            // The headers the GET answer would carry (a HEAD hit carries them too).
            parts.headers.remove(header::AGE);
            settings.downstream(&mut parts.headers, 0, settings.ttl.as_secs());
        }
        return Ok(passthrough(Response::from_parts(parts, body), Some(MISS)));
    }
    let exact_len = body.size_hint().exact();
    let body = match buffer(body, settings.max_body_bytes).await {
        Buffered::Complete(body) => body,
        Buffered::Streaming(body) => {
            repair(cache, &key, corrupt, &budget).await;
            let mut parts = parts;
            // The replayed body cannot tell its size; the original could.
            if let (Some(n), false) = (
                exact_len,
                parts.headers.contains_key(header::CONTENT_LENGTH),
            ) {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
            return Ok(passthrough(Response::from_parts(parts, body), Some(MISS)));
        }
    };
    let compute_ms = u32::try_from(computing.elapsed().as_millis()).unwrap_or(u32::MAX);
    let etag = etag_of(&body);
    let stored = store(
        &settings,
        cache,
        &key,
        &parts,
        &etag,
        body,
        compute_ms,
        &mut budget,
    )
    .await;
    let body = stored.body;
    if !stored.written {
        repair(cache, &key, corrupt, &budget).await;
    }

    let mut parts = parts;
    let etag = HeaderValue::try_from(etag).ok();
    if let Some(v) = &etag {
        parts.headers.insert(header::ETAG, v.clone());
    }
    parts.headers.remove(header::AGE);
    settings.downstream(&mut parts.headers, 0, settings.ttl.as_secs());
    mark(&mut parts.headers, MISS);
    let matched = etag
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|e| if_none_match(&conditional, e));
    if matched {
        let mut res = not_modified(&parts.headers);
        mark(res.headers_mut(), MISS);
        return Ok(res);
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// Non-GET methods: never cached; a 2xx answer to an unsafe method evicts the GET entry.
async fn write_through<S, ReqBody, ResBody>(
    settings: &Settings,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let unsafe_method = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let evict = if unsafe_method
        && settings.evict_on_write
        && !settings.is_excluded(public_uri(&req).path())
    {
        settings.cache.inner().ok().and_then(|cache| {
            settings
                .key(&cache.config.namespace, public_uri(&req), req.headers())
                .ok()
                .map(|key| (cache, key))
        })
    } else {
        None
    };
    let res = inner.call(req).await?;
    if let (Some((cache, key)), true) = (evict, res.status().is_success()) {
        // Failures are logged by the store and otherwise ignored: the write succeeded.
        let _ = cache.store.del(&key).await;
    }
    Ok(passthrough(res, None))
}

/// Decodes an entry and builds the HIT (or 304) response; `None` for anything malformed.
fn hit(
    settings: &Settings,
    cache: &Inner,
    bytes: &[u8],
    request: &HeaderMap,
    head: bool,
) -> Option<Response<Body>> {
    let envelope = Envelope::parse(bytes, cache.config.max_value_bytes).ok()?;
    if envelope.is_none() {
        return None;
    }
    let payload = envelope.decompressed(cache.config.max_value_bytes).ok()?;
    let entry: StoredResponse = envelope.codec.decode(&payload).ok()?;
    let status = StatusCode::from_u16(entry.status).ok()?;
    let mut headers = HeaderMap::with_capacity(entry.headers.len() + 5);
    for (name, value) in entry.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(&value).ok()?;
        headers.append(name, value);
    }
    let etag = match headers.get(header::ETAG) {
        Some(v) => v.clone(),
        None => HeaderValue::try_from(etag_of(&entry.body)).ok()?,
    };
    let age_ms = now_ms().saturating_sub(envelope.written_at_ms);
    let ttl_ms = u64::try_from(settings.ttl.as_millis()).unwrap_or(u64::MAX);
    let remaining_secs = ttl_ms.saturating_sub(age_ms) / 1000;
    headers.insert(header::ETAG, etag.clone());
    // No `Age`: downstream caches subtract it from `max-age` (RFC 9111 §4.2.3), and the max-age
    // sent is already reduced by the entry's age, so sending both would count it twice.
    settings.downstream(&mut headers, age_ms / 1000, remaining_secs);
    mark(&mut headers, HIT);
    if etag.to_str().is_ok_and(|e| if_none_match(request, e)) {
        return Some(not_modified(&headers));
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
    let body = if head {
        Body::empty()
    } else {
        Body::from(entry.body)
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    Some(res)
}

/// A `304 Not Modified` carrying the validators and freshness headers of `headers`.
fn not_modified(headers: &HeaderMap) -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NOT_MODIFIED;
    for name in [
        header::ETAG,
        header::CACHE_CONTROL,
        header::VARY,
        header::CONTENT_LOCATION,
        header::EXPIRES,
        x_cache_name(),
    ] {
        for value in headers.get_all(&name) {
            res.headers_mut().append(name.clone(), value.clone());
        }
    }
    res
}

struct Stored {
    body: Vec<u8>,
    written: bool,
}

#[allow(clippy::too_many_arguments)]
async fn store(
    settings: &Settings,
    cache: &Inner,
    key: &str,
    parts: &http::response::Parts,
    etag: &str,
    body: Vec<u8>,
    compute_ms: u32,
    budget: &mut Budget,
) -> Stored {
    let mut headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !NOT_STORED.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect();
    headers.push((header::ETAG.as_str().to_string(), etag.as_bytes().to_vec()));
    let entry = StoredResponse {
        status: parts.status.as_u16(),
        headers,
        body,
    };
    let encoded =
        envelope::encode(cache.config.codec, Some(&entry), now_ms(), compute_ms).map(|bytes| {
            envelope::compress(
                bytes,
                cache.config.compress_min_bytes,
                cache.config.max_value_bytes,
            )
        });
    let body = entry.body;
    let Ok(bytes) = encoded else {
        return Stored {
            body,
            written: false,
        };
    };
    if bytes.len().saturating_sub(envelope::HEADER_LEN) > cache.config.max_value_bytes {
        tracing::debug!(key = %key, size = bytes.len(), "response too large to cache");
        return Stored {
            body,
            written: false,
        };
    }
    let Some(limit) = budget.left() else {
        return Stored {
            body,
            written: false,
        };
    };
    let started = Instant::now();
    let written = cache
        .store
        .set(key, &bytes, Some(settings.ttl), limit)
        .await
        .is_ok();
    budget.spend(started);
    Stored { body, written }
}

/// Removes an entry judged corrupt unless someone replaced it meanwhile, within the budget.
async fn repair(cache: &Inner, key: &str, corrupt: Option<Vec<u8>>, budget: &Budget) {
    if let (Some(seen), Some(limit)) = (corrupt, budget.left()) {
        let _ = cache.store.repair(key, &seen, limit).await;
    }
}

enum Buffered {
    /// The whole body, at most the limit.
    Complete(Vec<u8>),
    /// Larger than the limit, carrying trailers, or failing: what was read, then the rest.
    Streaming(Body),
}

/// Reads `body` up to `max` bytes. Anything read is replayed unchanged when the body is not
/// stored, including a body error at the point it happened.
async fn buffer(mut body: Body, max: usize) -> Buffered {
    let mut frames = Vec::new();
    let mut size = 0usize;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                let data_len = frame.data_ref().map(Bytes::len);
                frames.push(frame);
                match data_len {
                    Some(n) => {
                        size = size.saturating_add(n);
                        if size > max {
                            let replay =
                                stream::iter(frames.into_iter().map(Ok::<_, ::axum::Error>))
                                    .chain(BodyStream::new(body));
                            return Buffered::Streaming(Body::new(StreamBody::new(replay)));
                        }
                    }
                    None => {
                        // Trailers: not representable in an entry.
                        let replay = stream::iter(frames.into_iter().map(Ok::<_, ::axum::Error>))
                            .chain(BodyStream::new(body));
                        return Buffered::Streaming(Body::new(StreamBody::new(replay)));
                    }
                }
            }
            Some(Err(e)) => {
                let replay = stream::iter(frames.into_iter().map(Ok))
                    .chain(stream::once(futures_util::future::ready(Err(e))));
                return Buffered::Streaming(Body::new(StreamBody::new(replay)));
            }
        }
    }
    let mut out = Vec::with_capacity(size);
    for frame in &frames {
        if let Some(data) = frame.data_ref() {
            out.extend_from_slice(data);
        }
    }
    Buffered::Complete(out)
}

// Compile-time check that the service meets `Router::layer`'s bounds (Clone + Send + Sync,
// infallible like axum's routes).
const _: fn() = || {
    fn assert_service<T: Service<Request<Body>, Error = Infallible> + Clone + Send + Sync>() {}
    assert_service::<ResponseCache<::axum::routing::Route>>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn layer() -> ResponseCacheLayer {
        ResponseCacheLayer::new(Duration::from_secs(10))
    }

    fn key(
        l: &ResponseCacheLayer,
        uri: &'static str,
        headers: &[(&'static str, &'static str)],
    ) -> String {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(*n, HeaderValue::from_static(v));
        }
        l.settings
            .key("ns", &Uri::from_static(uri), &map)
            .unwrap_or_default()
    }

    #[test]
    fn keys_sort_query_by_name_and_keep_repeats_in_order() {
        let l = layer();
        assert_eq!(key(&l, "/a?x=1&y=2", &[]), key(&l, "/a?y=2&x=1", &[]));
        assert_eq!(key(&l, "/a?x=1&&y=2&", &[]), key(&l, "/a?y=2&x=1", &[]));
        assert_ne!(key(&l, "/a?x=1&x=2", &[]), key(&l, "/a?x=2&x=1", &[]));
        assert_ne!(key(&l, "/a?x=1", &[]), key(&l, "/a?x=2", &[]));
        assert_ne!(key(&l, "/a", &[]), key(&l, "/b", &[]));
        assert_ne!(key(&l, "/a?x", &[]), key(&l, "/a?x=", &[]));
        let k = key(&l, "/a", &[]);
        assert!(
            k.starts_with("ns:http:") && k.len() == "ns:http:".len() + 32,
            "{k}"
        );
    }

    #[test]
    fn varied_headers_enter_the_key_others_do_not() {
        let l = layer().vary_by_header("X-User-Id");
        let a = key(&l, "/a", &[("x-user-id", "1")]);
        assert_ne!(a, key(&l, "/a", &[("x-user-id", "2")]));
        assert_ne!(key(&l, "/a", &[]), key(&l, "/a", &[("x-user-id", "")]));
        assert_eq!(a, key(&l, "/a", &[("x-user-id", "1"), ("x-other", "z")]));
        assert_eq!(
            key(&layer(), "/a", &[]),
            key(&layer(), "/a", &[("x-user-id", "1")])
        );
    }

    #[test]
    fn named_cookies_enter_the_key_other_cookies_do_not() {
        let l = layer().vary_by_cookie("session");
        let a = key(&l, "/a", &[("cookie", "session=a; _ga=1")]);
        assert_eq!(a, key(&l, "/a", &[("cookie", "_ga=2;session=a")]));
        assert_eq!(
            a,
            key(&l, "/a", &[("cookie", "_ga=2"), ("cookie", "session=a")])
        );
        assert_ne!(a, key(&l, "/a", &[("cookie", "session=b; _ga=1")]));
        assert_ne!(a, key(&l, "/a", &[("cookie", "xsession=a")]));
        assert_ne!(a, key(&l, "/a", &[("cookie", "Session=a")]));
        assert_eq!(key(&l, "/a", &[]), key(&l, "/a", &[("cookie", "_ga=1")]));
        assert_ne!(key(&l, "/a", &[]), key(&l, "/a", &[("cookie", "session=")]));
        // A value holding `session=a` is not the cookie `session`.
        assert_ne!(a, key(&l, "/a", &[("cookie", "x=session=a")]));
        // Layers without `vary_by_cookie` keep the keys they had: the digest covers exactly
        // (method, path, query, varied headers) as before.
        let mut expected = "ns:http:".to_string();
        let varied: Vec<(&str, Vec<&[u8]>)> = vec![("x-user-id", vec![b"1".as_slice()])];
        push_digest(&mut expected, &("GET", "/a", Vec::<&str>::new(), varied)).unwrap_or_default();
        let l = layer().vary_by_header("x-user-id");
        assert_eq!(key(&l, "/a", &[("x-user-id", "1")]), expected);
    }

    #[test]
    fn credentials_pass_through_unless_the_key_covers_them() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (n, v) in pairs {
                map.append(*n, HeaderValue::from_static(v));
            }
            map
        };
        let cookie = headers(&[("cookie", "session=a")]);
        let auth = headers(&[("authorization", "Bearer a")]);
        let plain = layer().vary_by_header("x-user-id");
        assert!(plain.settings.credentials_unkeyed(&cookie));
        assert!(plain.settings.credentials_unkeyed(&auth));
        assert!(!plain
            .settings
            .credentials_unkeyed(&headers(&[("x-user-id", "1")])));
        let by_cookie = layer().vary_by_cookie("session");
        assert!(!by_cookie.settings.credentials_unkeyed(&cookie));
        assert!(by_cookie.settings.credentials_unkeyed(&auth));
        assert!(!layer()
            .vary_by_header("Cookie")
            .settings
            .credentials_unkeyed(&cookie));
        let by_auth = layer().vary_by_header("authorization");
        assert!(!by_auth.settings.credentials_unkeyed(&auth));
        assert!(by_auth.settings.credentials_unkeyed(&cookie));
    }

    #[test]
    fn downstream_headers() {
        let out = |l: &ResponseCacheLayer,
                   res: &[(&'static str, &'static str)],
                   age: u64,
                   remaining: u64| {
            let mut h = HeaderMap::new();
            for (n, v) in res {
                h.append(*n, HeaderValue::from_static(v));
            }
            l.settings.downstream(&mut h, age, remaining);
            let get = |name| {
                h.get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            (get(header::VARY), get(header::CACHE_CONTROL))
        };
        let s = |v: &str| Some(v.to_string());
        // Nothing varied, nothing declared: nothing added.
        assert_eq!(out(&layer(), &[], 3, 7), (None, None));
        // Representation headers: Vary, not private; the handler's max-age minus the age.
        let lang = layer().vary_by_header("accept-language");
        assert_eq!(
            out(&lang, &[("cache-control", "public, max-age=30")], 3, 7),
            (s("accept-language"), s("public, max-age=27"))
        );
        assert_eq!(
            out(&lang, &[("vary", "Accept-Language, Origin")], 0, 7),
            (s("accept-language, origin"), None)
        );
        // A per-user header: private, public and s-maxage dropped; age never below zero.
        let user = layer().vary_by_header("accept").vary_by_header("x-user-id");
        assert_eq!(
            out(&user, &[], 0, 7),
            (s("accept, x-user-id"), s("private"))
        );
        assert_eq!(
            out(
                &user,
                &[(
                    "cache-control",
                    "public, s-maxage=60, max-age=5, no-transform"
                )],
                9,
                7
            ),
            (
                s("accept, x-user-id"),
                s("private, max-age=0, no-transform")
            )
        );
        // Cookies appear as `Vary: cookie` once, whichever way they are keyed.
        let cookie = layer().vary_by_cookie("session").vary_by_cookie("lang");
        assert_eq!(out(&cookie, &[], 0, 7), (s("cookie"), s("private")));
        let both = layer().vary_by_cookie("session").vary_by_header("cookie");
        assert_eq!(
            out(&both, &[("vary", "Cookie")], 0, 7),
            (s("cookie"), s("private"))
        );
        // downstream_max_age: only when the handler declared no freshness, bounded by the
        // remaining ttl.
        let opt_in = layer().downstream_max_age(Duration::from_secs(5));
        assert_eq!(out(&opt_in, &[], 2, 8), (None, s("max-age=5")));
        assert_eq!(out(&opt_in, &[], 2, 3), (None, s("max-age=3")));
        assert_eq!(
            out(&opt_in, &[("cache-control", "no-transform")], 0, 8),
            (None, s("no-transform, max-age=5"))
        );
        assert_eq!(
            out(&opt_in, &[("cache-control", "max-age=60")], 10, 8),
            (None, s("max-age=50"))
        );
        assert_eq!(
            out(
                &opt_in,
                &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")],
                0,
                8
            ),
            (None, None)
        );
        let private = user.clone().downstream_max_age(Duration::from_secs(60));
        assert_eq!(
            out(&private, &[], 0, 10),
            (s("accept, x-user-id"), s("private, max-age=10"))
        );
    }

    #[test]
    fn exclusions_match_whole_segments() {
        let l = layer().exclude_path("/admin").exclude_path("/static/");
        assert!(l.is_excluded("/admin") && l.is_excluded("/admin/x"));
        assert!(!l.is_excluded("/administrator") && !l.is_excluded("/"));
        assert!(l.is_excluded("/static/app.js") && !l.is_excluded("/static"));
    }

    #[test]
    fn if_none_match_forms() {
        let etag = etag_of(b"body");
        let check = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
            if_none_match(&h, &etag)
        };
        assert!(check(&etag));
        assert!(check(&format!("W/{etag}")));
        assert!(check(&format!("\"nope\", {etag}")));
        assert!(check("*"));
        assert!(!check("\"nope\""));
        assert!(!check(etag.trim_matches('"')));
        assert!(!if_none_match(&HeaderMap::new(), &etag));
        assert_eq!(etag.len(), 66);
    }

    #[test]
    fn cacheability_of_response_heads() {
        let l = layer().vary_by_header("accept-language").max_body_bytes(10);
        let head = |status: u16, headers: &[(&'static str, &'static str)]| {
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            for (n, v) in headers {
                res.headers_mut().append(*n, HeaderValue::from_static(v));
            }
            l.settings.cacheable(&res.into_parts().0)
        };
        assert!(head(200, &[]));
        assert!(head(
            200,
            &[
                ("cache-control", "public, max-age=5"),
                ("vary", "Accept-Language")
            ]
        ));
        assert!(!head(404, &[]));
        assert!(!head(200, &[("cache-control", "max-age=5, No-Store")]));
        assert!(!head(200, &[("cache-control", "private=\"x\"")]));
        assert!(!head(200, &[("cache-control", "no-cache")]));
        assert!(!head(200, &[("set-cookie", "a=b")]));
        assert!(!head(200, &[("vary", "*")]));
        assert!(!head(200, &[("vary", "cookie")]));
        let cookie = layer().vary_by_cookie("session");
        assert!(cookie.settings.cacheable(
            &Response::builder()
                .header("vary", "Cookie")
                .body(())
                .unwrap_or_default()
                .into_parts()
                .0
        ));
        assert!(!head(200, &[("content-type", "text/event-stream")]));
        assert!(!head(200, &[("content-length", "11")]));
        assert!(head(200, &[("content-length", "10")]));
    }

    #[test]
    fn prefixes_are_escaped() {
        assert_eq!(layer().prefix("x y:*").key_prefix(), "x%20y%3A%2A");
        assert_eq!(layer().prefix("").key_prefix(), DEFAULT_PREFIX);
        assert_eq!(layer().prefix("pages").key_prefix(), "pages");
    }

    #[derive(Clone)]
    struct Counting(Arc<AtomicUsize>);

    impl Service<Request<Body>> for Counting {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<Body>) -> Self::Future {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            std::future::ready(Ok(Response::new(Body::from(format!("call {n}")))))
        }
    }

    async fn send(
        svc: &mut ResponseCache<Counting>,
        method: Method,
        uri: &'static str,
    ) -> (Option<String>, String) {
        let mut req = Request::new(Body::empty());
        *req.method_mut() = method;
        *req.uri_mut() = Uri::from_static(uri);
        let Ok(()) = std::future::poll_fn(|cx| svc.poll_ready(cx)).await;
        let Ok(res) = svc.call(req).await;
        let x_cache = res
            .headers()
            .get(X_CACHE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = res
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (x_cache, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn invalid_configuration_bypasses_and_other_methods_pass_through() {
        static BROKEN: Cache = Cache::lazy(|| crate::Config::builder().port(0).build());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut svc = layer()
            .cache(&BROKEN)
            .exclude_path("/skip")
            .layer(Counting(Arc::clone(&calls)));
        assert_eq!(
            send(&mut svc, Method::GET, "/r").await,
            (Some("BYPASS".into()), "call 1".into())
        );
        assert_eq!(
            send(&mut svc, Method::GET, "/r").await,
            (Some("BYPASS".into()), "call 2".into())
        );
        assert_eq!(
            send(&mut svc, Method::POST, "/r").await,
            (None, "call 3".into())
        );
        assert_eq!(
            send(&mut svc, Method::GET, "/skip/x").await,
            (None, "call 4".into())
        );
        assert!(layer()
            .cache(&BROKEN)
            .key(&Uri::from_static("/"), &HeaderMap::new())
            .is_err());
    }

    #[tokio::test]
    async fn unreachable_redis_bypasses() {
        static DOWN: Cache = Cache::lazy(|| {
            crate::Config::builder()
                .url("redis://127.0.0.1:1/")
                .op_timeout(Duration::from_millis(100))
                .build()
        });
        let calls = Arc::new(AtomicUsize::new(0));
        let mut svc = layer().cache(&DOWN).layer(Counting(Arc::clone(&calls)));
        for i in 1..=7 {
            let started = Instant::now();
            let (x_cache, body) = send(&mut svc, Method::GET, "/r").await;
            assert_eq!(
                (x_cache.as_deref(), body),
                (Some("BYPASS"), format!("call {i}"))
            );
            assert!(started.elapsed() < Duration::from_secs(2));
        }
    }
}
