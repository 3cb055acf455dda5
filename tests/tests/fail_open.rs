//! Fail-open against real failures: no server, a server that never answers, a server killed,
//! paused, out of memory or rejecting our password, and an invalid configuration. Every call must
//! return the body's correct result within the operation timeout (plus a margin), and the cache
//! must come back by itself once Redis does.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fill_until_oom;
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::{free_port_url, Blackhole, RedisServer};

const OP_TIMEOUT: Duration = Duration::from_millis(200);
/// Scheduling slack on a loaded 2-core machine; the breaker makes most calls far faster.
const MARGIN: Duration = Duration::from_millis(500);
/// Upper bound of every "wait until" loop.
const DEADLINE: Duration = Duration::from_secs(10);

fn config(url: &str) -> memo_redis::ConfigBuilder {
    Config::builder().url(url).op_timeout(OP_TIMEOUT)
}

/// Runs `fut`, returning its output and how long it took.
async fn timed<F: Future>(fut: F) -> (F::Output, Duration) {
    let started = Instant::now();
    let out = fut.await;
    (out, started.elapsed())
}

fn assert_bounded(elapsed: Duration, what: &str) {
    assert!(
        elapsed < OP_TIMEOUT + MARGIN,
        "{what} took {elapsed:?}, more than op_timeout {OP_TIMEOUT:?} + {MARGIN:?}"
    );
}

