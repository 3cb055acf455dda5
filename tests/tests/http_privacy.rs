//! Privacy of `memo_redis::axum::ResponseCacheLayer`: no response ever reaches a user it was not
//! made for, neither from the layer nor from a shared cache (a real nginx `proxy_cache`) in front.
//! Real axum servers on 127.0.0.1:0, real redis-servers and nginx from the harness, raw HTTP/1.1.

mod common;
mod http_client;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use common::install;
use http_client::{request, serve, Reply};
use memo_redis::axum::ResponseCacheLayer;
use memo_redis::Cache;
use memo_redis_tests::{Nginx, RedisServer};

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

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string()
}

/// `/page`: a page naming whatever identifies the user (cookie, credentials, x-user-id), with
/// the caching headers the route's name asks for:
/// `/page` none, `/page/max-age` `Cache-Control: max-age=30`, `/page/public`
/// `public, max-age=30`, `/page/private` `private, max-age=30`, `/page/no-cache` `no-cache`,
/// `/page/set-cookie` a
/// `Set-Cookie`. Every run is counted.
fn app(runs: &Runs, layer: ResponseCacheLayer) -> Router {
    let page = |cache_control: Option<&'static str>, set_cookie: bool| {
        let runs = runs.clone();
        move |headers: HeaderMap| {
            let runs = runs.clone();
            async move {
                let run = runs.bump();
                let body = format!(
                    "page for cookie={} authorization={} x-user-id={} accept-language={} \
                     (run {run})",
                    header(&headers, "cookie"),
                    header(&headers, "authorization"),
                    header(&headers, "x-user-id"),
                    header(&headers, "accept-language"),
                );
                let mut res = body.into_response();
                if let Some(cc) = cache_control {
                    res.headers_mut()
                        .insert("cache-control", cc.parse().expect("header value"));
                }
                if set_cookie {
                    res.headers_mut()
                        .insert("set-cookie", "seen=1".parse().expect("header value"));
                }
                res
            }
        }
    };
    Router::new()
        .route("/page", get(page(None, false)))
        .route("/page/max-age", get(page(Some("max-age=30"), false)))
        .route("/page/public", get(page(Some("public, max-age=30"), false)))
        .route(
            "/page/private",
            get(page(Some("private, max-age=30"), false)),
        )
        .route("/page/no-cache", get(page(Some("no-cache"), false)))
        .route("/page/set-cookie", get(page(Some("max-age=30"), true)))
        .layer(layer)
}

async fn get_as(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers).await
}

// ---------------------------------------------------------------------------------------------
// The two leaks of issue 13.

/// Leak 1: a request carrying `Cookie` was cached with the cookie left out of the key, so the
/// second user got the first user's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_cookie_requests_never_get_another_users_page() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let layer = ResponseCacheLayer::new(Duration::from_secs(60))
        .cache(&CACHE)
        .vary_by_header("x-user-id");
    let addr = serve(app(&runs, layer)).await;

    for path in ["/page", "/page/max-age"] {
        let alice = get_as(addr, path, &[("Cookie", "session=alice")]).await;
        assert!(alice.text().contains("cookie=session=alice"), "{alice:?}");
        let bob = get_as(addr, path, &[("Cookie", "session=bob")]).await;
        assert!(
            bob.text().contains("cookie=session=bob"),
            "bob got someone else's page: {bob:?}"
        );
        // Passed through: neither read from nor stored to the cache.
        assert_eq!((alice.x_cache(), bob.x_cache()), (None, None), "{path}");
    }
    assert_eq!(runs.get(), 4, "the handler answered every cookie request");
    assert!(server.keys("t:*").await.is_empty(), "nothing stored");
}

