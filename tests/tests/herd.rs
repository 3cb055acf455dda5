//! A failing leader releases its whole herd at once (issue 12, point 6), against a real
//! redis-server: 20 concurrent callers of one cold key whose body takes 100 ms.
//!
//! - The body panics or returns `Err` every time: the leader's followers are released the moment
//!   it fails and run their own bodies concurrently — the herd takes about two bodies, not twenty
//!   in a row (before the fix: 2 s for a panicking body, 2.1 s with `lock`).
//! - The body returns `None` (no `cache_none`): the followers get the leader's `None`; one run.
//! - The leader's caller is cancelled: one follower takes over and its run serves the others.
//!
//! Each with and without the cross-process `lock`, whose lock must be gone the moment the
//! leader's call returns or panics; plus two caches (two "processes") sharing one key with a
//! panicking body under `lock`.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{eventually, exists, install, stats_of};
use memo_redis::{redis_cache, Cache};
use memo_redis_tests::RedisServer;

/// Callers per herd.
const N: usize = 20;
/// How long one body run takes.
const BODY: Duration = Duration::from_millis(100);
/// Bound on a herd's wall time: half of the `N` body runs in a row that a queueing herd takes,
/// five times the two runs (the leader's, then the followers' at once) a released herd takes —
/// scheduling slack for a loaded 2-core machine.
const HERD_BOUND: Duration = Duration::from_millis(100 * N as u64 / 2);
/// Upper bound of every "wait until" loop.
const DEADLINE: Duration = Duration::from_secs(5);

/// Body bookkeeping of one test function.
struct Runs {
    /// Callers whose call has been polled once (it has read and joined the flight).
    joined: AtomicUsize,
    /// Body runs started.
    started: AtomicUsize,
    /// Body runs in progress right now, and the most seen at once.
    running: AtomicUsize,
    most: AtomicUsize,
}

impl Runs {
    const fn new() -> Runs {
        Runs {
            joined: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        }
    }

    /// One body run: the first (the leader's) holds its flight open until every caller has
    /// joined it (bounded), then each run takes [`BODY`]. Returns whether this was the first.
    async fn run(&self) -> bool {
        let first = self.started.fetch_add(1, SeqCst) == 0;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        if first {
            let deadline = Instant::now() + DEADLINE;
            while self.joined.load(SeqCst) < N && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        tokio::time::sleep(BODY).await;
        self.running.fetch_sub(1, SeqCst);
        first
    }

    fn started(&self) -> usize {
        self.started.load(SeqCst)
    }
}

/// Awaits `fut`, counting it in `runs.joined` right after its first poll: a cached call reads
/// Redis and joins the flight table in its first polls, so the leader's body (which waits for
/// every caller to be counted) only ends once they are all in its flight.
async fn counted<F: Future>(fut: F, runs: &'static Runs) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut first = true;
    std::future::poll_fn(move |cx| {
        let polled = fut.as_mut().poll(cx);
        if std::mem::take(&mut first) {
            runs.joined.fetch_add(1, SeqCst);
        }
        polled
    })
    .await
}

/// Starts the leader's call, waits until its body runs, then starts `N - 1` followers; returns
/// every caller's outcome (leader first) and the herd's wall time (until the last caller
/// finished).
async fn herd<T, F, Fut>(
    runs: &'static Runs,
    call: F,
) -> (Vec<Result<T, tokio::task::JoinError>>, Duration)
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let started = Instant::now();
    let leader = tokio::spawn(counted(call(), runs));
    eventually(DEADLINE, "the leader runs its body", || async {
        runs.started() == 1
    })
    .await;
    let followers: Vec<_> = (1..N)
        .map(|_| tokio::spawn(counted(call(), runs)))
        .collect();
    let mut out = vec![leader.await];
    for f in followers {
        out.push(f.await);
    }
    (out, started.elapsed())
}

