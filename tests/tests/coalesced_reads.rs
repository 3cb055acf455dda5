//! Coalesced reads of a hot key (issue 17), against a real redis-server: concurrent callers of one
//! key share one `GET` in flight; callers of distinct keys each send their own; a cancelled
//! leader hands the read to a follower; a paused server costs the breaker one failure for the
//! shared read, not one per caller; a read sent before a write of its key (refresh, evict) is not shared after it.
//!
//! Each caller's future is polled once by hand before the next one starts, so the first has
//! registered its read (and sent its `GET`) when the others join it, and none of them can
//! finish before all have joined: the leader publishes only when it is polled again. The server
//! is paused (`CLIENT PAUSE`) while they are polled, so no reply can arrive during that first
//! poll either. `GET`s are counted by the server (`INFO commandstats`).

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::task::Poll;
use std::time::{Duration, Instant};

use common::info_counter;
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::RedisServer;

/// Callers per herd.
const N: usize = 20;
/// How long the server holds commands while the calls are polled once.
const HOLD: Duration = Duration::from_millis(300);

type Call<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Polls `call` once: it has read (or joined a read) and waits for Redis.
async fn poll_once<T: std::fmt::Debug>(call: &mut Call<T>) {
    std::future::poll_fn(|cx| {
        let p = call.as_mut().poll(cx);
        assert!(
            p.is_pending(),
            "the call waits for Redis after one poll: {p:?}"
        );
        Poll::Ready(())
    })
    .await;
}

/// Holds every command sent to `server` for a while (far longer than polling a few calls takes,
/// far shorter than their budgets, except where a test wants them to time out).
fn hold(server: &RedisServer, pause: Duration) {
    server.pause(pause);
}

/// Polls every call once, in order, then runs them all to completion concurrently.
async fn herd<T: Send + std::fmt::Debug + 'static>(mut calls: Vec<Call<T>>) -> Vec<T> {
    for call in &mut calls {
        poll_once(call).await;
    }
    let tasks: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("no call panics"));
    }
    out
}

async fn gets(server: &RedisServer) -> u64 {
    info_counter(server, "commandstats", "cmdstat_get:calls").await
}

