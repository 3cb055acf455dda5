//! What memo-redis logs: once per problem, rate-limited during outages, never a cached value.
//!
//! Tests in this binary share one global subscriber, so each looks only at lines naming its own
//! server or function.

mod common;

use std::time::{Duration, Instant};

use common::capture_logs;
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::{free_port_url, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_without_expiry_on_a_noeviction_server_warn_once() {
    let logs = capture_logs();
    // redis-server's default maxmemory-policy is noeviction.
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    common::install(&CACHE, &server);
    #[redis_cache(cache = CACHE, ttl = "never")]
    async fn forever(x: u32) -> u32 {
        x
    }
    for x in 0..5 {
        assert_eq!(forever(x).await, x);
    }
    let needle = "never evicts keys without a TTL";
    let deadline = Instant::now() + Duration::from_secs(5);
    while logs.count(needle) == 0 {
        assert!(
            Instant::now() < deadline,
            "no eviction-policy warning:\n{}",
            logs.text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The check runs once per cache: more writes add no lines.
    for x in 5..10 {
        forever(x).await;
    }
    assert!(
        CACHE.shutdown(Duration::from_secs(5)).await,
        "background check finished"
    );
    assert_eq!(logs.count(needle), 1, "{}", logs.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_logs_a_few_lines_not_one_per_call() {
    let logs = capture_logs();
    let url = free_port_url();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(Config::builder().url(url.clone()).build().unwrap())
        .unwrap();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn f(x: u32) -> u32 {
        x + 1
    }
    for x in 0..200 {
        assert_eq!(f(x).await, x + 1);
    }
    // Lines about this server only (other tests share the subscriber).
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let ours: Vec<String> = logs
        .text()
        .lines()
        .filter(|l| l.contains(&format!(":{port}")))
        .map(str::to_string)
        .collect();
    let failed = ours
        .iter()
        .filter(|l| l.contains("redis operation failed"))
        .count();
    let opened = ours
        .iter()
        .filter(|l| l.contains("circuit breaker opened"))
        .count();
    assert_eq!(opened, 1, "{ours:#?}");
    assert!(failed <= 1, "rate-limited: {ours:#?}");
    assert!(
        ours.len() <= 3,
        "200 failing calls, {} lines: {ours:#?}",
        ours.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_is_logged_once() {
    let logs = capture_logs();
    static BAD: Cache = Cache::lazy(|| Config::builder().url("redis://h:notaport/").build());
    #[redis_cache(cache = BAD, ttl = 60)]
    async fn g(x: u32) -> u32 {
        x * 3
    }
    for x in 0..10 {
        assert_eq!(g(x).await, x * 3);
    }
    assert_eq!(
        logs.count("invalid cache configuration"),
        1,
        "{}",
        logs.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_values_are_never_logged() {
    let logs = capture_logs();
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    common::install(&CACHE, &server);
    const SECRET: &str = "value-7f3a9c-should-never-be-logged";
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn secret(x: u32) -> String {
        format!("{SECRET}-{x}")
    }
    for _ in 0..3 {
        secret(1).await;
    }
    // A corrupt entry makes the decoder talk (at debug level): still no value.
    let mut c = server.conn().await;
    let key = secret_key(&1).unwrap();
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(format!("MR{SECRET}"))
        .query_async(&mut c)
        .await
        .unwrap();
    secret(1).await;
    assert!(!logs.text().contains(SECRET), "{}", logs.text());
}
