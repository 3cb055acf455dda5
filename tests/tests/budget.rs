//! One Redis-wait budget per call (issue 12 point 8, issue 15 "tight budget tests"), against a
//! real redis-server behind `CLIENT PAUSE` or a delaying proxy: with a 1 s operation timeout,
//! every miss — plain, after another caller's flight, locked, tagged, repairing, with a slow
//! read before the write — waits on Redis for at most 1 s in total, whatever number of Redis
//! operations it makes. Bounds are the budget plus the bodies plus [`SLACK`]; each scenario is
//! built so that a second budget (a fresh timeout for a later operation) would exceed it.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::{FaultProxy, RedisServer};

/// The operation timeout, i.e. the per-call budget.
const BUDGET: Duration = Duration::from_secs(1);
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(400);

/// Installs `cache` against `url` with [`BUDGET`] and a breaker that stays closed (these tests
/// count timeouts, not the breaker).
fn install(cache: &'static Cache, url: &str) {
    cache
        .install(
            Config::builder()
                .url(url)
                .namespace("t")
                .op_timeout(BUDGET)
                .breaker_threshold(1000)
                .build()
                .expect("valid config"),
        )
        .expect("cache installed once");
}

/// `CLIENT PAUSE ms WRITE`: reads are served, writes (and scripts) wait.
async fn pause_writes(server: &RedisServer, pause: Duration) {
    let mut c = server.conn().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .arg("WRITE")
        .query_async(&mut c)
        .await
        .expect("CLIENT PAUSE WRITE");
}

async fn timed<F: std::future::Future>(f: F) -> (F::Output, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_read_after_another_callers_flight_is_charged_to_the_same_budget() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server.url());
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn quick(x: u64) -> u64 {
        x * 2
    }
    assert_eq!(quick(0).await, 0, "connected before the pause");

    // A's read times out at 1 s, its body returns at once and its flight ends; B, 200 ms
    // behind, times out later, finds the flight over and leads a new one — whose re-read used
    // to get a fresh second.
    server.pause(Duration::from_millis(3000));
    let a = tokio::spawn(timed(quick(1)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (b, b_took) = timed(quick(1)).await;
    let (a, a_took) = a.await.expect("no panic");
    println!("paused: A {a_took:?}, B {b_took:?}");
    assert_eq!((a, b), (2, 2), "fail-open: the bodies' values");
    assert!(a_took < BUDGET + SLACK, "A: {a_took:?}");
    assert!(
        b_took < BUDGET + SLACK,
        "B waited on Redis twice: {b_took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_follower_does_not_read_again() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server.url());
    const BODY: Duration = Duration::from_millis(200);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn failing(x: u64) -> Result<u64, String> {
        tokio::time::sleep(BODY).await;
        if x == 0 {
            return Ok(0);
        }
        Err("down".into())
    }
    assert_eq!(failing(0).await, Ok(0), "connected before the pause");

    // Both reads time out together; one caller leads, its `Err` releases the other, which
    // runs its own body — without reading Redis again (it used to, with a fresh budget).
    server.pause(Duration::from_millis(3500));
    let started = Instant::now();
    let a = tokio::spawn(failing(1));
    let b = tokio::spawn(failing(1));
    assert_eq!(a.await.expect("no panic"), Err("down".into()));
    assert_eq!(b.await.expect("no panic"), Err("down".into()));
    let took = started.elapsed();
    println!("paused, Err body: both callers done in {took:?}");
    assert!(
        took < BUDGET + BODY * 2 + SLACK,
        "one budget and two bodies: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_miss_under_a_write_pause_charges_the_lock_to_the_budget() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server.url());
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, lock = true)]
    async fn locked(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 2
    }
    assert_eq!(locked(0).await, 0, "connected before the pause");

    // The read is served; `SET … NX` waits (it used to get its own full timeout, then the
    // write another).
    pause_writes(&server, Duration::from_millis(3000)).await;
    let (v, took) = timed(locked(1)).await;
    println!("write-paused, lock = true: {took:?}");
    assert_eq!(v, 2);
    assert_eq!(RUNS.load(SeqCst), 2, "the body ran once for this call");
    assert!(took < BUDGET + SLACK, "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_miss_records_its_tags_within_the_budget() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(&server);
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &proxy.url());
    #[redis_cache(cache = CACHE, ttl = 60, tags = ["group:{x}"])]
    async fn tagged(x: u64) -> u64 {
        x * 2
    }
    assert_eq!(tagged(0).await, 0, "connected (and the tag script loaded)");

    // A slow read (600 ms, then a miss), a fast write and a tag script that takes 3 s: the
    // bookkeeping gets what is left (400 ms), not a fresh second after the write.
    proxy.delay_matching("GET", Duration::from_millis(600), 1);
    proxy.delay_matching("EVALSHA", Duration::from_secs(3), 1);
    let (v, took) = timed(tagged(1)).await;
    println!("slow read, hung tag script: {took:?}");
    assert_eq!(v, 2);
    assert_eq!(proxy.delayed(), 2, "both delays applied");
    assert!(took < BUDGET + SLACK, "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_read_leaves_the_write_only_the_rest_of_the_budget() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(&server);
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &proxy.url());
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn plain(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 2
    }
    assert_eq!(plain(0).await, 0, "connected");

    // The read succeeds after 700 ms; the write would take 3 s: it gets 300 ms.
    proxy.delay_matching("GET", Duration::from_millis(700), 1);
    proxy.delay_matching("SET", Duration::from_secs(3), 1);
    let (v, took) = timed(plain(1)).await;
    println!("slow read, hung write: {took:?}");
    assert_eq!(v, 2);
    assert!(took >= Duration::from_millis(700), "the read was delayed");
    assert!(took < BUDGET + SLACK, "{took:?}");
    assert_eq!(RUNS.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repairing_miss_repairs_within_the_budget() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(&server);
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &proxy.url());
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn repaired(x: u64) -> u64 {
        x * 2
    }
    assert_eq!(repaired(0).await, 0, "connected");
    let key = repaired_key(&1).unwrap();
    let mut c = server.conn().await;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(b"not an entry".as_slice())
        .query_async(&mut c)
        .await
        .unwrap();

    // The read (700 ms) finds the corrupt entry; the write hangs: neither it nor the repair
    // behind it may wait beyond the budget.
    proxy.delay_matching("GET", Duration::from_millis(700), 1);
    proxy.delay_matching("SET", Duration::from_secs(3), 1);
    let (v, took) = timed(repaired(1)).await;
    println!("corrupt entry, slow read, hung write: {took:?}");
    assert_eq!(v, 2);
    assert!(took < BUDGET + SLACK, "{took:?}");
}