fn install(cache: &'static Cache, server: &RedisServer, op_timeout: Duration, threshold: u32) {
    cache
        .install(
            Config::builder()
                .url(server.url())
                .namespace("t")
                .op_timeout(op_timeout)
                .breaker_threshold(threshold)
                .build()
                .expect("valid config"),
        )
        .expect("cache installed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_of_one_key_share_one_get() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server, Duration::from_secs(2), 5);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn hot(x: u64) -> String {
        RUNS.fetch_add(1, SeqCst);
        format!("value-{x}")
    }
    assert_eq!(hot(1).await, "value-1", "primed");
    let before = (gets(&server).await, hot_stats());

    let calls: Vec<Call<String>> = (0..N).map(|_| Box::pin(hot(1)) as Call<String>).collect();
    hold(&server, HOLD);
    for v in herd(calls).await {
        assert_eq!(v, "value-1");
    }
    let sent = gets(&server).await - before.0;
    let s = hot_stats();
    assert_eq!(sent, 1, "{N} concurrent callers of one key: one GET");
    assert_eq!(RUNS.load(SeqCst), 1, "no body ran after the priming miss");
    assert_eq!(
        (s.hits - before.1.hits, s.coalesced - before.1.coalesced),
        (N as u64, N as u64 - 1),
        "every caller counts its own hit; all but the leader were coalesced: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_of_distinct_keys_each_send_their_get() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server, Duration::from_secs(2), 5);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn cold(x: u64) -> u64 {
        x * 2
    }
    for x in 0..N as u64 {
        assert_eq!(cold(x).await, x * 2, "primed");
    }
    let before = (gets(&server).await, cold_stats());
    let calls: Vec<Call<u64>> = (0..N as u64)
        .map(|x| Box::pin(cold(x)) as Call<u64>)
        .collect();
    hold(&server, HOLD);
    let values = herd(calls).await;
    assert_eq!(values, (0..N as u64).map(|x| x * 2).collect::<Vec<_>>());
    let s = cold_stats();
    assert_eq!(
        gets(&server).await - before.0,
        N as u64,
        "one GET per distinct key"
    );
    assert_eq!(
        (s.hits - before.1.hits, s.coalesced - before.1.coalesced),
        (N as u64, 0),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_hands_the_read_to_a_follower() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server, Duration::from_secs(2), 5);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn abandoned(x: u64) -> String {
        RUNS.fetch_add(1, SeqCst);
        format!("value-{x}")
    }
    assert_eq!(abandoned(1).await, "value-1", "primed");
    let before = gets(&server).await;

    let mut leader: Call<String> = Box::pin(abandoned(1));
    hold(&server, HOLD);
    poll_once(&mut leader).await;
    let mut followers: Vec<Call<String>> = (0..N)
        .map(|_| Box::pin(abandoned(1)) as Call<String>)
        .collect();
    for f in &mut followers {
        poll_once(f).await;
    }
    // The leader's caller gives up (a timeout, a dropped request): its future is dropped.
    drop(leader);
    let tasks: Vec<_> = followers.into_iter().map(tokio::spawn).collect();
    for t in tasks {
        assert_eq!(t.await.expect("no follower panics"), "value-1");
    }
    assert_eq!(RUNS.load(SeqCst), 1, "the followers got hits, no body ran");
    let sent = gets(&server).await - before;
    // redis-rs does not send a request whose caller is gone if it has not written it yet.
    assert!(
        (1..=2).contains(&sent),
        "the abandoned GET (if it went out), and one more for all {N} followers: {sent}"
    );
    let s = abandoned_stats();
    assert_eq!(s.hits, N as u64, "{s:?}");
    assert_eq!(s.coalesced, N as u64 - 1, "{s:?}");
    assert_eq!(CACHE.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_costs_the_breaker_one_failure_per_shared_read() {
    const BUDGET: Duration = Duration::from_millis(300);
    const SLACK: Duration = Duration::from_millis(400);
    const BODY: Duration = Duration::from_millis(200);
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    // Three failures open the breaker: one per caller would.
    install(&CACHE, &server, BUDGET, 3);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn paused(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        // Long enough for the callers whose read failed to join the first one's flight.
        tokio::time::sleep(BODY).await;
        x * 2
    }
    assert_eq!(paused(0).await, 0, "connected before the pause");
    RUNS.store(0, SeqCst);

    hold(&server, Duration::from_millis(1500));
    let started = Instant::now();
    let calls: Vec<Call<(u64, Duration)>> = (0..N)
        .map(|_| {
            Box::pin(async move {
                let v = paused(21).await;
                (v, started.elapsed())
            }) as Call<(u64, Duration)>
        })
        .collect();
    for (v, took) in herd(calls).await {
        assert_eq!(v, 42, "fail-open: the body's value");
        assert!(
            took < BUDGET + BODY + SLACK,
            "bounded by the budget and one body: {took:?}"
        );
    }
    assert_eq!(
        RUNS.load(SeqCst),
        1,
        "the failed read's herd shares one run"
    );
    assert!(
        !CACHE.breaker_open(),
        "{N} callers timed out on one shared GET: one failure, the breaker stays closed"
    );
    let s = paused_stats();
    assert_eq!((s.errors, s.hits), (1, N as u64 - 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_sent_before_a_write_of_its_key_is_not_shared_after_it() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server, Duration::from_secs(2), 5);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn versioned(x: u64) -> String {
        let run = RUNS.fetch_add(1, SeqCst);
        format!("value-{x}-run-{run}")
    }
    assert_eq!(versioned(1).await, "value-1-run-0", "primed");

    // Two writes through the cache: `refresh` (a `SET` of the key) and `evict` (a `DEL`, then
    // an invalidation event published).
    for (write, expected) in ["refresh", "evict"].into_iter().zip([1, 2]) {
        let before = RUNS.load(SeqCst);
        // A read of the current entry is in flight (sent, its caller not polled again) …
        let mut old: Call<String> = Box::pin(versioned(1));
        hold(&server, HOLD);
        poll_once(&mut old).await;
        // … while this task writes the key and then calls: its call began after the write, so
        // it must not be served the reply of a read sent before it.
        match write {
            "refresh" => {
                assert_eq!(versioned_refresh(1).await, "value-1-run-1");
            }
            _ => assert!(
                versioned_evict(&1).await.expect("evict"),
                "the entry existed"
            ),
        }
        let mut new: Call<String> = Box::pin(versioned(1));
        hold(&server, HOLD);
        poll_once(&mut new).await;
        let old = tokio::spawn(old);
        assert_eq!(
            new.await,
            format!("value-1-run-{expected}"),
            "after {write}: the value as of the write"
        );
        assert_eq!(
            old.await.expect("no panic"),
            format!("value-1-run-{}", before - 1),
            "the earlier read keeps its own reply"
        );
    }
    let s = versioned_stats();
    assert_eq!((s.misses, s.hits, s.errors), (2, 3, 0), "{s:?}");
}