fn deadline_check(started: Instant, what: &str) {
    assert!(
        started.elapsed() < DEADLINE,
        "timed out after {DEADLINE:?} waiting for {what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_never_started() {
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(&free_port_url()).build().unwrap())
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn nothing_listens(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 2
    }

    let mut slowest = Duration::ZERO;
    for i in 0..50u64 {
        let x = i % 5; // the same arguments again and again: nothing may be served stale
        let (v, took) = timed(nothing_listens(x)).await;
        assert_eq!(v, x * 2, "call {i}");
        assert_bounded(took, &format!("call {i}"));
        slowest = slowest.max(took);
    }
    assert_eq!(RUNS.load(SeqCst), 50, "the body runs on every call");
    assert!(CACHE.breaker_open(), "refused connections open the breaker");
    assert!(nothing_listens_evict(&1).await.is_err());
    eprintln!("redis_never_started: slowest call {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_times_out_then_breaker_bypasses() {
    let hole = Blackhole::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            config(&hole.url())
                .breaker_threshold(3)
                // No probe while the bypassed calls below are measured.
                .breaker_cooldown(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn into_the_void(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x + 7
    }

    let mut calls = 0u64;
    let mut slowest = Duration::ZERO;
    while !CACHE.breaker_open() {
        assert!(
            calls < 20,
            "breaker still closed after {calls} timed-out calls"
        );
        let (v, took) = timed(into_the_void(calls)).await;
        assert_eq!(v, calls + 7);
        assert_bounded(took, &format!("call {calls} before the breaker opened"));
        slowest = slowest.max(took);
        calls += 1;
    }
    assert!(calls >= 3, "breaker opened after only {calls} calls");
    assert!(
        hole.accepted() >= 1,
        "the client did connect to the blackhole"
    );

    let mut bypass_slowest = Duration::ZERO;
    for i in 0..20u64 {
        let (v, took) = timed(into_the_void(i)).await;
        assert_eq!(v, i + 7);
        // A call that touched the blackhole would wait out the whole operation timeout; a
        // bypassed one is an atomic load and a clock read, so anything below the timeout is
        // scheduling noise, not I/O.
        assert!(
            took < OP_TIMEOUT,
            "bypassed call {i} took {took:?}: did it wait on the blackhole?"
        );
        bypass_slowest = bypass_slowest.max(took);
    }
    assert_eq!(RUNS.load(SeqCst), calls + 20, "the body runs on every call");
    eprintln!(
        "blackhole: {calls} timed-out calls, slowest {slowest:?}; slowest bypassed {bypass_slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_run_then_restarted() {
    const TASKS: u64 = 64;
    const KEYS: u64 = 1024;
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            config(&server.url())
                .breaker_threshold(3)
                .breaker_cooldown(Duration::from_millis(200))
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn survivor(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 3 + 1
    }

    let calls = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (calls, stop) = (Arc::clone(&calls), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut seed = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut slowest = Duration::ZERO;
            while !stop.load(SeqCst) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let x = seed % KEYS;
                let (v, took) = timed(survivor(x)).await;
                assert_eq!(v, x * 3 + 1, "task {t}: wrong value for {x}");
                assert_bounded(took, &format!("task {t}, call for {x}"));
                slowest = slowest.max(took);
                calls.fetch_add(1, SeqCst);
                tokio::task::yield_now().await;
            }
            slowest
        }));
    }

    let started = Instant::now();
    while calls.load(SeqCst) < 2000 {
        deadline_check(started, "2000 calls before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before_kill = calls.load(SeqCst);
    let runs_before_kill = RUNS.load(SeqCst);
    assert!(
        runs_before_kill < before_kill,
        "some calls before the kill were hits ({runs_before_kill} runs for {before_kill} calls)"
    );
    server.kill();
    let killed_at = calls.load(SeqCst);
    let started = Instant::now();
    while calls.load(SeqCst) < killed_at + 2000 || !CACHE.breaker_open() {
        deadline_check(started, "2000 calls after the kill and an open breaker");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, SeqCst);
    let mut slowest = Duration::ZERO;
    for task in tasks {
        slowest = slowest.max(task.await.expect("a calling task failed"));
    }
    let total = calls.load(SeqCst);

    // Same port, empty data set, same process: the cache must find its way back.
    server.restart();
    let started = Instant::now();
    let mut probe = 1_000_000u64;
    let mut attempts = 0;
    loop {
        probe += 1;
        attempts += 1;
        assert_eq!(survivor(probe).await, probe * 3 + 1);
        let runs = RUNS.load(SeqCst);
        assert_eq!(survivor(probe).await, probe * 3 + 1);
        if RUNS.load(SeqCst) == runs {
            break; // a hit on an entry written after the restart
        }
        deadline_check(started, "a cache hit after the restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered_in = started.elapsed();
    let mut conn = server.conn().await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(survivor_key(&probe).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        exists,
        "the entry written after the restart is in the new server"
    );
    assert!(!CACHE.breaker_open());
    eprintln!(
        "killed_mid_run: {total} calls ({before_kill} before the kill), slowest {slowest:?}; \
         recovered {recovered_in:?} after restart ({attempts} attempts)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_sends_nothing_to_redis() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            config(&server.url())
                .breaker_threshold(3)
                // No probe during the test, however slow the machine.
                .breaker_cooldown(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn guarded(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x + 1
    }
    assert_eq!(guarded(1).await, 2);
    server.kill();
    let started = Instant::now();
    let mut x = 1;
    while !CACHE.breaker_open() {
        deadline_check(started, "the breaker to open");
        x += 1;
        assert_eq!(guarded(x).await, x + 1);
    }

    // Redis is back (a fresh server on the same port, its counters at zero), the breaker is
    // still open: the calls run their bodies and send nothing.
    server.restart();
    // The harness's own readiness check is all the fresh server has run.
    let baseline = common::data_commands(&server).await;
    const CALLS: u64 = 50;
    let bypass = common::stats_of("guarded").bypass;
    let runs = RUNS.load(SeqCst);
    for i in 0..CALLS {
        assert_eq!(guarded(i).await, i + 1);
    }
    assert!(CACHE.breaker_open());
    assert_eq!(RUNS.load(SeqCst), runs + CALLS, "every call ran its body");
    assert_eq!(common::stats_of("guarded").bypass, bypass + CALLS);
    assert_eq!(
        common::data_commands(&server).await,
        baseline,
        "no command reached Redis while the breaker was open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_then_resumed() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            config(&server.url())
                .breaker_threshold(3)
                .breaker_cooldown(Duration::from_millis(200))
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn patient(x: u64) -> String {
        RUNS.fetch_add(1, SeqCst);
        format!("patient-{x}")
    }

    // Connected and cached before the pause.
    assert_eq!(patient(1).await, "patient-1");
    assert_eq!(patient(1).await, "patient-1");
    assert_eq!(RUNS.load(SeqCst), 1);

    let pause = Duration::from_millis(1500);
    server.pause(pause);
    let paused_at = Instant::now();
    let mut during = 0u64;
    let mut slowest = Duration::ZERO;
    let mut breaker_opened = false;
    let mut fast_while_open = 0u32;
    // Stop early enough that no call straddles the end of the pause.
    while paused_at.elapsed() + OP_TIMEOUT * 2 < pause {
        for x in [1, during + 2] {
            let open_before = CACHE.breaker_open();
            let bypassed_before = common::stats_of("patient").bypass;
            let (v, took) = timed(patient(x)).await;
            assert_eq!(v, format!("patient-{x}"));
            assert_bounded(took, &format!("call for {x} during the pause"));
            slowest = slowest.max(took);
            breaker_opened |= CACHE.breaker_open();
            // A bypass is counted only on the path that skips Redis altogether (no read, no
            // write); that it sends nothing is checked against the server in
            // `an_open_breaker_sends_nothing_to_redis`.
            if open_before && common::stats_of("patient").bypass == bypassed_before + 1 {
                fast_while_open += 1;
            }
        }
        during += 1;
    }
    assert!(during >= 1);
    assert!(breaker_opened, "timeouts during the pause open the breaker");
    assert!(
        fast_while_open >= 1,
        "once the breaker is open, calls stop waiting on the paused server"
    );
    let runs_after_pause = RUNS.load(SeqCst);
    assert!(
        runs_after_pause > 1 + during,
        "the cached key 1 was recomputed during the pause ({runs_after_pause} runs, {during} rounds)"
    );

    let started = Instant::now();
    loop {
        let runs = RUNS.load(SeqCst);
        assert_eq!(patient(1).await, "patient-1");
        if RUNS.load(SeqCst) == runs {
            break; // a hit again
        }
        deadline_check(started, "hits after the pause");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "paused: {during} rounds during the pause, slowest {slowest:?}; hits again {:?} after \
         the pause started",
        paused_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_noeviction() {
    // `maxmemory 1mb` is set once the data is in (see below).
    let server = RedisServer::builder()
        .arg("--maxmemory-policy")
        .arg("noeviction")
        .start();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(&server.url()).build().unwrap())
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn full(x: u64) -> Vec<u64> {
        RUNS.fetch_add(1, SeqCst);
        (0..x).collect()
    }
    // Stored while there is room; must stay a hit once the server is full.
    assert_eq!(full(99).await, (0..99).collect::<Vec<_>>());
    assert_eq!(RUNS.load(SeqCst), 1);

    // About 3 MiB of data, then a 1 MiB limit: megabytes over it. A server filled only to just
    // over the limit could make room again when memory is freed later (a client's query buffer
    // shrinking, on the server's own schedule), and then store what the test says it cannot.
    fill_until_oom(&server).await;
    let mut conn = server.conn().await;

    let mut slowest = Duration::ZERO;
    for i in 0..30u64 {
        let x = i % 3;
        let (v, took) = timed(full(x)).await;
        assert_eq!(v, (0..x).collect::<Vec<_>>());
        assert_bounded(took, &format!("call {i}"));
        slowest = slowest.max(took);
        let (v, took) = timed(full(99)).await;
        assert_eq!(v, (0..99).collect::<Vec<_>>());
        assert_bounded(took, &format!("call {i} for the stored entry"));
    }
    assert_eq!(
        RUNS.load(SeqCst),
        31,
        "nothing new could be stored; the entry stored before stayed a hit"
    );
    for x in 0..3u64 {
        let exists: bool = redis::cmd("EXISTS")
            .arg(full_key(&x).unwrap())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!exists);
    }
    eprintln!("out_of_memory: slowest call {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password() {
    let server = RedisServer::start();
    // Set the password at run time: the harness's readiness probe does not authenticate, so a
    // server started with `--requirepass` is never seen as ready.
    let mut admin = server.conn().await;
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("secret")
        .query_async(&mut admin)
        .await
        .unwrap();

    let wrong = format!("redis://:not-the-password@{}/", server.addr());
    static CACHE: Cache = Cache::from_env();
    CACHE.install(config(&wrong).build().unwrap()).unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn guarded(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x ^ 0xFF
    }

    let mut slowest = Duration::ZERO;
    for i in 0..20u64 {
        let x = i % 2;
        let (v, took) = timed(guarded(x)).await;
        assert_eq!(v, x ^ 0xFF);
        assert_bounded(took, &format!("call {i}"));
        slowest = slowest.max(took);
    }
    assert_eq!(RUNS.load(SeqCst), 20);
    assert!(!format!("{CACHE:?}").contains("not-the-password"));

    let right = redis::Client::open(format!("redis://:secret@{}/", server.addr())).unwrap();
    let mut conn = right.get_multiplexed_async_connection().await.unwrap();
    let size: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(size, 0, "nothing was written with the wrong password");
    eprintln!("wrong_password: slowest call {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration() {
    static BAD: Cache = Cache::lazy(|| Config::builder().url("http://nope").build());
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = BAD, ttl = 60)]
    async fn misconfigured(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x + 1
    }

    for i in 0..10u64 {
        let (v, took) = timed(misconfigured(i % 2)).await;
        assert_eq!(v, i % 2 + 1);
        assert_bounded(took, &format!("call {i}"));
    }
    assert_eq!(RUNS.load(SeqCst), 10, "the body runs on every call");
    let err = BAD.config_error().expect("the configuration is invalid");
    assert!(err.to_string().contains("REDIS_URL"), "{err}");
    assert!(BAD.config().is_none());
    assert!(!BAD.breaker_open());
    assert!(misconfigured_key(&1).is_err());
    assert!(misconfigured_evict(&1).await.is_err());
    assert!(misconfigured_peek(&1).await.is_err());
    assert_eq!(misconfigured_refresh(4).await, 5);
    assert!(BAD.shutdown(Duration::from_secs(1)).await);
}
