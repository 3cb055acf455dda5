//! Freshness features against a real redis-server: stale-while-revalidate (`stale`), XFetch
//! early refresh (`early_refresh`), sliding expiry (`sliding`), TTL `jitter`, `none_ttl`, and the
//! cross-process `lock` taking over from a holder whose result was not stored.
//!
//! Bodies record whether they ran inside a caller (the `IN_CALL` task-local, set around every
//! call the tests make) or in a background refresh task, so "no call waited for the body" is
//! asserted directly rather than inferred from timings alone.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, exists, install, pttl, stats_of, wait_gone};
use memo_redis::{redis_cache, Cache};
use memo_redis_tests::RedisServer;
use tokio::sync::Barrier;

/// Upper bound of every "wait until" loop.
const DEADLINE: Duration = Duration::from_secs(5);

tokio::task_local! {
    /// Set around every call a test makes; unset in background refresh tasks.
    static IN_CALL: ();
}

/// Counts a body run as a caller's (`foreground`) or a background refresh's.
fn note_run(foreground: &AtomicU32, background: &AtomicU32) {
    if IN_CALL.try_with(|_| ()).is_ok() {
        foreground.fetch_add(1, SeqCst);
    } else {
        background.fetch_add(1, SeqCst);
    }
}

/// Milliseconds since `t`, rounded up.
fn ms_since(t: Instant) -> i64 {
    ms(t.elapsed()) + 1
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Awaits `fut` as a caller, returning its output and how long it took.
async fn timed<F: std::future::Future>(fut: F) -> (F::Output, Duration) {
    let started = Instant::now();
    let out = IN_CALL.scope((), fut).await;
    (out, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    // Long enough that "did not wait for the body" (< BODY / 2) leaves room for 20 concurrent
    // calls to be scheduled on a loaded 2-core machine.
    const BODY: Duration = Duration::from_secs(1);
    static VERSION: AtomicU64 = AtomicU64::new(0);
    static FG: AtomicU32 = AtomicU32::new(0);
    static BG: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = "500ms", stale = "5s")]
    async fn swr_version(x: u64) -> (u64, u64) {
        note_run(&FG, &BG);
        let v = VERSION.fetch_add(1, SeqCst) + 1;
        tokio::time::sleep(BODY).await;
        (x, v)
    }

    let called = Instant::now();
    let ((_, v), took) = timed(swr_version(1)).await;
    assert_eq!(v, 1);
    assert!(took >= BODY, "the first call is a miss and waits: {took:?}");
    let key = swr_version_key(&1).unwrap();
    let px = pttl(&server, &key).await;
    // Written after the body, so it has lost less than the time since the call began, less the
    // body's duration.
    let floor = 5_500 - ms_since(called) + ms(BODY);
    assert!(
        px >= floor && px <= 5_500,
        "stored for ttl + stale = 5.5 s, PTTL {px} (at least {floor})"
    );

    // Past the TTL (less than 5 s left of the 5.5 s PX) but inside the stale window.
    eventually(DEADLINE, "the entry is older than its ttl", || async {
        pttl(&server, &key).await < 5_000
    })
    .await;

    // 20 concurrent calls on the stale entry: all get v1 at once, one refresh runs.
    const N: usize = 20;
    let barrier = Arc::new(Barrier::new(N));
    let calls: Vec<_> = (0..N)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                timed(swr_version(1)).await
            })
        })
        .collect();
    for c in calls {
        let ((_, v), took) = c.await.expect("no call panics");
        assert_eq!(v, 1, "the stale value is served");
        assert!(
            took < BODY / 2,
            "a stale hit does not wait for the {BODY:?} body: {took:?}"
        );
    }
    let s = stats_of("swr_version");
    // Every one of them read the stale entry (the refresh takes BODY, the calls less than half).
    assert_eq!(s.stale, N as u64, "each stale hit is counted: {s:?}");
    assert_eq!(s.misses, 1, "{s:?}");
    // The refresh task may not have started its body yet: an upper bound here, exact below.
    assert!(
        BG.load(SeqCst) <= 1,
        "{N} concurrent stale hits start one background refresh"
    );

    // The background refresh stores v2; until then calls keep getting v1 without waiting.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let ((_, v), took) = timed(swr_version(1)).await;
        assert!(took < BODY / 2, "no call waits for the refresh: {took:?}");
        if v == 2 {
            break;
        }
        assert_eq!(v, 1);
        assert!(Instant::now() < deadline, "the refresh never stored v2");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(VERSION.load(SeqCst), 2, "the body ran exactly twice");
    assert_eq!(
        (FG.load(SeqCst), BG.load(SeqCst)),
        (1, 1),
        "one run for the first call, one background refresh"
    );
    // Let any background work finish: a second refresh started late would show up now.
    assert!(CACHE.shutdown(DEADLINE).await, "background work finished");
    assert_eq!(VERSION.load(SeqCst), 2, "one refresh for the stale window");
    assert_eq!(BG.load(SeqCst), 1, "one refresh for the stale window");
    let s = stats_of("swr_version");
    assert_eq!(s.refreshes, 1, "{s:?}");
    assert_eq!(s.misses, 1, "{s:?}");
    println!("stale-while-revalidate: {s:?}");
    let px = pttl(&server, &key).await;
    assert!(px > 5_000, "the refresh wrote a fresh 5.5 s PX, PTTL {px}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_stale_window_a_call_waits_for_the_body() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    const BODY: Duration = Duration::from_millis(300);
    static VERSION: AtomicU64 = AtomicU64::new(0);
    static FG: AtomicU32 = AtomicU32::new(0);
    static BG: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = "300ms", stale = "300ms")]
    async fn swr_short(x: u64) -> (u64, u64) {
        note_run(&FG, &BG);
        let v = VERSION.fetch_add(1, SeqCst) + 1;
        tokio::time::sleep(BODY).await;
        (x, v)
    }

    let ((_, v), _) = timed(swr_short(1)).await;
    assert_eq!(v, 1);
    let key = swr_short_key(&1).unwrap();
    let px = pttl(&server, &key).await;
    assert!(px > 0 && px <= 600, "PX is ttl + stale, PTTL {px}");
    wait_gone(&server, &key, DEADLINE).await;

    let ((_, v), took) = timed(swr_short(1)).await;
    assert_eq!(v, 2, "a fresh computation");
    assert!(took >= BODY, "the call waited for the body: {took:?}");
    assert_eq!((FG.load(SeqCst), BG.load(SeqCst)), (2, 0));
    let s = stats_of("swr_short");
    assert_eq!((s.misses, s.stale, s.refreshes), (2, 0, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refresh_recomputes_before_expiry() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    const TTL: Duration = Duration::from_secs(1);
    static VERSION: AtomicU64 = AtomicU64::new(0);
    static FG: AtomicU32 = AtomicU32::new(0);
    static BG: AtomicU32 = AtomicU32::new(0);
    // β = 50 with a 50 ms body: the XFetch gap is 2.5 s × Exp(1), larger than the 1 s TTL most
    // of the time, so nearly every hit triggers a refresh.
    /// Background refreshes running right now, and the most ever seen at once.
    static RUNNING: AtomicU32 = AtomicU32::new(0);
    static MAX_RUNNING: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = "1s", early_refresh = 50.0)]
    async fn xfetch(x: u64) -> (u64, u64) {
        note_run(&FG, &BG);
        let background = IN_CALL.try_with(|_| ()).is_err();
        if background {
            let now = RUNNING.fetch_add(1, SeqCst) + 1;
            MAX_RUNNING.fetch_max(now, SeqCst);
        }
        let v = VERSION.fetch_add(1, SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        if background {
            RUNNING.fetch_sub(1, SeqCst);
        }
        (x, v)
    }

    let ((_, v), _) = timed(xfetch(1)).await;
    assert_eq!(v, 1);
    let written = Instant::now();
    let key = xfetch_key(&1).unwrap();

    // Calls keep hitting; a background refresh happens before the first entry expires.
    let mut last = 1;
    let mut calls = 1;
    while !(stats_of("xfetch").refreshes >= 1 && VERSION.load(SeqCst) >= 2) {
        assert!(
            written.elapsed() < TTL,
            "no early refresh before expiry: {:?}",
            stats_of("xfetch")
        );
        let ((_, v), _) = timed(xfetch(1)).await;
        calls += 1;
        assert!(v >= last, "versions never go back: {v} after {last}");
        last = v;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first_refresh = written.elapsed();

    // Keep calling past the first entry's expiry: every call is still served from the cache.
    while written.elapsed() < TTL + TTL / 2 {
        assert!(exists(&server, &key).await, "the entry never lapses");
        let ((_, v), _) = timed(xfetch(1)).await;
        calls += 1;
        assert!(v >= last, "versions never go back: {v} after {last}");
        last = v;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = stats_of("xfetch");
    println!(
        "early refresh: first refresh after {first_refresh:?}; {calls} calls, {} body runs, last version {last}, {s:?}",
        VERSION.load(SeqCst)
    );
    assert_eq!(
        FG.load(SeqCst),
        1,
        "only the first call ran the body itself"
    );
    assert!(BG.load(SeqCst) >= 1);
    assert_eq!(s.misses, 1, "no call after the first missed: {s:?}");
    assert!(last >= 2, "callers saw a refreshed value");
    // Nearly every hit asks for a refresh (β = 50), every 20 ms, while one takes 50 ms: only the
    // claim on the key keeps them from piling up.
    assert_eq!(
        MAX_RUNNING.load(SeqCst),
        1,
        "at most one background refresh of a key at a time"
    );
    assert!(CACHE.shutdown(DEADLINE).await, "background work finished");
    let s = stats_of("xfetch");
    let bg = BG.load(SeqCst);
    assert_eq!(
        s.refreshes,
        u64::from(bg),
        "each refresh counted once: {s:?}"
    );
    assert_eq!(
        VERSION.load(SeqCst),
        1 + u64::from(bg),
        "the body ran once per refresh"
    );
    assert!(
        u64::from(bg) < calls,
        "a refresh is started by a hit: {bg} refreshes for {calls} calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_expiry_keeps_a_read_entry_alive() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    // Reads come every 200 ms: the TTL leaves 800 ms of scheduling slack between two of them.
    const TTL: Duration = Duration::from_secs(1);
    #[redis_cache(cache = CACHE, ttl = "1s", sliding = true)]
    async fn slide(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x * 2
    }

    let started = Instant::now();
    assert_eq!(slide(21).await, 42);
    let key = slide_key(&21).unwrap();
    // Reads every 200 ms (load, not synchronisation) for 3.5 s, more than three TTLs.
    let mut reads = 0;
    let mut last_read = Instant::now();
    while started.elapsed() < TTL * 7 / 2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            exists(&server, &key).await,
            "the entry lapsed after {:?}",
            started.elapsed()
        );
        last_read = Instant::now();
        assert_eq!(slide(21).await, 42);
        reads += 1;
        let px = pttl(&server, &key).await;
        let floor = ms(TTL) - ms_since(last_read);
        assert!(
            px >= floor && px <= ms(TTL),
            "a hit resets the TTL to {TTL:?}, PTTL {px} (at least {floor})"
        );
    }
    assert_eq!(RUNS.load(SeqCst), 1, "every read was a hit");
    assert_eq!(stats_of("slide").hits, reads);

    // Without reads it expires a TTL after the last one (which reset it after `last_read`).
    wait_gone(&server, &key, DEADLINE).await;
    let lived = last_read.elapsed();
    assert!(
        lived >= TTL - Duration::from_millis(5),
        "expired {lived:?} after the last read began (ttl {TTL:?})"
    );
    println!(
        "sliding: alive {:?} (ttl {TTL:?}), expired {lived:?} after the last of {reads} reads began",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_spreads_ttls() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    // Every one of 1000 concurrent writes must land (a missing key reads back as PTTL -2), so a
    // write timing out on a loaded machine must not count: a 2 s operation timeout, not 300 ms.
    CACHE
        .install(
            memo_redis::Config::builder()
                .url(server.url())
                .namespace("t")
                .op_timeout(Duration::from_secs(2))
                .build()
                .expect("valid config"),
        )
        .expect("cache installed once");
    #[redis_cache(cache = CACHE, ttl = 100, jitter = 0.1)]
    async fn jittered(x: u64) -> u64 {
        x
    }
    #[redis_cache(cache = CACHE, ttl = 100)]
    async fn steady(x: u64) -> u64 {
        x
    }
    const N: u64 = 1000;

    /// Writes keys `0..N` with `call`, returns their PTTLs and the ms elapsed since the
    /// first write began (the most any PTTL can have dropped by).
    async fn pttls<F, Fut>(
        server: &RedisServer,
        call: F,
        key: fn(&u64) -> String,
    ) -> (Vec<i64>, i64)
    where
        F: Fn(u64) -> Fut,
        Fut: std::future::Future<Output = u64> + Send + 'static,
    {
        let started = Instant::now();
        let tasks: Vec<_> = (0..N).map(|i| tokio::spawn(call(i))).collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.expect("no call panics"), i as u64);
        }
        let mut pipe = redis::pipe();
        for i in 0..N {
            pipe.cmd("PTTL").arg(key(&i));
        }
        let mut c = server.conn().await;
        let ttls: Vec<i64> = pipe.query_async(&mut c).await.expect("PTTLs");
        let slack = i64::try_from(started.elapsed().as_millis()).unwrap() + 1;
        (ttls, slack)
    }

    let (ttls, slack) = pttls(&server, jittered, |x| jittered_key(x).unwrap()).await;
    let (min, max) = (*ttls.iter().min().unwrap(), *ttls.iter().max().unwrap());
    let buckets: BTreeSet<i64> = ttls.iter().map(|t| t / 1_000).collect();
    println!(
        "jitter 0.1: PTTL min {min} max {max}, {} one-second buckets, slack {slack} ms",
        buckets.len()
    );
    for &t in &ttls {
        assert!(
            (90_000 - slack..=110_000).contains(&t),
            "PTTL {t} outside 100 s ± 10 %"
        );
    }
    assert!(min < 95_000 && max > 105_000, "spread: {min}..{max}");
    assert!(buckets.len() >= 10, "{} buckets", buckets.len());

    let (ttls, slack) = pttls(&server, steady, |x| steady_key(x).unwrap()).await;
    let min = *ttls.iter().min().unwrap();
    let max = *ttls.iter().max().unwrap();
    println!("no jitter: PTTL min {min} max {max}, slack {slack} ms");
    assert!(max <= 100_000);
    assert!(
        min > 100_000 - slack,
        "without jitter every PTTL is 100 s less the time elapsed ({slack} ms): {min}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_ttl_applies_to_cached_none_only() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, cache_none = true, none_ttl = "2s")]
    async fn maybe(x: u64) -> Option<u64> {
        RUNS.fetch_add(1, SeqCst);
        (x > 0).then_some(x)
    }

    assert_eq!(maybe(0).await, None);
    assert_eq!(maybe(5).await, Some(5));
    let none_key = maybe_key(&0).unwrap();
    let some_key = maybe_key(&5).unwrap();
    let none_px = pttl(&server, &none_key).await;
    let some_px = pttl(&server, &some_key).await;
    assert!(
        none_px > 0 && none_px <= 2_000,
        "a cached None lives none_ttl: {none_px}"
    );
    assert!(
        some_px > 55_000 && some_px <= 60_000,
        "a Some lives ttl: {some_px}"
    );
    assert_eq!(maybe(0).await, None);
    assert_eq!(RUNS.load(SeqCst), 2, "the cached None is a hit");

    wait_gone(&server, &none_key, DEADLINE).await;
    assert!(exists(&server, &some_key).await);
    assert_eq!(maybe(0).await, None);
    assert_eq!(
        RUNS.load(SeqCst),
        3,
        "after none_ttl the None is recomputed"
    );
}

/// How many `SET` commands the server has run (`INFO commandstats`).
async fn set_calls(server: &RedisServer) -> u64 {
    let mut c = server.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .expect("INFO commandstats");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_set:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a call count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_waiter_takes_over_when_the_holder_stores_nothing() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    const LEASE: Duration = Duration::from_secs(2);
    static RUNS: AtomicU32 = AtomicU32::new(0);
    /// Set by the test once the waiter is waiting: the holder fails only then, so the lock is
    /// held (and its PTTL observable) for as long as the test needs, however slow the machine.
    static RELEASE: AtomicBool = AtomicBool::new(false);
    // No in-process single-flight, so the second call goes through the cross-process lock as
    // if it were another process.
    #[redis_cache(cache = CACHE, ttl = 60, single_flight = false, lock = "2s")]
    async fn guarded(x: u64) -> Result<u64, String> {
        let first = RUNS.fetch_add(1, SeqCst) == 0;
        if first {
            let deadline = Instant::now() + DEADLINE;
            while !RELEASE.load(SeqCst) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err("the holder fails".into())
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(x * 2)
        }
    }

    let key = guarded_key(&21).unwrap();
    let lock_key = format!("{key}:lock");
    let holder = tokio::spawn(guarded(21));
    // The body starts after the lock is taken.
    eventually(DEADLINE, "the holder runs the body", || async {
        RUNS.load(SeqCst) == 1
    })
    .await;
    let px = pttl(&server, &lock_key).await;
    assert!(px > 0 && px <= 2_000, "the lock has a 2 s lease, PTTL {px}");

    // The waiter reads (a miss), fails to take the lock (a second `SET`: the holder's was the
    // first, and a failed body stores nothing), then polls for the value.
    let set_calls_before = set_calls(&server).await;
    let waiter = tokio::spawn(guarded(21));
    eventually(DEADLINE, "the waiter tried the lock", || async {
        set_calls(&server).await > set_calls_before
    })
    .await;
    assert_eq!(
        RUNS.load(SeqCst),
        1,
        "the waiter waits; only the holder runs"
    );
    assert!(exists(&server, &lock_key).await, "the lock is still held");

    let started = Instant::now();
    RELEASE.store(true, SeqCst);
    let waiter = waiter.await.expect("no panic");
    let took = started.elapsed();
    assert_eq!(holder.await.unwrap(), Err("the holder fails".to_string()));
    assert_eq!(waiter, Ok(42));
    println!(
        "lock take-over: the waiter finished {took:?} after the holder was let go (lease {LEASE:?})"
    );
    assert!(
        took < LEASE / 2,
        "the waiter took over once the lock was released, not after the lease: {took:?}"
    );
    assert_eq!(RUNS.load(SeqCst), 2);
    assert!(!exists(&server, &lock_key).await, "the lock was released");
    let px = pttl(&server, &key).await;
    assert!(px > 55_000, "the waiter stored its Ok, PTTL {px}");
}