/// Leak 2: a response keyed by a per-user header went out `Cache-Control: max-age=60`, with no
/// `Vary` and no `private`, and a handler that set no caching headers got a `max-age` anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_per_user_responses_go_out_private_with_vary_and_no_invented_max_age() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let layer = ResponseCacheLayer::new(Duration::from_secs(60))
        .cache(&CACHE)
        .vary_by_header("x-user-id");
    let addr = serve(app(&runs, layer)).await;

    for expected in ["MISS", "HIT"] {
        let r = get_as(addr, "/page", &[("X-User-Id", "1")]).await;
        assert_eq!(r.x_cache(), Some(expected));
        assert_eq!(r.tokens("vary"), ["x-user-id"], "{r:?}");
        assert_eq!(
            r.tokens("cache-control"),
            ["private"],
            "private, and no max-age the handler did not declare: {r:?}"
        );
    }
    assert_eq!(runs.get(), 1);
    // A HEAD that misses (the handler answers, nothing is stored) says the same.
    let head = request(addr, "HEAD", "/page", &[("X-User-Id", "2")]).await;
    assert_eq!(head.x_cache(), Some("MISS"));
    assert_eq!(head.tokens("vary"), ["x-user-id"], "{head:?}");
    assert_eq!(head.tokens("cache-control"), ["private"], "{head:?}");
}

/// A route keyed by nothing personal whose handler declared no caching: the layer caches it but
/// adds no `Cache-Control` downstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_no_max_age_added_to_a_response_without_caching_headers() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let layer = ResponseCacheLayer::new(Duration::from_secs(60)).cache(&CACHE);
    let addr = serve(app(&runs, layer)).await;
    for expected in ["MISS", "HIT"] {
        let r = get_as(addr, "/page", &[]).await;
        assert_eq!(r.x_cache(), Some(expected));
        assert_eq!(r.header("cache-control"), None, "{r:?}");
        assert_eq!(r.header("vary"), None, "{r:?}");
    }
    assert_eq!(runs.get(), 1);
}

// ---------------------------------------------------------------------------------------------
// Two users × every way a response can depend on who asks.

/// One way of telling users apart: how the layer is told, what each user sends, what the page
/// shows of it, and the `Vary` the layer must send.
struct Shape {
    name: &'static str,
    layer: fn(ResponseCacheLayer) -> ResponseCacheLayer,
    alice: (&'static str, &'static str),
    bob: (&'static str, &'static str),
    carol: (&'static str, &'static str),
    shows: [&'static str; 3],
    vary: &'static str,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "whole cookie",
        layer: |l| l.vary_by_header("cookie"),
        alice: ("Cookie", "session=alice"),
        bob: ("Cookie", "session=bob"),
        carol: ("Cookie", "session=carol"),
        shows: [
            "cookie=session=alice",
            "cookie=session=bob",
            "cookie=session=carol",
        ],
        vary: "cookie",
    },
    Shape {
        name: "named cookie",
        layer: |l| l.vary_by_cookie("session"),
        alice: ("Cookie", "session=alice; _ga=1"),
        bob: ("Cookie", "_ga=1; session=bob"),
        carol: ("Cookie", "session=carol"),
        shows: ["session=alice", "session=bob", "session=carol"],
        vary: "cookie",
    },
    Shape {
        name: "authorization",
        layer: |l| l.vary_by_header("authorization"),
        alice: ("Authorization", "Bearer alice"),
        bob: ("Authorization", "Bearer bob"),
        carol: ("Authorization", "Bearer carol"),
        shows: [
            "authorization=Bearer alice",
            "authorization=Bearer bob",
            "authorization=Bearer carol",
        ],
        vary: "authorization",
    },
    Shape {
        name: "per-user header",
        layer: |l| l.vary_by_header("x-user-id"),
        alice: ("X-User-Id", "alice"),
        bob: ("X-User-Id", "bob"),
        carol: ("X-User-Id", "carol"),
        shows: ["x-user-id=alice", "x-user-id=bob", "x-user-id=carol"],
        vary: "x-user-id",
    },
];

