//! The service: how one request is served — passed through, answered from an entry, or sent to
//! the handler and its response stored — with the entry pipeline doing the reads and writes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ::axum::body::{Body, Bytes, HttpBody};
use ::axum::extract::OriginalUri;
use ::axum::BoxError;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, Uri};
use tower::Service;

use crate::cache::Inner;
use crate::pipeline::read::{fetch, Fetched};
use crate::pipeline::{entry, write, Rules, Target};
use crate::store::Budget;

use super::response::{
    buffer, etag_of, hit, if_none_match, not_modified, stored, Buffered, StoredResponse, UNSHAPED,
};
use super::settings::Settings;
use super::{mark, BYPASS, MISS};

/// The service produced by [`ResponseCacheLayer`](super::ResponseCacheLayer); see there.
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

impl<S> ResponseCache<S> {
    pub(super) fn new(inner: S, settings: Arc<Settings>) -> Self {
        ResponseCache { inner, settings }
    }
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

/// The URI as the client sent it: inside `Router::nest` the router strips the nest prefix from
/// `req.uri()`, so two nested routers would otherwise share keys for `/a/x` and `/b/x`.
fn public_uri<B>(req: &Request<B>) -> &Uri {
    req.extensions()
        .get::<OriginalUri>()
        .map_or(req.uri(), |original| &original.0)
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

    let target = Target {
        inner: cache,
        key: &key,
        tags: &[],
    };
    let mut budget = Budget::new(cache.store.op_timeout());
    let mut corrupt: Option<Vec<u8>> = None;
    match fetch(target, None, false, &mut budget).await.0 {
        Fetched::Found(bytes, _) => match hit(&settings, cache, &bytes, req.headers(), head) {
            Some(res) => return Ok(res),
            None => {
                tracing::debug!(key = %key, "undecodable response cache entry; recomputing");
                corrupt = Some(bytes);
            }
        },
        Fetched::Missing => {}
        // Foreign data under our key: a miss, and the entry is repaired below.
        Fetched::WrongType => corrupt = Some(Vec::new()),
        // Unreachable, timed out, breaker open: the handler answers; no write is attempted.
        Fetched::Failed(_) => return Ok(bypass(&settings, inner.call(req).await?)),
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
        repair(target, corrupt, &mut budget).await;
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
            repair(target, corrupt, &mut budget).await;
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
    let etag = etag_of(&body);
    let entry = stored(&parts, &etag, body);
    let written = store(&settings, target, &entry, computing.elapsed(), &mut budget).await;
    let body = entry.body;
    if !written {
        repair(target, corrupt, &mut budget).await;
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

/// The rules of HTTP entries in the pipeline: the layer's TTL, the cache's codec, no counters.
struct Http {
    ttl: Duration,
}

impl Rules for Http {
    fn label(&self) -> &str {
        "http"
    }

    fn base_ttl(&self, _inner: &Inner, _is_none: bool) -> Option<Duration> {
        Some(self.ttl)
    }
}

/// Stores a response through the pipeline (encode guards, size check, write within the
/// budget); whether it was written.
async fn store(
    settings: &Settings,
    target: Target<'_>,
    response: &StoredResponse,
    compute: Duration,
    budget: &mut Budget,
) -> bool {
    let rules = Http { ttl: settings.ttl };
    let inner = target.inner;
    let encoded = entry::encode_value::<StoredResponse, StoredResponse>(
        rules.codec(inner),
        rules.compress(inner),
        inner,
        Some(response),
        UNSHAPED,
        compute,
    );
    match encoded {
        Ok(encoded) => matches!(
            write::store(&rules, target, &encoded, budget).await,
            Ok(true)
        ),
        Err(refused) => {
            tracing::debug!(key = target.key, reason = %refused, "response not stored");
            false
        }
    }
}

/// Removes an entry judged corrupt unless someone replaced it meanwhile, within the budget.
async fn repair(target: Target<'_>, corrupt: Option<Vec<u8>>, budget: &mut Budget) {
    if let Some(seen) = corrupt {
        write::repair(target, &seen, budget).await;
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tower::Layer;

    use super::*;
    use crate::axum::{ResponseCacheLayer, X_CACHE};
    use crate::cache::Cache;

    fn layer() -> ResponseCacheLayer {
        ResponseCacheLayer::new(Duration::from_secs(10))
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
