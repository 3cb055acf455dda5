//! `Cache::health()` against real servers: up, killed, blackholed, refusing our password, after
//! the breaker opened, and with an invalid configuration. A report never fails, never panics,
//! takes at most the operation timeout (plus scheduling slack) and never moves the breaker.

mod common;

use std::time::{Duration, Instant};

use memo_redis::{redis_cache, BreakerState, Cache, Config};
use memo_redis_tests::{Blackhole, RedisServer};

const OP_TIMEOUT: Duration = Duration::from_millis(300);
/// Scheduling slack on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(700);

fn config(url: &str) -> memo_redis::ConfigBuilder {
    Config::builder()
        .url(url)
        .namespace("health")
        .op_timeout(OP_TIMEOUT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reachable_server_reports_version_and_round_trip() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(&server.url()).build().unwrap())
        .unwrap();

    let health = CACHE.health().await;
    assert!(health.reachable, "{health:?}");
    assert!(health.is_healthy(), "{health:?}");
    assert_eq!(health.error, None);
    assert_eq!(health.breaker, BreakerState::Closed);
    assert!(!health.cluster);
    assert!(health.near_cache.is_none(), "no local function ran");
    // The version the server itself reports, read independently of the library.
    let mut c = server.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut c)
        .await
        .unwrap();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim_end().strip_prefix(name))
            .map(str::to_string)
    };
    // Valkey also reports a `redis_version` (7.2.4, for old clients); its own is `valkey_version`.
    let version = field("valkey_version:")
        .or_else(|| field("redis_version:"))
        .unwrap();
    let version = version.as_str();
    let server_field = health.server.clone().unwrap();
    assert!(
        server_field.ends_with(version),
        "server `{server_field}` should carry the version `{version}`"
    );
    let rtt = health.round_trip.unwrap();
    assert!(rtt > Duration::ZERO && rtt < OP_TIMEOUT, "{rtt:?}");
    let line = health.to_string();
    assert!(line.starts_with("reachable ("), "{line}");
    assert!(line.ends_with("breaker closed"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_blackholed_servers_are_reported_within_the_timeout() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(&server.url()).build().unwrap())
        .unwrap();
    assert!(CACHE.health().await.reachable);

    server.kill();
    let started = Instant::now();
    let health = CACHE.health().await;
    let took = started.elapsed();
    assert!(!health.reachable, "{health:?}");
    assert!(!health.is_healthy());
    assert!(
        health.error.is_some() && health.round_trip.is_none(),
        "{health:?}"
    );
    assert!(took < OP_TIMEOUT + MARGIN, "took {took:?}");
    assert!(health.to_string().starts_with("unreachable: "), "{health}");

    // A server that accepts and never answers: bounded by the timeout.
    let hole = Blackhole::start();
    static HOLE: Cache = Cache::from_env();
    HOLE.install(config(&hole.url()).build().unwrap()).unwrap();
    let started = Instant::now();
    let health = HOLE.health().await;
    let took = started.elapsed();
    assert!(!health.reachable, "{health:?}");
    assert!(took >= OP_TIMEOUT, "the probe gave up early: {took:?}");
    assert!(took < OP_TIMEOUT + MARGIN, "took {took:?}");

    // Back on the same port: the probe sees it at once (its connection reconnects).
    server.restart();
    common::eventually(
        Duration::from_secs(10),
        "health sees the restarted server",
        || async { CACHE.health().await.reachable },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_measures_through_an_open_breaker_and_leaves_it_open() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            config(&server.url())
                .breaker_threshold(1)
                .breaker_cooldown(Duration::from_secs(600))
                .build()
                .unwrap(),
        )
        .unwrap();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn doubled(x: u64) -> u64 {
        x * 2
    }
    server.pause(Duration::from_millis(1500));
    assert_eq!(doubled(1).await, 2);
    assert!(
        CACHE.breaker_open(),
        "a timed-out read opens a threshold-1 breaker"
    );

    // The pause ends; the breaker stays open for its 600 s cooldown, but the probe measures.
    common::eventually(
        Duration::from_secs(10),
        "the probe reaches the server",
        || async { CACHE.health().await.reachable },
    )
    .await;
    let health = CACHE.health().await;
    assert!(health.reachable);
    assert_eq!(health.breaker, BreakerState::Open);
    assert!(
        !health.is_healthy(),
        "calls still bypass Redis: not healthy"
    );
    assert!(
        CACHE.breaker_open(),
        "health probes never close the breaker"
    );
    assert!(health.to_string().ends_with("breaker open"), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_reported_without_the_password() {
    let server = RedisServer::start();
    // Set at run time: the harness's readiness probe does not authenticate.
    let mut admin = server.conn().await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("right-pass")
        .query_async(&mut admin)
        .await
        .unwrap();
    static CACHE: Cache = Cache::from_env();
    let url = format!("redis://:s3cr3t-PW@{}", server.addr());
    CACHE.install(config(&url).build().unwrap()).unwrap();
    let health = CACHE.health().await;
    assert!(!health.reachable, "{health:?}");
    let error = health.error.clone().unwrap_or_default();
    assert!(
        error.contains("WRONGPASS") || error.contains("uthentication"),
        "{error}"
    );
    let text = format!("{health} {health:?}");
    assert!(!text.contains("s3cr3t-PW"), "password printed: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_is_a_report_not_a_panic() {
    static CACHE: Cache = Cache::lazy(|| Config::builder().namespace("not:valid").build());
    let health = CACHE.health().await;
    assert!(!health.reachable);
    let error = health.error.unwrap_or_default();
    assert!(error.starts_with("invalid configuration"), "{error}");
}

#[test]
fn outside_a_tokio_runtime_the_report_says_so() {
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config("redis://127.0.0.1:1/").build().unwrap())
        .unwrap();
    // A minimal executor that is not Tokio: poll the future to completion on this thread.
    let health = common::block_on(CACHE.health());
    assert!(!health.reachable);
    assert!(health.error.unwrap_or_default().contains("Tokio"));
}
