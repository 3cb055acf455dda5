//! Wrong password and missing ACL permissions: one clear log line, results stay correct. A wrong
//! password opens the breaker at once; a missing permission fails only the refused commands.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use common::capture_logs;
use memo_redis::{redis_cache, BreakerState, Cache, Config};
use memo_redis_tests::RedisServer;

const REFUSED: &str = "redis refused access";

fn lines_for(logs: &common::Logs, port: u16) -> Vec<String> {
    logs.text()
        .lines()
        .filter(|l| l.contains(&format!(":{port}/")))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_without_permission_on_our_keys() {
    let logs = capture_logs();
    let server = RedisServer::start();
    let mut admin = server.conn().await;
    // The user may use every command, but only on keys outside our namespace.
    let () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">app-pass", "~other:*", "+@all"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            Config::builder()
                .url(format!("redis://app:app-pass@127.0.0.1:{}/", server.port()))
                .namespace("acl")
                .breaker_cooldown(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn f(x: u32) -> u32 {
        RUNS.fetch_add(1, SeqCst);
        x * 7
    }
    // A refusal is not a connectivity failure: the breaker stays closed from the first one on.
    assert_eq!(f(0).await, 0);
    assert_eq!(
        CACHE.breaker_state(),
        BreakerState::Closed,
        "still closed after one refusal"
    );
    for x in 1..30 {
        assert_eq!(f(x % 3).await, (x % 3) * 7);
    }
    assert_eq!(RUNS.load(SeqCst), 30, "nothing could be cached");
    // `NOPERM` refuses one command; Redis is reachable, so the breaker shared by every function
    // stays closed (an ACL refusing only some commands must not switch the cache off).
    assert_eq!(CACHE.breaker_state(), BreakerState::Closed);
    let ours = lines_for(&logs, server.port());
    assert_eq!(ours.len(), 1, "one rate-limited line: {ours:#?}");
    assert!(
        ours[0].contains("redis refused a command") && ours[0].contains("NOPERM"),
        "{}",
        ours[0]
    );
    assert!(ours[0].contains(" WARN "), "logged at WARN: {}", ours[0]);
    assert!(!ours[0].contains("app-pass"), "no password in logs");
    let s = memo_redis::stats()
        .into_iter()
        .find(|s| s.function.ends_with("::f"))
        .unwrap()
        .stats;
    assert_eq!((s.errors, s.bypass), (30, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password() {
    let logs = capture_logs();
    let server = RedisServer::start();
    let mut admin = server.conn().await;
    let () = redis::cmd("ACL")
        .arg(&["SETUSER", "svc", "on", ">right", "~*", "+@all"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            Config::builder()
                .url(format!(
                    "redis://svc:Wr0ngPassw0rd@127.0.0.1:{}/",
                    server.port()
                ))
                .breaker_cooldown(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .unwrap();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn g(x: u32) -> u32 {
        x + 100
    }
    // The first refusal opens the breaker at once (no threshold of failures to reach).
    assert_eq!(g(0).await, 100);
    assert_eq!(
        CACHE.breaker_state(),
        BreakerState::Open,
        "open after one refusal"
    );
    for x in 1..30 {
        assert_eq!(g(x).await, x + 100);
    }
    assert_eq!(CACHE.breaker_state(), BreakerState::Open);
    let ours = lines_for(&logs, server.port());
    assert_eq!(ours.len(), 1, "one clear line: {ours:#?}");
    assert!(ours[0].contains(REFUSED), "{}", ours[0]);
    assert!(ours[0].contains(" ERROR "), "logged at ERROR: {}", ours[0]);
    let s = common::stats_of("g");
    assert_eq!((s.errors, s.bypass), (1, 29), "{s:?}");
    assert!(
        !logs.text().contains("Wr0ngPassw0rd"),
        "no password in logs"
    );
}

/// Server compatibility: a function without expiry makes the cache check the server's
/// `maxmemory-policy` once with `CONFIG GET`, which users restricted by ACL (`-config`, `-@admin`,
/// `-@dangerous`: usual on managed Redis and Valkey) may not run. The refusal must not be taken for
/// a credentials problem (breaker open, cache off for the cooldown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_without_config_permission_keeps_caching() {
    let logs = capture_logs();
    let server = RedisServer::start();
    let mut admin = server.conn().await;
    let () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                "app",
                "on",
                ">app-pass",
                "~*",
                "+@all",
                "-config",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            Config::builder()
                .url(format!("redis://app:app-pass@127.0.0.1:{}/", server.port()))
                .namespace("noconfig")
                .breaker_cooldown(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = "never")]
    async fn forever(x: u32) -> u32 {
        RUNS.fetch_add(1, SeqCst);
        x * 3
    }
    // A miss whose write (no expiry) starts the policy check in the background; `shutdown` waits
    // for it, and no other operation is in flight meanwhile.
    assert_eq!(forever(1).await, 3);
    assert!(
        CACHE.shutdown(Duration::from_secs(5)).await,
        "background check finished"
    );
    let refused: Vec<Vec<(String, redis::Value)>> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        format!("{refused:?}").contains("config"),
        "the check ran and CONFIG GET was refused: {refused:?}"
    );
    assert_eq!(CACHE.breaker_state(), BreakerState::Closed);
    let ours = lines_for(&logs, server.port());
    assert!(
        !ours.iter().any(|l| l.contains(REFUSED)),
        "credentials are fine: {ours:#?}"
    );
    for x in [1, 1, 2, 2] {
        assert_eq!(forever(x).await, x * 3);
    }
    assert_eq!(RUNS.load(SeqCst), 2, "1 stayed cached, 2 was cached");
}

/// Server compatibility: every eviction and invalidation announces itself with `PUBLISH` on the
/// cache's event channel. Since Redis 7.0 (and in Valkey) a new ACL user may use no channel unless
/// granted (`acl-pubsub-default resetchannels`; Redis 6.2 granted all), so the announcement of an
/// eviction that succeeded gets `NOPERM`; caching must go on (breaker closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_without_channel_permission_keeps_caching() {
    let logs = capture_logs();
    let server = RedisServer::start();
    let mut admin = server.conn().await;
    // Every command and key, no pub/sub channel (what Redis 7 and Valkey give a new user).
    let () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                "app",
                "on",
                ">app-pass",
                "~*",
                "resetchannels",
                "+@all",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            Config::builder()
                .url(format!("redis://app:app-pass@127.0.0.1:{}/", server.port()))
                .namespace("nochannel")
                .breaker_cooldown(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn tripled(x: u32) -> u32 {
        RUNS.fetch_add(1, SeqCst);
        x * 3
    }
    assert_eq!(tripled(1).await, 3);
    assert!(tripled_evict(&1).await.unwrap(), "the entry was deleted");
    let refused: Vec<Vec<(String, redis::Value)>> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        format!("{refused:?}").contains("channel"),
        "the announcement was refused: {refused:?}"
    );
    assert_eq!(CACHE.breaker_state(), BreakerState::Closed);
    for _ in 0..3 {
        assert_eq!(tripled(1).await, 3);
    }
    assert_eq!(RUNS.load(SeqCst), 2, "a miss after the eviction, then hits");
    let ours = lines_for(&logs, server.port());
    assert!(
        !ours.iter().any(|l| l.contains(REFUSED)),
        "credentials are fine: {ours:#?}"
    );
}
