//! Wrong password and missing ACL permissions: one clear log line, calls bypass the cache, results
//! stay correct.

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
    // The first refusal opens the breaker at once (no threshold of failures to reach).
    assert_eq!(f(0).await, 0);
    assert_eq!(
        CACHE.breaker_state(),
        BreakerState::Open,
        "open after one refusal"
    );
    for x in 1..30 {
        assert_eq!(f(x % 3).await, (x % 3) * 7);
    }
    assert_eq!(RUNS.load(SeqCst), 30, "nothing could be cached");
    assert_eq!(CACHE.breaker_state(), BreakerState::Open);
    let ours = lines_for(&logs, server.port());
    assert_eq!(ours.len(), 1, "one clear line: {ours:#?}");
    assert!(
        ours[0].contains(REFUSED) && ours[0].to_lowercase().contains("noperm"),
        "{}",
        ours[0]
    );
    assert!(ours[0].contains(" ERROR "), "logged at ERROR: {}", ours[0]);
    assert!(!ours[0].contains("app-pass"), "no password in logs");
    let s = memo_redis::stats()
        .into_iter()
        .find(|s| s.function.ends_with("::f"))
        .unwrap()
        .stats;
    assert_eq!((s.errors, s.bypass), (1, 29), "{s:?}");
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
