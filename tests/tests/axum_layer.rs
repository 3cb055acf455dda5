//! `memo_redis::axum::ResponseCacheLayer` against a real axum server on 127.0.0.1:0 and a real
//! redis-server: requests are raw HTTP/1.1 over a tokio `TcpStream`, handlers count their runs.

mod common;
mod http_client;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use common::{install, pttl, raw_get};
use http_client::{get_, request, serve, Reply};
use memo_redis::axum::ResponseCacheLayer;
use memo_redis::{Cache, Config};
use memo_redis_tests::{free_port_url, Blackhole, RedisServer};

// ---------------------------------------------------------------------------------------------
// Handlers.

#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn bump(&self) -> usize {
        self.0.fetch_add(1, SeqCst) + 1
    }
    fn get(&self) -> usize {
        self.0.load(SeqCst)
    }
}

/// `/report` (200, the body names the run), `/live` (excluded), `/missing` (404), `/nostore`,
/// `/cookie`, `/big` (3 KiB), `/me` (depends on x-user-id), all counting into `runs`.
fn app(runs: &Runs, layer: ResponseCacheLayer) -> Router {
    let r = runs.clone();
    let report = get(move || {
        let r = r.clone();
        async move { format!("report run {}", r.bump()) }
    })
    .post({
        let r = runs.clone();
        move || {
            let r = r.clone();
            async move { format!("posted run {}", r.bump()) }
        }
    })
    .put({
        let r = runs.clone();
        move || {
            let r = r.clone();
            async move { (StatusCode::CONFLICT, format!("rejected run {}", r.bump())) }
        }
    });
    let counted = |body: &'static str| {
        let r = runs.clone();
        move || {
            let r = r.clone();
            async move {
                r.bump();
                body
            }
        }
    };
    let r = runs.clone();
    let missing = move || {
        let r = r.clone();
        async move {
            r.bump();
            (StatusCode::NOT_FOUND, "no such thing")
        }
    };
    let r = runs.clone();
    let nostore = move || {
        let r = r.clone();
        async move {
            r.bump();
            ([("cache-control", "no-store")], "secret").into_response()
        }
    };
    let r = runs.clone();
    let cookie = move || {
        let r = r.clone();
        async move {
            r.bump();
            ([("set-cookie", "session=1")], "hello").into_response()
        }
    };
    let r = runs.clone();
    let big = move || {
        let r = r.clone();
        async move {
            r.bump();
            "x".repeat(3 * 1024)
        }
    };
    let r = runs.clone();
    let me = move |headers: HeaderMap| {
        let r = r.clone();
        async move {
            r.bump();
            let user = headers
                .get("x-user-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("anonymous")
                .to_string();
            format!("profile of {user}")
        }
    };
    Router::new()
        .route("/report", report)
        .route("/live", get(counted("live data")))
        .route("/missing", get(missing))
        .route("/nostore", get(nostore))
        .route("/cookie", get(cookie))
        .route("/big", get(big))
        .route("/me", get(me))
        .layer(layer)
}

/// Downstream caches may keep responses as long as the entry lives (`max-age=<remaining
/// ttl>`); keyed by `x-user-id`, so they go out `private` (tests/http_privacy.rs covers the
/// default, which adds no max-age).
fn base_layer(cache: &'static Cache) -> ResponseCacheLayer {
    ResponseCacheLayer::new(Duration::from_secs(10))
        .cache(cache)
        .prefix("web")
        .exclude_path("/live")
        .vary_by_header("x-user-id")
        .max_body_bytes(2048)
        .downstream_max_age(Duration::from_secs(3600))
}

fn key(layer: &ResponseCacheLayer, target: &'static str) -> String {
    layer
        .key(&Uri::from_static(target), &HeaderMap::new())
        .expect("key")
}

