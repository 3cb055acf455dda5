//! `f_refresh` runs the function's own body and counts on the function's own spec: the macro
//! emits the body once and one spec per function, shared by the function and its companions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::RedisServer;

static COUNTING: Cache = Cache::from_env();
static SKIPPING: Cache = Cache::from_env();

/// Results larger than this are returned but not stored.
const MAX: usize = 1024;

fn install(cache: &'static Cache, server: &RedisServer) {
    cache
        .install(
            Config::builder()
                .url(server.url())
                .namespace("t")
                .op_timeout(Duration::from_millis(300))
                .max_value_bytes(MAX)
                .build()
                .expect("valid config"),
        )
        .expect("cache installed once");
}

/// Counts its own runs in a `static` declared in the body.
#[redis_cache(cache = COUNTING, ttl = 60)]
async fn counter(x: u64) -> u64 {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let _ = x;
    RUNS.fetch_add(1, Ordering::Relaxed) + 1
}

/// Always too large to store.
#[redis_cache(cache = SKIPPING, ttl = 60)]
async fn oversized(x: u64) -> Vec<u64> {
    vec![x; MAX]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_static_is_shared_with_refresh() {
    let server = RedisServer::start();
    install(&COUNTING, &server);

    assert_eq!(counter(1).await, 1);
    assert_eq!(counter(2).await, 2);
    assert_eq!(counter(1).await, 1, "a hit: the body does not run");
    // `counter_refresh` runs the same body, so it sees the same `static`.
    assert_eq!(counter_refresh(3).await, 3);
    assert_eq!(counter_refresh(1).await, 4);
    assert_eq!(
        counter(1).await,
        4,
        "the refreshed value is what a hit returns"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_what_refresh_skipped() {
    let server = RedisServer::start();
    install(&SKIPPING, &server);

    // What `f_refresh` skipped as too large is counted on the function.
    assert_eq!(oversized_refresh(5).await.len(), MAX);
    let s = oversized_stats();
    assert_eq!(s.skipped_too_large, 1, "{s:?}");
    assert_eq!(s.calls(), 0, "a refresh is no call: {s:?}");
    assert!(
        memo_redis::stats()
            .iter()
            .any(|f| f.function.ends_with("::oversized") && f.stats.skipped_too_large == 1),
        "stats() lists the function after a refresh alone: {:?}",
        memo_redis::stats()
    );
    assert_eq!(oversized(5).await.len(), MAX);
    let s = oversized_stats();
    assert_eq!((s.misses, s.skipped_too_large), (1, 2), "{s:?}");
}
