//! Outcome accounting against real servers, read through `memo_redis::stats()`: every call ends
//! as exactly one of hit, miss, bypass or error (`error` = the read failed, or the write of the
//! body's result after a miss failed or was refused), and `skipped_too_large` counts results
//! returned but not stored.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{fill_until_oom, stats_of};
use memo_redis::{redis_cache, Cache, CodecKind, Config, Stats};
use memo_redis_tests::RedisServer;

const OP_TIMEOUT: Duration = Duration::from_millis(300);
/// Upper bound of every "wait until" loop.
const DEADLINE: Duration = Duration::from_secs(10);

fn config(server: &RedisServer) -> memo_redis::ConfigBuilder {
    Config::builder().url(server.url()).op_timeout(OP_TIMEOUT)
}

/// `(hits, misses, bypass, errors, skipped_too_large)`, for compact assertions.
fn tuple(s: Stats) -> (u64, u64, u64, u64, u64) {
    (s.hits, s.misses, s.bypass, s.errors, s.skipped_too_large)
}

async fn exists(server: &RedisServer, key: &str) -> bool {
    let mut conn = server.conn().await;
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_then_hit() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE.install(config(&server).build().unwrap()).unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn counted(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x + 1
    }
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn never_ok(x: u64) -> Result<u64, String> {
        RUNS.fetch_add(1, SeqCst);
        Err(format!("no {x}"))
    }

    let before = memo_redis::stats();
    assert!(
        before.iter().all(|f| !f.function.ends_with("::counted")),
        "a function appears in stats() once it has been called: {before:?}"
    );
    assert_eq!(counted(1).await, 2);
    assert_eq!(tuple(stats_of("counted")), (0, 1, 0, 0, 0));
    assert_eq!(counted(1).await, 2);
    let s = stats_of("counted");
    assert_eq!(tuple(s), (1, 1, 0, 0, 0), "{s:?}");
    assert_eq!(s.calls(), 2);
    assert!((s.hit_ratio() - 0.5).abs() < f64::EPSILON);
    assert!(memo_redis::stats()
        .iter()
        .any(|f| f.function == format!("{}::counted", module_path!())));

    // Errors are never cached: each call is a miss (the body runs, nothing is written).
    for _ in 0..3 {
        assert_eq!(never_ok(5).await, Err("no 5".to_string()));
    }
    assert_eq!(tuple(stats_of("never_ok")), (0, 3, 0, 0, 0));
    assert_eq!(RUNS.load(SeqCst), 4);
    assert!(!exists(&server, &never_ok_key(&5).unwrap()).await);
    // The companions do not count as calls.
    assert_eq!(counted_peek(&1).await.unwrap(), Some(2));
    assert!(counted_evict(&1).await.unwrap());
    assert_eq!(tuple(stats_of("counted")), (1, 1, 0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_errors_until_the_breaker_opens_then_bypass() {
    const THRESHOLD: u64 = 3;
    const COOLDOWN: Duration = Duration::from_millis(1500);
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            config(&server)
                .breaker_threshold(THRESHOLD as u32)
                .breaker_cooldown(COOLDOWN)
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn breaker_fn(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 2
    }

    // Connected, one entry stored.
    assert_eq!(breaker_fn(1).await, 2);
    assert_eq!(breaker_fn(1).await, 2);
    assert_eq!(tuple(stats_of("breaker_fn")), (1, 1, 0, 0, 0));
    assert!(!CACHE.breaker_open());

    server.kill();
    const DOWN_CALLS: u64 = 10;
    let mut opened_after = None;
    let mut bypass_started = None;
    for i in 0..DOWN_CALLS {
        // The stored key 1 too: nothing may be served while Redis is gone.
        let x = i % 3;
        assert_eq!(breaker_fn(x).await, x * 2, "call {i}");
        if CACHE.breaker_open() && opened_after.is_none() {
            opened_after = Some(i + 1);
            bypass_started = Some(Instant::now());
        }
    }
    let bypass_took = bypass_started.map(|t| t.elapsed());
    let s = stats_of("breaker_fn");
    assert_eq!(
        opened_after,
        Some(THRESHOLD),
        "the breaker opens at the {THRESHOLD}rd failed read: {s:?}"
    );
    assert!(
        bypass_took.is_some_and(|t| t < COOLDOWN),
        "the bypassed calls took {bypass_took:?}, longer than the cooldown {COOLDOWN:?}: a probe \
         may have run, so the counts below would not be exact"
    );
    assert_eq!(
        tuple(s),
        (1, 1, DOWN_CALLS - THRESHOLD, THRESHOLD, 0),
        "errors until the breaker opens, then bypass"
    );
    assert_eq!(
        RUNS.load(SeqCst),
        1 + DOWN_CALLS,
        "the body ran on every call"
    );
    assert!(CACHE.breaker_open());

    // Back up: after the cooldown a probe closes the breaker and hits resume.
    server.restart();
    let started = Instant::now();
    let mut calls = 2 + DOWN_CALLS;
    loop {
        assert_eq!(breaker_fn(7).await, 14);
        calls += 1;
        if !CACHE.breaker_open() && stats_of("breaker_fn").hits > 1 {
            break;
        }
        assert!(
            started.elapsed() < COOLDOWN + DEADLINE,
            "no hit after the restart: {:?}",
            stats_of("breaker_fn")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = stats_of("breaker_fn");
    assert_eq!(s.calls(), calls, "every call counted exactly once: {s:?}");
    assert!(!CACHE.breaker_open());
    eprintln!(
        "breaker: {s:?}; closed and hitting {:?} after the restart",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_server_write_failures_are_errors() {
    // `maxmemory 1mb` is set by `fill`, once the data is in.
    let server = RedisServer::builder()
        .args(["--maxmemory-policy", "noeviction"])
        .start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(&server).breaker_threshold(3).build().unwrap())
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn oom_fn(x: u64) -> String {
        RUNS.fetch_add(1, SeqCst);
        format!("value-{x}")
    }

    assert_eq!(oom_fn(0).await, "value-0"); // stored while there is room
    fill_until_oom(&server).await;

    const CALLS: u64 = 10;
    for x in 1..=CALLS {
        assert_eq!(oom_fn(x).await, format!("value-{x}"));
        assert_eq!(oom_fn(0).await, "value-0", "the old entry still hits");
    }
    let s = stats_of("oom_fn");
    assert_eq!(
        tuple(s),
        (CALLS, 1, 0, CALLS, 0),
        "the refused writes (OOM) are errors, the old entry hits: {s:?}"
    );
    assert_eq!(RUNS.load(SeqCst), 1 + CALLS);
    for x in 1..=CALLS {
        assert!(!exists(&server, &oom_fn_key(&x).unwrap()).await);
    }
    assert!(
        !CACHE.breaker_open(),
        "reads succeed between the failed writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_over_max_value_bytes_are_returned_not_stored() {
    const MAX: usize = 1024;
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(&server).max_value_bytes(MAX).build().unwrap())
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    // JSON of n ASCII letters is exactly n + 2 bytes: the limit can be hit to the byte.
    #[redis_cache(cache = CACHE, ttl = 60, codec = json)]
    async fn sized(n: usize) -> String {
        RUNS.fetch_add(1, SeqCst);
        "a".repeat(n)
    }
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn big_blob(n: usize) -> Vec<u8> {
        RUNS.fetch_add(1, SeqCst);
        vec![7; n]
    }
    assert_eq!(CACHE.config().unwrap().max_value_bytes(), MAX);
    assert_eq!(CACHE.config().unwrap().codec(), CodecKind::Bincode);

    // Exactly at the limit: stored, and read back (the read-side bound agrees).
    for _ in 0..2 {
        assert_eq!(sized(MAX - 2).await.len(), MAX - 2);
    }
    assert_eq!(tuple(stats_of("sized")), (1, 1, 0, 0, 0));
    assert!(exists(&server, &sized_key(&(MAX - 2)).unwrap()).await);
    // One byte over: returned every time, never stored.
    for _ in 0..3 {
        assert_eq!(sized(MAX - 1).await.len(), MAX - 1);
    }
    assert_eq!(tuple(stats_of("sized")), (1, 4, 0, 0, 3));
    assert!(!exists(&server, &sized_key(&(MAX - 1)).unwrap()).await);

    for _ in 0..2 {
        assert_eq!(big_blob(64 * 1024).await, vec![7; 64 * 1024]);
    }
    assert_eq!(big_blob(16).await, vec![7; 16]);
    assert_eq!(big_blob(16).await, vec![7; 16]);
    assert_eq!(tuple(stats_of("big_blob")), (1, 3, 0, 0, 2));
    assert!(!exists(&server, &big_blob_key(&(64 * 1024)).unwrap()).await);
    assert_eq!(RUNS.load(SeqCst), 1 + 3 + 3);
    // The `refresh` companion respects the limit too, and is not a call. (Its skip is counted
    // on the companion's own, unregistered spec, so `skipped_too_large` is not asserted here.)
    assert_eq!(sized_refresh(MAX + 10).await.len(), MAX + 10);
    assert!(!exists(&server, &sized_key(&(MAX + 10)).unwrap()).await);
    assert_eq!(stats_of("sized").calls(), 5);
}

/// Regression: a write refused with `OOM` used to count as a circuit-breaker failure, so
/// concurrent misses on a full `noeviction` server opened the breaker even though every read
/// succeeded, and calls that would be hits were bypassed (their bodies ran).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_server_concurrent_misses_keep_hits() {
    let server = RedisServer::builder()
        .args(["--maxmemory-policy", "noeviction"])
        .start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(&server).breaker_threshold(3).build().unwrap())
        .unwrap();
    static STORED_RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn oom_concurrent(x: u64) -> String {
        if x == 0 {
            STORED_RUNS.fetch_add(1, SeqCst);
        }
        tokio::task::yield_now().await;
        format!("value-{x}")
    }
    assert_eq!(oom_concurrent(0).await, "value-0"); // stored while there is room
    fill_until_oom(&server).await;

    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            tokio::spawn(async move {
                for i in 0..20u64 {
                    // Half the calls read the stored entry, half miss (and fail to write).
                    let x = if (t + i) % 2 == 0 { 0 } else { 1 + t * 100 + i };
                    assert_eq!(oom_concurrent(x).await, format!("value-{x}"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a calling task failed");
    }
    let s = stats_of("oom_concurrent");
    assert_eq!(
        (STORED_RUNS.load(SeqCst), s.bypass, s.hits),
        (1, 0, 160),
        "reads never failed, so the stored entry must keep hitting (only refused writes count as errors): {s:?}"
    );
}