fn sha256_hex_quoted(reply: &Reply) -> bool {
    let etag = reply.header("etag").unwrap_or_default();
    etag.len() == 66
        && etag.starts_with('"')
        && etag.ends_with('"')
        && etag[1..65].bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_then_hit_with_identical_bodies_and_head_from_the_entry() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let layer = base_layer(&CACHE);
    let addr = serve(app(&runs, layer.clone())).await;

    let miss = get_(addr, "/report").await;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.x_cache(), Some("MISS"));
    assert_eq!(miss.text(), "report run 1");
    assert!(sha256_hex_quoted(&miss), "{miss:?}");
    assert_eq!(miss.header("cache-control"), Some("private, max-age=10"));
    assert_eq!(miss.header("vary"), Some("x-user-id"));
    assert_eq!(runs.get(), 1);

    let hit = get_(addr, "/report").await;
    assert_eq!(hit.status, 200);
    assert_eq!(hit.x_cache(), Some("HIT"));
    assert_eq!(hit.body, miss.body, "a hit serves the stored body");
    assert_eq!(hit.header("etag"), miss.header("etag"));
    assert_eq!(
        hit.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(hit.num("content-length"), miss.body.len() as u64);
    assert_eq!(
        hit.header("age"),
        None,
        "max-age already counts the entry's age"
    );
    assert!(hit.max_age() <= 10);
    assert_eq!(hit.tokens("cache-control")[0], "private");
    assert_eq!(hit.header("vary"), Some("x-user-id"));
    assert_eq!(runs.get(), 1, "the handler did not run for the hit");

    let head = request(addr, "HEAD", "/report", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.x_cache(), Some("HIT"));
    assert!(head.body.is_empty(), "HEAD has no body: {head:?}");
    assert_eq!(head.num("content-length"), miss.body.len() as u64);
    assert_eq!(runs.get(), 1);

    // The entry: a memo-redis envelope under {namespace}:{prefix}:{digest}, expiring with the ttl.
    let k = key(&layer, "/report");
    assert!(
        k.starts_with("t:web:") && k.len() == "t:web:".len() + 32,
        "{k}"
    );
    let raw = raw_get(&server, &k).await.expect("entry stored");
    assert_eq!(&raw[..2], b"MR");
    let ttl = pttl(&server, &k).await;
    assert!(ttl > 8_000 && ttl <= 10_000, "PTTL {ttl}");

    // Query parameters in another order share the entry; other values do not.
    let a = get_(addr, "/report?b=2&a=1").await;
    assert_eq!((a.x_cache(), runs.get()), (Some("MISS"), 2));
    let b = get_(addr, "/report?a=1&b=2").await;
    assert_eq!((b.x_cache(), &b.body), (Some("HIT"), &a.body));
    let c = get_(addr, "/report?a=1&b=3").await;
    assert_eq!((c.x_cache(), runs.get()), (Some("MISS"), 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_match_gets_304_with_empty_body() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let layer = base_layer(&CACHE);
    let addr = serve(app(&runs, layer.clone())).await;

    let first = get_(addr, "/report").await;
    let etag = first.header("etag").expect("etag").to_string();

    let not_modified = request(addr, "GET", "/report", &[("If-None-Match", &etag)]).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert_eq!(not_modified.x_cache(), Some("HIT"));
    assert!(not_modified.max_age() <= 10);
    assert_eq!(runs.get(), 1);

    // Weak form and lists match (weak comparison); another tag does not.
    let weak = format!("\"other\", W/{etag}");
    let listed = request(addr, "GET", "/report", &[("If-None-Match", &weak)]).await;
    assert_eq!(listed.status, 304);
    let other = request(addr, "GET", "/report", &[("If-None-Match", "\"other\"")]).await;
    assert_eq!((other.status, other.x_cache()), (200, Some("HIT")));
    assert_eq!(other.body, first.body);

    // On a miss the ETag is computed from the fresh body, and a match is still a 304.
    assert!(layer
        .evict(&Uri::from_static("/report"), &HeaderMap::new())
        .await
        .expect("evict"));
    // The handler's next body is "report run 2": a different ETag, so a full 200.
    let changed = request(addr, "GET", "/report", &[("If-None-Match", &etag)]).await;
    assert_eq!((changed.status, changed.x_cache()), (200, Some("MISS")));
    assert_eq!(changed.text(), "report run 2");
    let etag2 = changed.header("etag").expect("etag").to_string();
    assert_ne!(etag2, etag);
    layer
        .evict(&Uri::from_static("/report"), &HeaderMap::new())
        .await
        .expect("evict");
    let star = request(addr, "GET", "/report", &[("If-None-Match", "*")]).await;
    assert_eq!((star.status, star.x_cache()), (304, Some("MISS")));
    assert!(star.body.is_empty());
    assert_eq!(
        runs.get(),
        3,
        "a miss runs the handler even when answering 304"
    );
    assert_eq!(get_(addr, "/report").await.text(), "report run 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_reflects_the_remaining_ttl() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let addr = serve(app(&runs, base_layer(&CACHE))).await;

    let before_write = Instant::now();
    let miss = get_(addr, "/report").await;
    let after_write = Instant::now();
    assert_eq!((miss.x_cache(), miss.max_age()), (Some("MISS"), 10));
    let first = get_(addr, "/report").await;
    assert_eq!(first.x_cache(), Some("HIT"));
    assert_eq!(first.header("age"), None);
    let first_max_age = first.max_age();
    assert!((8..=10).contains(&first_max_age), "{first:?}");

    // Poll until the remaining ttl drops by a second (about one second), bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (later, sent, received) = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = Instant::now();
        let r = get_(addr, "/report").await;
        let received = Instant::now();
        assert_eq!(r.x_cache(), Some("HIT"));
        if r.max_age() < first_max_age {
            break (r, sent, received);
        }
        assert!(Instant::now() < deadline, "max-age never decreased: {r:?}");
    };
    // The entry was written between `before_write` and `after_write` and `later` was answered
    // between `sent` and `received`, so its remaining ttl, rounded down, lies between these
    // bounds (50 ms of slack for the server's wall clock against the test's monotonic one).
    let max_age = later.max_age() as f64;
    let upper = 10.0 - (sent - after_write).as_secs_f64() + 0.05;
    let lower = 10.0 - (received - before_write).as_secs_f64() - 1.05;
    assert!(
        (lower..=upper).contains(&max_age),
        "{lower} ..= {upper}: {later:?}"
    );
    assert_eq!(later.body, miss.body);
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_is_never_cached_and_a_successful_write_evicts_the_get_entry() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let layer = base_layer(&CACHE);
    let addr = serve(app(&runs, layer.clone())).await;

    for i in 1..=3 {
        let r = request(addr, "POST", "/report", &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("posted run {i}"));
        assert_eq!(r.x_cache(), None, "writes pass through untouched");
    }
    assert_eq!(runs.get(), 3);
    assert!(
        server.keys("t:web:*").await.is_empty(),
        "nothing stored for POST"
    );

    assert_eq!(get_(addr, "/report").await.x_cache(), Some("MISS"));
    assert_eq!(get_(addr, "/report").await.x_cache(), Some("HIT"));
    assert_eq!(runs.get(), 4);
    // A failed write (409) leaves the entry alone...
    let rejected = request(addr, "PUT", "/report", &[]).await;
    assert_eq!(rejected.status, 409);
    assert_eq!(get_(addr, "/report").await.x_cache(), Some("HIT"));
    // ...a successful one evicts it: the next GET sees fresh data.
    assert_eq!(request(addr, "POST", "/report", &[]).await.status, 200);
    assert!(raw_get(&server, &key(&layer, "/report")).await.is_none());
    let fresh = get_(addr, "/report").await;
    assert_eq!(fresh.x_cache(), Some("MISS"));
    assert_eq!(fresh.text(), "report run 7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_and_uncacheable_responses_are_never_stored() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let addr = serve(app(&runs, base_layer(&CACHE))).await;

    for _ in 0..2 {
        let r = get_(addr, "/live").await;
        assert_eq!(
            (r.status, r.text(), r.x_cache()),
            (200, "live data".into(), None)
        );
    }
    assert_eq!(runs.get(), 2, "excluded path: the handler runs every time");

    for (path, status, body) in [
        ("/missing", 404, "no such thing"),
        ("/nostore", 200, "secret"),
        ("/cookie", 200, "hello"),
    ] {
        let before = runs.get();
        for _ in 0..2 {
            let r = get_(addr, path).await;
            assert_eq!((r.status, r.text()), (status, body.to_string()), "{path}");
            assert_eq!(r.x_cache(), Some("MISS"), "{path}");
            assert_eq!(r.header("etag"), None, "{path}: not cached, no ETag added");
        }
        assert_eq!(
            runs.get(),
            before + 2,
            "{path} is never served from the cache"
        );
    }
    let cookie = get_(addr, "/cookie").await;
    assert_eq!(cookie.header("set-cookie"), Some("session=1"));

    // Larger than max_body_bytes (2 KiB): streamed through intact, not stored.
    let before = runs.get();
    for _ in 0..2 {
        let r = get_(addr, "/big").await;
        assert_eq!((r.status, r.x_cache()), (200, Some("MISS")));
        assert_eq!(r.body, vec![b'x'; 3 * 1024]);
        assert_eq!(
            r.num("content-length"),
            3 * 1024,
            "the length survives streaming"
        );
    }
    assert_eq!(runs.get(), before + 2);

    // Credentials without `vary_by_header("authorization")`: passed through untouched.
    let before = runs.get();
    for _ in 0..2 {
        let r = request(addr, "GET", "/report", &[("Authorization", "Bearer abc")]).await;
        assert_eq!((r.status, r.x_cache()), (200, None));
    }
    assert_eq!(runs.get(), before + 2);
    assert!(
        server.keys("t:web:*").await.is_empty(),
        "nothing was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varied_header_values_get_separate_entries() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let addr = serve(app(&runs, base_layer(&CACHE))).await;

    let me = |user: &'static str| async move {
        request(addr, "GET", "/me", &[("x-user-id", user)]).await
    };
    let ada = me("ada").await;
    assert_eq!(
        (ada.x_cache(), ada.text()),
        (Some("MISS"), "profile of ada".into())
    );
    let bob = me("bob").await;
    assert_eq!(
        (bob.x_cache(), bob.text()),
        (Some("MISS"), "profile of bob".into())
    );
    let ada2 = me("ada").await;
    assert_eq!(
        (ada2.x_cache(), ada2.text()),
        (Some("HIT"), "profile of ada".into())
    );
    let bob2 = me("bob").await;
    assert_eq!(
        (bob2.x_cache(), bob2.text()),
        (Some("HIT"), "profile of bob".into())
    );
    let anon = get_(addr, "/me").await;
    assert_eq!(
        (anon.x_cache(), anon.text()),
        (Some("MISS"), "profile of anonymous".into())
    );
    assert_eq!(runs.get(), 3);
    assert_eq!(server.keys("t:web:*").await.len(), 3);
    // Other headers do not split entries.
    let other = request(
        addr,
        "GET",
        "/me",
        &[("x-user-id", "ada"), ("x-trace", "1")],
    )
    .await;
    assert_eq!(other.x_cache(), Some("HIT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_entries_are_misses_and_get_overwritten() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let layer = base_layer(&CACHE);
    let addr = serve(app(&runs, layer.clone())).await;
    let k = key(&layer, "/report");
    let mut conn = server.conn().await;

    let _: () = redis::cmd("SET")
        .arg(&k)
        .arg(b"MR\x01\x01\x00garbage-not-an-envelope".as_slice())
        .query_async(&mut conn)
        .await
        .expect("SET");
    let r = get_(addr, "/report").await;
    assert_eq!(
        (r.status, r.x_cache(), r.text()),
        (200, Some("MISS"), "report run 1".into())
    );
    assert_eq!(
        &raw_get(&server, &k).await.expect("overwritten")[..2],
        b"MR"
    );
    assert_eq!(get_(addr, "/report").await.x_cache(), Some("HIT"));

    // A list under the key (WRONGTYPE): a miss, and the foreign value is replaced.
    let _: () = redis::cmd("DEL")
        .arg(&k)
        .query_async(&mut conn)
        .await
        .expect("DEL");
    let _: () = redis::cmd("RPUSH")
        .arg(&k)
        .arg("x")
        .query_async(&mut conn)
        .await
        .expect("RPUSH");
    let r = get_(addr, "/report").await;
    assert_eq!(
        (r.status, r.x_cache(), r.text()),
        (200, Some("MISS"), "report run 2".into())
    );
    assert_eq!(get_(addr, "/report").await.x_cache(), Some("HIT"));
    assert_eq!(runs.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_then_restarted_requests_still_answer() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let addr = serve(app(&runs, base_layer(&CACHE))).await;

    assert_eq!(get_(addr, "/report").await.x_cache(), Some("MISS"));
    assert_eq!(get_(addr, "/report").await.x_cache(), Some("HIT"));

    server.kill();
    for i in 0..8 {
        let started = Instant::now();
        let r = get_(addr, "/report").await;
        assert_eq!(r.status, 200, "never a 5xx because of the cache");
        assert_eq!(r.text(), format!("report run {}", i + 2));
        assert_eq!(r.x_cache(), Some("BYPASS"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "bounded: {:?}",
            started.elapsed()
        );
    }
    // Writes still work, the eviction failing silently.
    let posted = request(addr, "POST", "/report", &[]).await;
    assert_eq!(
        (posted.status, posted.text()),
        (200, "posted run 10".into())
    );

    server.restart();
    // The breaker lets a probe through after its cooldown (1 s); then caching resumes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get_(addr, "/report").await;
        assert_eq!(r.status, 200);
        if r.x_cache() == Some("MISS") {
            break;
        }
        assert!(Instant::now() < deadline, "caching never resumed: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get_(addr, "/report").await.x_cache(), Some("HIT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_never_reachable_or_hanging_bypasses() {
    static REFUSED: Cache = Cache::from_env();
    REFUSED
        .install(
            Config::builder()
                .url(free_port_url())
                .op_timeout(Duration::from_millis(200))
                .build()
                .expect("config"),
        )
        .expect("install");
    let runs = Runs::default();
    let addr = serve(app(&runs, base_layer(&REFUSED))).await;
    for i in 1..=6 {
        let r = get_(addr, "/report").await;
        assert_eq!((r.status, r.text()), (200, format!("report run {i}")));
        assert_eq!(r.x_cache(), Some("BYPASS"));
        assert_eq!(r.header("etag"), None);
    }

    let hole = Blackhole::start();
    static HANGING: Cache = Cache::from_env();
    HANGING
        .install(
            Config::builder()
                .url(hole.url())
                .op_timeout(Duration::from_millis(200))
                .build()
                .expect("config"),
        )
        .expect("install");
    let runs = Runs::default();
    let addr = serve(app(&runs, base_layer(&HANGING))).await;
    for i in 1..=6 {
        let started = Instant::now();
        let r = get_(addr, "/me").await;
        assert_eq!(
            (r.status, r.text()),
            (200, "profile of anonymous".to_string())
        );
        assert_eq!(r.x_cache(), Some("BYPASS"));
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "request {i} waited {:?} for a hanging redis",
            started.elapsed()
        );
    }
    assert_eq!(runs.get(), 6);
    assert!(
        HANGING.breaker_open(),
        "the breaker opened after repeated timeouts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_status_and_head_miss() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let layer =
        base_layer(&CACHE).cache_status(|s| s == StatusCode::OK || s == StatusCode::NOT_FOUND);
    let addr = serve(app(&runs, layer)).await;

    let a = get_(addr, "/missing").await;
    let b = get_(addr, "/missing").await;
    assert_eq!((a.status, a.x_cache()), (404, Some("MISS")));
    assert_eq!(
        (b.status, b.x_cache(), &b.body),
        (404, Some("HIT"), &a.body)
    );
    assert_eq!(runs.get(), 1);

    // HEAD before any GET: the handler answers, nothing is stored (no body to store).
    let head = request(addr, "HEAD", "/report", &[]).await;
    assert_eq!((head.status, head.x_cache()), (200, Some("MISS")));
    assert!(head.body.is_empty());
    assert_eq!(get_(addr, "/report").await.x_cache(), Some("MISS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_routers_key_by_the_full_path() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let layer = base_layer(&CACHE).exclude_path("/b/private");
    // Inside `nest`, axum strips the prefix from the request URI: both inner routers see `/x`.
    let app = Router::new()
        .nest(
            "/a",
            Router::new()
                .route("/x", get(|| async { "from a" }))
                .layer(layer.clone()),
        )
        .nest(
            "/b",
            Router::new()
                .route("/x", get(|| async { "from b" }))
                .route("/private", get(|| async { "private" }))
                .layer(layer.clone()),
        );
    let addr = serve(app).await;
    for _ in 0..2 {
        assert_eq!(get_(addr, "/a/x").await.text(), "from a");
        assert_eq!(get_(addr, "/b/x").await.text(), "from b");
    }
    assert_eq!(get_(addr, "/b/x").await.x_cache(), Some("HIT"));
    assert!(raw_get(&server, &key(&layer, "/a/x")).await.is_some());
    assert!(raw_get(&server, &key(&layer, "/b/x")).await.is_some());
    // Exclusions see the full path too.
    assert_eq!(get_(addr, "/b/private").await.x_cache(), None);
}

/// The layer follows the cache's `REDIS_COMPRESS_MIN_BYTES`: a large response is stored
/// compressed (flag byte `02`) and served back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_compressed_by_the_cache_setting_and_served_exactly() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            Config::builder()
                .url(server.url())
                .namespace("t")
                .op_timeout(Duration::from_millis(300))
                .compress_min_bytes(1024)
                .build()
                .unwrap(),
        )
        .unwrap();
    let runs = Runs::default();
    let page: String = (0..200).map(|i| format!("<li>item {i}</li>")).collect();
    let r = runs.clone();
    let body = page.clone();
    let app = Router::new()
        .route(
            "/page",
            get(move || {
                let (r, body) = (r.clone(), body.clone());
                async move {
                    r.bump();
                    body
                }
            }),
        )
        .layer(ResponseCacheLayer::new(Duration::from_secs(10)).cache(&CACHE));
    let layer = ResponseCacheLayer::new(Duration::from_secs(10)).cache(&CACHE);
    let addr = serve(app).await;

    let miss = get_(addr, "/page").await;
    assert_eq!(miss.x_cache(), Some("MISS"));
    assert_eq!(miss.text(), page);
    let stored = raw_get(&server, &key(&layer, "/page"))
        .await
        .expect("stored");
    assert_eq!(stored[4], 0b10, "flag byte: compressed");
    assert!(
        stored.len() * 2 < page.len(),
        "{} stored bytes for a {}-byte body",
        stored.len(),
        page.len()
    );
    let hit = get_(addr, "/page").await;
    assert_eq!(hit.x_cache(), Some("HIT"));
    assert_eq!(hit.body, miss.body);
    assert_eq!(runs.get(), 1);
}
