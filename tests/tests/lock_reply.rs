//! The cross-process lock when Redis fails around `SET … NX` (issue 12 point 7), against a real
//! redis-server behind a fault-injecting proxy: a lock holding our token is ours, and a lock
//! whose `SET` may have happened without us hearing the reply is released like a held one.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{exists, install_url};
use memo_redis::{redis_cache, Cache};
use memo_redis_tests::{FaultProxy, RedisCluster, RedisServer};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_redis_stalls_behind_a_foreign_lock_computes_within_the_budget() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(&server);
    static CACHE: Cache = Cache::from_env();
    install_url(&CACHE, &proxy.url());
    const OP_TIMEOUT: Duration = Duration::from_millis(300);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, lock = "60s")]
    async fn behind_foreign(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 2
    }
    assert_eq!(behind_foreign(0).await, 0, "connected");
    // Another process holds the lock for a minute.
    let key = behind_foreign_key(&1).unwrap();
    let lock_key = format!("{key}:lock");
    let mut c = server.conn().await;
    let _: () = redis::cmd("SET")
        .arg(&lock_key)
        .arg("someone-else")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut c)
        .await
        .unwrap();

    // Once our `SET … NX` has gone out (the call is about to wait), Redis stalls: the polls
    // must not wait beyond the call's budget, and the call computes.
    proxy.delay_matching(" NX ", Duration::ZERO, 1);
    let call = tokio::spawn(async {
        let started = Instant::now();
        (behind_foreign(1).await, started.elapsed())
    });
    common::eventually(
        Duration::from_secs(5),
        "the call tried the lock",
        || async { proxy.delayed() == 1 },
    )
    .await;
    server.pause(Duration::from_millis(2000));
    let (v, took) = call.await.expect("no panic");
    println!("waiter behind a foreign lock, Redis stalled: {took:?}");
    assert_eq!(v, 2);
    assert_eq!(RUNS.load(SeqCst), 2, "the waiter computed itself");
    assert!(took < OP_TIMEOUT + Duration::from_millis(400), "{took:?}");
    // Read back once the pause is over (commands time out while it lasts).
    let c = &c;
    let lock_key = &lock_key;
    common::eventually(
        Duration::from_secs(5),
        "the foreign lock is untouched",
        || async move {
            let mut c = c.clone();
            let holder: Result<Option<String>, _> =
                redis::cmd("GET").arg(lock_key).query_async(&mut c).await;
            match holder {
                Ok(holder) => {
                    assert_eq!(holder.as_deref(), Some("someone-else"));
                    true
                }
                Err(_) => false,
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipelined_lock_is_taken_on_a_cluster() {
    let cluster = RedisCluster::shared();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            memo_redis::Config::builder()
                .cluster(true)
                .url(cluster.url())
                .namespace("lock_reply")
                .op_timeout(Duration::from_secs(1))
                .connect_timeout(Duration::from_secs(2))
                .build()
                .expect("valid cluster config"),
        )
        .expect("cache installed once");
    static HELD: std::sync::Mutex<Option<Option<String>>> = std::sync::Mutex::new(None);
    static LOCK_KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    async fn lock_holder() -> Option<String> {
        let nodes: Vec<String> = RedisCluster::shared()
            .nodes()
            .iter()
            .map(|n| format!("redis://{}", n.addr()))
            .collect();
        let mut c = redis::cluster::ClusterClient::new(nodes)
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("cluster connection");
        redis::cmd("GET")
            .arg(LOCK_KEY.get().expect("set"))
            .query_async(&mut c)
            .await
            .expect("GET lock")
    }
    #[redis_cache(cache = CACHE, ttl = 60, lock = true)]
    async fn clustered(x: u64) -> u64 {
        *HELD.lock().unwrap() = Some(lock_holder().await);
        x * 2
    }
    let key = clustered_key(&(std::process::id() as u64)).unwrap();
    LOCK_KEY.set(format!("{key}:lock")).unwrap();
    assert_eq!(
        clustered(std::process::id() as u64).await,
        2 * std::process::id() as u64
    );
    let held = HELD.lock().unwrap().clone().expect("the body ran");
    assert!(
        held.is_some_and(|token| token.len() == 32),
        "the body ran holding the lock (SET NX + GET pipelined on the lock's slot)"
    );
    assert_eq!(lock_holder().await, None, "released after the write");
}