fn report(what: &str, took: Duration, runs: &Runs) {
    println!(
        "{what}: {N} callers, {BODY:?} body: herd wall time {took:?}, {} body runs, at most {} at once",
        runs.started(),
        runs.most.load(SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_leader_releases_every_follower_at_once() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static PANICS: Runs = Runs::new();
    static PANICS_LOCKED: Runs = Runs::new();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn always_panics(x: u64) -> u64 {
        PANICS.run().await;
        panic!("the body panics (on purpose), x = {x}");
    }
    #[redis_cache(cache = CACHE, ttl = 60, lock = true)]
    async fn always_panics_locked(x: u64) -> u64 {
        PANICS_LOCKED.run().await;
        panic!("the body panics (on purpose), x = {x}");
    }

    for (what, runs, locked) in [
        ("panicking body", &PANICS, false),
        ("panicking body, lock = true", &PANICS_LOCKED, true),
    ] {
        let (results, took) = if locked {
            herd(runs, || always_panics_locked(1)).await
        } else {
            herd(runs, || always_panics(1)).await
        };
        report(what, took, runs);
        // Checked before anything else can run: a panicking holder releases its lock before
        // the panic goes on, not in a background task that may never run (its process may be
        // exiting).
        assert!(
            server.keys("t:*:lock").await.is_empty(),
            "{what}: no lock is left behind"
        );
        for r in &results {
            assert!(
                r.as_ref().is_err_and(|e| e.is_panic()),
                "{what}: every caller panics"
            );
        }
        assert_eq!(
            runs.started(),
            N,
            "{what}: every caller ran its own body once"
        );
        assert!(
            runs.most.load(SeqCst) > 1,
            "{what}: the followers ran their bodies concurrently"
        );
        assert!(
            took < HERD_BOUND,
            "{what}: the followers were released at once, not one after another: {took:?}"
        );
    }
    assert_eq!(CACHE.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_leader_releases_every_follower_at_once() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static ERRS: Runs = Runs::new();
    static ERRS_LOCKED: Runs = Runs::new();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn always_fails(x: u64) -> Result<u64, String> {
        ERRS.run().await;
        Err(format!("down for {x}"))
    }
    #[redis_cache(cache = CACHE, ttl = 60, lock = true)]
    async fn always_fails_locked(x: u64) -> Result<u64, String> {
        ERRS_LOCKED.run().await;
        Err(format!("down for {x}"))
    }

    for (what, runs, locked) in [
        ("Err body", &ERRS, false),
        ("Err body, lock = true", &ERRS_LOCKED, true),
    ] {
        let (results, took) = if locked {
            herd(runs, || always_fails_locked(2)).await
        } else {
            herd(runs, || always_fails(2)).await
        };
        report(what, took, runs);
        for r in results {
            assert_eq!(r.expect("no panic"), Err("down for 2".to_string()));
        }
        assert_eq!(runs.started(), N, "{what}: each caller ran its own body");
        assert!(
            runs.most.load(SeqCst) > 1,
            "{what}: the followers ran their bodies concurrently"
        );
        assert!(took < HERD_BOUND, "{what}: herd took {took:?}");
        assert!(
            server.keys("t:*:lock").await.is_empty(),
            "{what}: no lock is left behind"
        );
    }
    let s = stats_of("always_fails");
    assert_eq!((s.misses, s.hits), (N as u64, 0), "{s:?}");
    assert_eq!(CACHE.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_uncached_none_is_shared_with_its_followers() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static NONES: Runs = Runs::new();
    static NONES_LOCKED: Runs = Runs::new();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn absent(x: u64) -> Option<u64> {
        NONES.run().await;
        (x > 100).then_some(x)
    }
    #[redis_cache(cache = CACHE, ttl = 60, lock = true)]
    async fn absent_locked(x: u64) -> Option<u64> {
        NONES_LOCKED.run().await;
        (x > 100).then_some(x)
    }

    for (what, runs, locked) in [
        ("None body", &NONES, false),
        ("None body, lock = true", &NONES_LOCKED, true),
    ] {
        let (results, took) = if locked {
            herd(runs, || absent_locked(3)).await
        } else {
            herd(runs, || absent(3)).await
        };
        report(what, took, runs);
        for r in results {
            assert_eq!(r.expect("no panic"), None);
        }
        assert_eq!(runs.started(), 1, "{what}: one body run for the herd");
        assert!(took < HERD_BOUND, "{what}: herd took {took:?}");
    }
    let s = stats_of("absent");
    assert_eq!(
        (s.misses, s.hits, s.coalesced),
        (1, N as u64 - 1, N as u64 - 1),
        "{s:?}"
    );
    assert!(
        !exists(&server, &absent_key(&3).unwrap()).await,
        "an uncached None is shared, not stored"
    );
    let before = NONES.started();
    assert_eq!(absent(3).await, None);
    assert_eq!(NONES.started(), before + 1, "the next call runs the body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_leader_hands_the_herd_to_one_follower() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static SLOW: Runs = Runs::new();
    static SLOW_LOCKED: Runs = Runs::new();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn hangs_first(x: u64) -> u64 {
        if SLOW.run().await {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        x * 2
    }
    #[redis_cache(cache = CACHE, ttl = 60, lock = true)]
    async fn hangs_first_locked(x: u64) -> u64 {
        if SLOW_LOCKED.run().await {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        x * 2
    }

    for (what, runs, locked) in [
        ("cancelled leader", &SLOW, false),
        ("cancelled leader, lock = true", &SLOW_LOCKED, true),
    ] {
        let call = move || async move {
            if locked {
                hangs_first_locked(4).await
            } else {
                hangs_first(4).await
            }
        };
        let started = Instant::now();
        let leader = tokio::spawn(counted(call(), runs));
        eventually(DEADLINE, "the leader runs its body", || async {
            runs.started() == 1
        })
        .await;
        let followers: Vec<_> = (1..N)
            .map(|_| tokio::spawn(counted(call(), runs)))
            .collect();
        // The leader's body has waited for every caller to join, plus one body time.
        eventually(DEADLINE, "every caller joined the flight", || async {
            runs.joined.load(SeqCst) == N
        })
        .await;
        tokio::time::sleep(BODY).await;
        leader.abort();
        assert!(leader.await.expect_err("aborted").is_cancelled());
        for f in followers {
            assert_eq!(f.await.expect("no panic"), 8);
        }
        let took = started.elapsed();
        report(what, took, runs);
        assert_eq!(
            runs.started(),
            2,
            "{what}: one follower took over, its run served the others"
        );
        assert!(took < HERD_BOUND + BODY, "{what}: herd took {took:?}");
    }
    assert_eq!(CACHE.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_a_panicking_locked_body_do_not_wait_a_lease() {
    let server = RedisServer::start();
    // Two caches are two flight tables: two "processes" sharing the key (same `name`).
    static A: Cache = Cache::from_env();
    static B: Cache = Cache::from_env();
    install(&A, &server);
    install(&B, &server);
    static RUNS_A: Runs = Runs::new();
    static RUNS_B: Runs = Runs::new();
    #[redis_cache(cache = A, ttl = 60, lock = true, name = "herd_two_procs")]
    async fn in_a(x: u64) -> u64 {
        RUNS_A.run().await;
        panic!("A's body panics (on purpose), x = {x}");
    }
    #[redis_cache(cache = B, ttl = 60, lock = true, name = "herd_two_procs")]
    async fn in_b(x: u64) -> u64 {
        RUNS_B.run().await;
        panic!("B's body panics (on purpose), x = {x}");
    }
    assert_eq!(in_a_key(&5).unwrap(), in_b_key(&5).unwrap(), "one key");
    let lock_key = format!("{}:lock", in_a_key(&5).unwrap());
    // `Runs::run` waits for N joined callers in the first run of each side.
    RUNS_A.joined.store(N - N / 2, SeqCst);
    RUNS_B.joined.store(N - N / 2, SeqCst);

    let started = Instant::now();
    let a: Vec<_> = (0..N / 2)
        .map(|_| tokio::spawn(counted(in_a(5), &RUNS_A)))
        .collect();
    eventually(DEADLINE, "A's leader holds the lock", || async {
        exists(&server, &lock_key).await
    })
    .await;
    let b: Vec<_> = (0..N / 2)
        .map(|_| tokio::spawn(counted(in_b(5), &RUNS_B)))
        .collect();
    let mut b_done = Duration::ZERO;
    for t in b {
        assert!(t.await.expect_err("panicked").is_panic());
        b_done = b_done.max(started.elapsed());
    }
    for t in a {
        assert!(t.await.expect_err("panicked").is_panic());
    }
    println!(
        "two processes x {} callers, lock = true, panicking {BODY:?} body: B's last caller at {b_done:?}",
        N / 2
    );
    assert!(
        b_done < HERD_BOUND,
        "B's callers did not wait out a lease nor queue: {b_done:?}"
    );
    assert!(!exists(&server, &lock_key).await, "no lock left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_handle_panicking_make_releases_every_waiting_call_at_once() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    static MAKES: Runs = Runs::new();
    let (results, took) = herd(&MAKES, || {
        CACHE.get_or_set_with::<u64, _, _>("herd:handle", None, || async {
            MAKES.run().await;
            panic!("make panics (on purpose)");
        })
    })
    .await;
    report("typed handle, panicking make", took, &MAKES);
    for r in &results {
        assert!(r.as_ref().is_err_and(|e| e.is_panic()), "every call panics");
    }
    assert_eq!(MAKES.started(), N, "each call ran its own make once");
    assert!(MAKES.most.load(SeqCst) > 1, "concurrently");
    assert!(took < HERD_BOUND, "herd took {took:?}");
    assert_eq!(CACHE.in_flight(), 0);
}

/// Installs `cache` against `url` with a breaker of the given threshold and a one-hour cooldown.
fn install_breaker(cache: &'static Cache, url: &str, threshold: u32) {
    cache
        .install(
            memo_redis::Config::builder()
                .url(url)
                .namespace("t")
                .op_timeout(Duration::from_millis(300))
                .breaker_threshold(threshold)
                .breaker_cooldown(Duration::from_secs(3600))
                .build()
                .expect("valid config"),
        )
        .expect("cache installed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_an_outage_the_herd_still_shares_one_body_run() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    // A breaker that stays closed: every read goes to the dead server and fails.
    install_breaker(&CACHE, &server.url(), 1000);
    static OUT: Runs = Runs::new();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn during_outage(x: u64) -> u64 {
        OUT.run().await;
        x * 2
    }
    assert_eq!(during_outage(0).await, 0, "connected before the outage");
    OUT.started.store(0, SeqCst);
    server.kill();

    let (results, took) = herd(&OUT, || during_outage(6)).await;
    report("Redis down, Ok body", took, &OUT);
    for r in results {
        assert_eq!(r.expect("no panic"), 12);
    }
    assert_eq!(
        OUT.started(),
        1,
        "the failed reads still share one body run"
    );
    let s = stats_of("during_outage");
    assert_eq!(s.errors, 1, "the leader's read failed: {s:?}");
    assert_eq!((s.hits, s.coalesced), (N as u64 - 1, N as u64 - 1), "{s:?}");
    assert!(!CACHE.breaker_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_breaker_open_calls_bypass_single_flight_too() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install_breaker(&CACHE, &server.url(), 1);
    static OPEN: Runs = Runs::new();
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn breaker_open(x: u64) -> u64 {
        OPEN.run().await;
        x * 2
    }
    server.kill();
    // The first run is this call's; it waits for N joined callers, so count it as all of them.
    OPEN.joined.store(N, SeqCst);
    assert_eq!(breaker_open(0).await, 0);
    assert!(CACHE.breaker_open(), "one failure opened the breaker");
    let before = OPEN.started();

    // Documented in docs/stampedes-and-freshness.md: an open breaker costs one atomic check, so
    // bypassing calls do not coordinate either — each runs its body, concurrently.
    let started = Instant::now();
    let tasks: Vec<_> = (0..N).map(|_| tokio::spawn(breaker_open(7))).collect();
    for t in tasks {
        assert_eq!(t.await.expect("no panic"), 14);
    }
    let took = started.elapsed();
    println!("breaker open: {N} callers in {took:?}");
    assert_eq!(
        OPEN.started() - before,
        N,
        "every bypassing call ran its body"
    );
    assert!(OPEN.most.load(SeqCst) > 1, "concurrently");
    assert!(took < HERD_BOUND, "{took:?}");
    let s = stats_of("breaker_open");
    assert_eq!(s.bypass, N as u64, "{s:?}");
    assert_eq!(CACHE.in_flight(), 0);
}
