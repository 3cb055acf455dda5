//! The cross-process lock when Redis fails around `SET … NX` (issue 12 point 7), against a real
//! redis-server behind a fault-injecting proxy: a lock holding our token is ours, and a lock
//! whose `SET` may have happened without us hearing the reply is released like a held one.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{exists, install_url};
use memo_redis::{redis_cache, Cache};
use memo_redis_tests::{FaultProxy, RedisServer};

/// The lease of `lock = true`.
const LEASE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lock_reply_does_not_make_the_caller_wait_out_its_own_lock() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(&server);
    static CACHE: Cache = Cache::from_env();
    install_url(&CACHE, &proxy.url());
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, lock = true)]
    async fn locked(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        x * 2
    }
    assert_eq!(locked(0).await, 0, "connected");

    // The server executes the `SET … NX`; the connection closes before its reply arrives. The
    // retry on the new connection finds the lock taken — by our own token.
    proxy.drop_after_matching(" NX ", 1);
    let started = Instant::now();
    assert_eq!(locked(1).await, 2);
    let took = started.elapsed();
    println!("lost SET NX reply: call took {took:?} (lease {LEASE:?})");
    assert_eq!(proxy.dropped(), 1, "the reply was dropped");
    assert!(
        took < LEASE / 5,
        "the caller did not wait out its own lock: {took:?}"
    );
    assert_eq!(RUNS.load(SeqCst), 2, "one body run for the call");
    let key = locked_key(&1).unwrap();
    assert!(exists(&server, &key).await, "the value was stored");
    assert!(
        !exists(&server, &format!("{key}:lock")).await,
        "the lock was released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_without_a_reply_is_released_after_the_body() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(&server);
    static CACHE: Cache = Cache::from_env();
    install_url(&CACHE, &proxy.url());
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, lock = true)]
    async fn locked_twice(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 2
    }
    assert_eq!(locked_twice(0).await, 0, "connected");

    // Both the `SET … NX` and its retry lose their replies: the call cannot know whether it
    // holds the lock, computes anyway — and must not leave a lock behind that makes every
    // other process wait a lease.
    proxy.drop_after_matching(" NX ", 2);
    let started = Instant::now();
    assert_eq!(locked_twice(1).await, 2);
    let took = started.elapsed();
    println!("two lost SET NX replies: call took {took:?}");
    assert_eq!(proxy.dropped(), 2, "both replies were dropped");
    let key = locked_twice_key(&1).unwrap();
    common::eventually(Duration::from_secs(2), "the lock is released", || async {
        !exists(&server, &format!("{key}:lock")).await
    })
    .await;
    assert!(took < LEASE / 5, "{took:?}");
}