/// Asserts the downstream headers of a per-user response.
fn assert_private(r: &Reply, shape: &Shape, what: &str) {
    assert_eq!(
        r.tokens("vary"),
        [shape.vary],
        "{}: {what}: {r:?}",
        shape.name
    );
    assert_eq!(
        r.tokens("cache-control"),
        ["private"],
        "{}: {what}: {r:?}",
        shape.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_never_get_each_others_page_hit_miss_or_304() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    for shape in SHAPES {
        let runs = Runs::default();
        let layer = (shape.layer)(
            ResponseCacheLayer::new(Duration::from_secs(60))
                .cache(&CACHE)
                .prefix(shape.name),
        );
        let addr = serve(app(&runs, layer)).await;
        let name = shape.name;
        let as_ = |who: (&'static str, &'static str), extra: &'static [(&str, &str)]| async move {
            let mut headers = vec![who];
            headers.extend_from_slice(extra);
            get_as(addr, "/page", &headers).await
        };

        let alice = as_(shape.alice, &[]).await;
        assert_eq!(
            (alice.status, alice.x_cache()),
            (200, Some("MISS")),
            "{name}"
        );
        assert!(alice.text().contains(shape.shows[0]), "{name}: {alice:?}");
        assert_private(&alice, shape, "alice's miss");
        let bob = as_(shape.bob, &[]).await;
        assert_eq!((bob.status, bob.x_cache()), (200, Some("MISS")), "{name}");
        assert!(bob.text().contains(shape.shows[1]), "{name}: {bob:?}");
        assert_private(&bob, shape, "bob's miss");

        let alice_hit = as_(shape.alice, &[]).await;
        assert_eq!(alice_hit.x_cache(), Some("HIT"), "{name}");
        assert_eq!(alice_hit.body, alice.body, "{name}");
        assert_private(&alice_hit, shape, "alice's hit");
        let bob_hit = as_(shape.bob, &[]).await;
        assert_eq!(bob_hit.x_cache(), Some("HIT"), "{name}");
        assert_eq!(bob_hit.body, bob.body, "{name}");
        assert_private(&bob_hit, shape, "bob's hit");
        let head = request(addr, "HEAD", "/page", &[shape.bob]).await;
        assert_eq!((head.status, head.x_cache()), (200, Some("HIT")), "{name}");
        assert_eq!(head.num("content-length"), bob.body.len() as u64);
        assert_private(&head, shape, "bob's HEAD");
        assert_eq!(runs.get(), 2, "{name}: one run per user");

        // Revalidation: alice's ETag is alice's alone.
        let alice_etag = alice.header("etag").expect("etag");
        assert_ne!(Some(alice_etag), bob.header("etag"), "{name}");
        let revalidated = as_(shape.alice, &[]).await;
        assert_eq!(revalidated.header("etag"), Some(alice_etag), "{name}");
        let not_modified =
            get_as(addr, "/page", &[shape.alice, ("If-None-Match", alice_etag)]).await;
        assert_eq!(
            (not_modified.status, not_modified.x_cache()),
            (304, Some("HIT")),
            "{name}"
        );
        assert!(not_modified.body.is_empty());
        assert_private(&not_modified, shape, "alice's 304");
        // Bob presenting alice's ETag (a hit for him) gets his own page, not a 304.
        let bob_with_alices =
            get_as(addr, "/page", &[shape.bob, ("If-None-Match", alice_etag)]).await;
        assert_eq!(
            (bob_with_alices.status, bob_with_alices.x_cache()),
            (200, Some("HIT")),
            "{name}"
        );
        assert_eq!(bob_with_alices.body, bob.body, "{name}");
        // Carol presenting alice's ETag on a miss: her own fresh page.
        let carol = get_as(addr, "/page", &[shape.carol, ("If-None-Match", alice_etag)]).await;
        assert_eq!(
            (carol.status, carol.x_cache()),
            (200, Some("MISS")),
            "{name}"
        );
        assert!(carol.text().contains(shape.shows[2]), "{name}: {carol:?}");
        assert_private(&carol, shape, "carol's miss");

        // Nobody: an entry of its own, never a user's.
        let anonymous = get_as(addr, "/page", &[]).await;
        assert_eq!(anonymous.x_cache(), Some("MISS"), "{name}");
        assert!(
            anonymous
                .text()
                .contains("cookie=- authorization=- x-user-id=-"),
            "{name}: {anonymous:?}"
        );
        assert_eq!(runs.get(), 4, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_cookie_ignores_other_cookies_and_keeps_other_credentials_out() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let layer = ResponseCacheLayer::new(Duration::from_secs(60))
        .cache(&CACHE)
        .vary_by_cookie("session");
    let addr = serve(app(&runs, layer)).await;

    let first = get_as(addr, "/page", &[("Cookie", "session=alice; _ga=1")]).await;
    assert_eq!(first.x_cache(), Some("MISS"));
    // Another analytics cookie, another order, a second Cookie header: alice's entry.
    for cookies in [
        &[("Cookie", "_ga=2; session=alice")][..],
        &[("Cookie", "_ga=3"), ("Cookie", "session=alice")][..],
    ] {
        let r = get_as(addr, "/page", cookies).await;
        assert_eq!(
            (r.x_cache(), &r.body),
            (Some("HIT"), &first.body),
            "{cookies:?}"
        );
    }
    // No session cookie: the anonymous entry, shared whatever else the request carries.
    let anonymous = get_as(addr, "/page", &[("Cookie", "_ga=1")]).await;
    assert_eq!(anonymous.x_cache(), Some("MISS"));
    assert!(!anonymous.text().contains("alice"), "{anonymous:?}");
    let no_cookie = get_as(addr, "/page", &[]).await;
    assert_eq!(
        (no_cookie.x_cache(), &no_cookie.body),
        (Some("HIT"), &anonymous.body)
    );
    // A cookie whose name merely contains `session`: not alice.
    let other = get_as(addr, "/page", &[("Cookie", "xsession=alice")]).await;
    assert_eq!(
        (other.x_cache(), &other.body),
        (Some("HIT"), &anonymous.body)
    );
    // Credentials the key does not cover still pass through.
    let auth = get_as(
        addr,
        "/page",
        &[
            ("Cookie", "session=alice"),
            ("Authorization", "Bearer alice"),
        ],
    )
    .await;
    assert_eq!(auth.x_cache(), None);
    assert!(auth.text().contains("authorization=Bearer alice"));
    assert_eq!(runs.get(), 3);
    // A response setting a cookie is never stored, even on a keyed request.
    for _ in 0..2 {
        let r = get_as(addr, "/page/set-cookie", &[("Cookie", "session=alice")]).await;
        assert_eq!(
            (r.x_cache(), r.header("set-cookie")),
            (Some("MISS"), Some("seen=1"))
        );
    }
    assert_eq!(runs.get(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handlers_cache_control_is_respected_and_never_widened() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);

    // Keyed per user: `private` added, `public` dropped, the handler's max-age kept.
    let runs = Runs::default();
    let addr = serve(app(
        &runs,
        ResponseCacheLayer::new(Duration::from_secs(60))
            .cache(&CACHE)
            .prefix("user")
            .vary_by_header("x-user-id"),
    ))
    .await;
    let user = [("X-User-Id", "alice")];
    for path in ["/page/public", "/page/max-age"] {
        let miss = get_as(addr, path, &user).await;
        assert_eq!(miss.x_cache(), Some("MISS"), "{path}");
        assert_eq!(
            miss.tokens("cache-control"),
            ["private", "max-age=30"],
            "{path}"
        );
        let hit = get_as(addr, path, &user).await;
        assert_eq!(hit.x_cache(), Some("HIT"), "{path}");
        assert_eq!(hit.tokens("cache-control")[0], "private", "{path}: {hit:?}");
        assert!(hit.max_age() <= 30, "{path}: {hit:?}");
        assert_eq!(hit.tokens("vary"), ["x-user-id"]);
    }
    assert_eq!(runs.get(), 2);
    // `private` and `Set-Cookie` from the handler: never stored, sent as the handler made them.
    for (path, header, value) in [
        ("/page/private", "cache-control", "private, max-age=30"),
        ("/page/no-cache", "cache-control", "no-cache"),
        ("/page/set-cookie", "set-cookie", "seen=1"),
    ] {
        for _ in 0..2 {
            let r = get_as(addr, path, &user).await;
            assert_eq!(r.x_cache(), Some("MISS"), "{path}");
            assert_eq!(r.header(header), Some(value), "{path}");
            assert_eq!(r.header("etag"), None, "{path}: not stored");
            assert_eq!(r.header("vary"), None, "{path}: untouched");
        }
    }
    assert_eq!(runs.get(), 8);

    // Keyed by a representation header only: the handler's headers as declared, plus Vary.
    let runs = Runs::default();
    let addr = serve(app(
        &runs,
        ResponseCacheLayer::new(Duration::from_secs(60))
            .cache(&CACHE)
            .prefix("lang")
            .vary_by_header("accept-language"),
    ))
    .await;
    let de = [("Accept-Language", "de")];
    let miss = get_as(addr, "/page/public", &de).await;
    assert_eq!(miss.tokens("cache-control"), ["public", "max-age=30"]);
    assert_eq!(miss.tokens("vary"), ["accept-language"]);
    let hit = get_as(addr, "/page/public", &de).await;
    assert_eq!(
        (hit.x_cache(), hit.tokens("cache-control")[0].as_str()),
        (Some("HIT"), "public")
    );
    assert!(hit.max_age() <= 30);
    let plain = get_as(addr, "/page", &de).await;
    assert_eq!(
        (plain.x_cache(), plain.header("cache-control")),
        (Some("MISS"), None)
    );
    assert_eq!(plain.tokens("vary"), ["accept-language"]);
    let plain = get_as(addr, "/page", &de).await;
    assert_eq!(
        (plain.x_cache(), plain.header("cache-control")),
        (Some("HIT"), None)
    );
    assert_eq!(runs.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_max_age_is_opt_in_and_never_overrides_the_handler() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let shared = serve(app(
        &runs,
        ResponseCacheLayer::new(Duration::from_secs(60))
            .cache(&CACHE)
            .prefix("shared")
            .downstream_max_age(Duration::from_secs(20)),
    ))
    .await;
    for expected in ["MISS", "HIT"] {
        let r = get_as(shared, "/page", &[]).await;
        assert_eq!(r.x_cache(), Some(expected));
        assert_eq!(r.tokens("cache-control"), ["max-age=20"], "{r:?}");
        let own = get_as(shared, "/page/max-age", &[]).await;
        assert_eq!(own.x_cache(), Some(expected));
        assert!(
            own.max_age() > 20 && own.max_age() <= 30,
            "the handler's max-age wins: {own:?}"
        );
    }
    // Bounded by the remaining ttl.
    let short = serve(app(
        &runs,
        ResponseCacheLayer::new(Duration::from_secs(5))
            .cache(&CACHE)
            .prefix("short")
            .downstream_max_age(Duration::from_secs(20)),
    ))
    .await;
    assert_eq!(get_as(short, "/page", &[]).await.max_age(), 5);
    let hit = get_as(short, "/page", &[]).await;
    assert!(
        hit.x_cache() == Some("HIT") && hit.max_age() <= 5,
        "{hit:?}"
    );
    // Per user: private as well.
    let personal = serve(app(
        &runs,
        ResponseCacheLayer::new(Duration::from_secs(60))
            .cache(&CACHE)
            .prefix("personal")
            .vary_by_cookie("session")
            .downstream_max_age(Duration::from_secs(20)),
    ))
    .await;
    for expected in ["MISS", "HIT"] {
        let r = get_as(personal, "/page", &[("Cookie", "session=a")]).await;
        assert_eq!(r.x_cache(), Some(expected));
        assert_eq!(r.tokens("cache-control")[0], "private", "{r:?}");
        assert!(r.max_age() <= 20, "{r:?}");
        assert_eq!(r.tokens("vary"), ["cookie"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypassed_responses_carry_the_same_privacy_headers() {
    static DOWN: Cache = Cache::from_env();
    DOWN.install(
        memo_redis::Config::builder()
            .url(memo_redis_tests::free_port_url())
            .op_timeout(Duration::from_millis(200))
            .build()
            .expect("config"),
    )
    .expect("install");
    let runs = Runs::default();
    let addr = serve(app(
        &runs,
        ResponseCacheLayer::new(Duration::from_secs(60))
            .cache(&DOWN)
            .vary_by_header("x-user-id"),
    ))
    .await;
    for user in ["alice", "bob"] {
        let r = get_as(addr, "/page/public", &[("X-User-Id", user)]).await;
        assert_eq!(r.x_cache(), Some("BYPASS"));
        assert!(r.text().contains(&format!("x-user-id={user}")));
        assert_eq!(r.tokens("vary"), ["x-user-id"]);
        assert_eq!(r.tokens("cache-control"), ["private", "max-age=30"]);
    }
    // Unkeyed credentials never reach Redis at all.
    let r = get_as(addr, "/page", &[("Cookie", "session=alice")]).await;
    assert_eq!(r.x_cache(), None);
}

// ---------------------------------------------------------------------------------------------
// A real shared cache in front: nginx `proxy_cache` with its defaults (it stores what the
// upstream's headers allow, honours `Vary`, never stores `private`).

async fn via(nginx: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(nginx, "GET", path, headers).await
}

fn proxy_cache(r: &Reply) -> &str {
    r.header("x-proxy-cache").unwrap_or("-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_never_serves_a_page_to_another_user() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    let runs = Runs::default();
    let base = || ResponseCacheLayer::new(Duration::from_secs(60)).cache(&CACHE);
    let mut router = Router::new();
    for (i, shape) in SHAPES.iter().enumerate() {
        router = router.nest(&format!("/s{i}"), app(&runs, (shape.layer)(base())));
    }
    let router = router
        .nest(
            "/lang",
            app(&runs, base().vary_by_header("accept-language")),
        )
        .nest("/plain", app(&runs, base().vary_by_header("x-user-id")));
    let upstream = serve(router).await;
    let nginx = tokio::task::spawn_blocking(move || Nginx::proxy_cache(upstream))
        .await
        .expect("nginx started");
    let addr = nginx.addr();
    let log = || format!("nginx access log:\n{}", nginx.access_log());

    // Per-user pages, with freshness declared by the handler (`/page/max-age`: nginx would
    // store it if it were shareable) and without (`/page`).
    for (i, shape) in SHAPES.iter().enumerate() {
        for page in ["/page/max-age", "/page"] {
            let path = format!("/s{i}{page}");
            let name = format!("{} {path}", shape.name);
            let alice = via(addr, &path, &[shape.alice]).await;
            let bob = via(addr, &path, &[shape.bob]).await;
            let alice2 = via(addr, &path, &[shape.alice]).await;
            let bob2 = via(addr, &path, &[shape.bob]).await;
            for (r, shows, layer) in [
                (&alice, shape.shows[0], "MISS"),
                (&bob, shape.shows[1], "MISS"),
                (&alice2, shape.shows[0], "HIT"),
                (&bob2, shape.shows[1], "HIT"),
            ] {
                assert_eq!(r.status, 200, "{name}: {r:?}");
                assert!(r.text().contains(shows), "{name}: {r:?}\n{}", log());
                assert_eq!(r.x_cache(), Some(layer), "{name}: {r:?}");
                // `private`: nginx never stores it, so never serves it to anyone.
                assert_eq!(proxy_cache(r), "MISS", "{name}: {r:?}\n{}", log());
                assert_eq!(r.tokens("cache-control")[0], "private", "{name}: {r:?}");
                assert_eq!(r.tokens("vary"), [shape.vary], "{name}: {r:?}");
            }
            assert_eq!(
                (alice2.body == alice.body, bob2.body == bob.body),
                (true, true)
            );
            // Revalidation through nginx: with `proxy_cache` on, nginx strips `If-None-Match`
            // from the request it sends upstream and (nothing stored) relays the full answer, so
            // alice gets her own page again (a 200, not a 304), and bob his.
            let etag = alice.header("etag").expect("etag");
            let again = via(addr, &path, &[shape.alice, ("If-None-Match", etag)]).await;
            assert_eq!(
                (again.status, &again.body),
                (200, &alice.body),
                "{name}: {again:?}"
            );
            assert_eq!(again.header("etag"), Some(etag), "{name}");
            let bob3 = via(addr, &path, &[shape.bob, ("If-None-Match", etag)]).await;
            assert_eq!(
                (bob3.status, &bob3.body),
                (200, &bob.body),
                "{name}: {bob3:?}"
            );
            assert_eq!(proxy_cache(&bob3), "MISS", "{name}");
        }
    }
    assert_eq!(
        runs.get(),
        SHAPES.len() * 2 * 2,
        "one handler run per user and page"
    );

    // A shareable page varying by language: nginx stores one variant per language and serves
    // each only to its own language.
    let before = runs.get();
    let lang = |l: &'static str| [("Accept-Language", l)];
    let en = via(addr, "/lang/page/max-age", &lang("en")).await;
    let de = via(addr, "/lang/page/max-age", &lang("de")).await;
    assert_eq!(
        (proxy_cache(&en), proxy_cache(&de)),
        ("MISS", "MISS"),
        "{}",
        log()
    );
    assert_eq!(en.tokens("vary"), ["accept-language"]);
    assert_eq!(
        en.tokens("cache-control"),
        ["max-age=30"],
        "not private: {en:?}"
    );
    let en2 = via(addr, "/lang/page/max-age", &lang("en")).await;
    let de2 = via(addr, "/lang/page/max-age", &lang("de")).await;
    assert_eq!(
        (proxy_cache(&en2), proxy_cache(&de2)),
        ("HIT", "HIT"),
        "{}",
        log()
    );
    assert!(en2.text().contains("accept-language=en"), "{en2:?}");
    assert!(de2.text().contains("accept-language=de"), "{de2:?}");
    let en_etag = en.header("etag").expect("etag");
    let de_with_en = via(
        addr,
        "/lang/page/max-age",
        &[("Accept-Language", "de"), ("If-None-Match", en_etag)],
    )
    .await;
    assert_eq!((de_with_en.status, &de_with_en.body), (200, &de.body));
    let en_with_en = via(
        addr,
        "/lang/page/max-age",
        &[("Accept-Language", "en"), ("If-None-Match", en_etag)],
    )
    .await;
    assert_eq!((en_with_en.status, proxy_cache(&en_with_en)), (304, "HIT"));
    assert_eq!(runs.get(), before + 2);

    // A handler that declared no freshness: the layer caches it, but adds no max-age, so
    // nginx (no `proxy_cache_valid`) does not store it.
    let first = via(addr, "/lang/page", &lang("en")).await;
    let second = via(addr, "/lang/page", &lang("en")).await;
    assert_eq!(
        (first.x_cache(), second.x_cache()),
        (Some("MISS"), Some("HIT"))
    );
    assert_eq!(
        (proxy_cache(&first), proxy_cache(&second)),
        ("MISS", "MISS")
    );
    assert_eq!(second.header("cache-control"), None);

    // Cookies the layer was not told about: passed through by the layer; a handler that
    // declares nothing is not stored by nginx either.
    for (cookie, shows) in [
        ("session=alice", "session=alice"),
        ("session=bob", "session=bob"),
    ] {
        let r = via(addr, "/plain/page", &[("Cookie", cookie)]).await;
        assert_eq!(
            (r.status, r.x_cache(), proxy_cache(&r)),
            (200, None, "MISS")
        );
        assert!(r.text().contains(shows), "{r:?}");
    }
}
