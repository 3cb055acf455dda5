//! Stampede protection against a real redis-server: in-process single-flight (one body run for
//! any number of concurrent identical calls, and what followers do when the leader panics,
//! returns `Err` or is cancelled), the `single_flight = false` opt-out, and the cross-process
//! `lock` (several OS processes, one body run in total).
//!
//! The cross-process tests re-execute this test binary: the children run the `lock_child` test,
//! which is `#[ignore]`d so a normal run lists it as ignored instead of passing it vacuously.

mod common;

use std::future::Future;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{eventually, info_counter, install, stats_of};
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::RedisServer;
use tokio::sync::Barrier;
use tokio::task::JoinError;

/// Upper bound of every "wait until" loop.
const DEADLINE: Duration = Duration::from_secs(5);
/// Upper bound for child test processes to start, connect and finish (an unoptimised binary
/// started four times at once on a loaded 2-core machine).
const CHILD_DEADLINE: Duration = Duration::from_secs(30);
/// Operation timeout for the tests that count exact outcomes under heavy concurrency (a thousand
/// tasks, or four processes of a hundred): one read timing out on a loaded machine would run the
/// body again and break the count without anything being wrong with single-flight or the lock.
/// Timeouts themselves are tested in `fail_open.rs`.
const PATIENT_OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Installs a configuration pointing `cache` at `url` with [`PATIENT_OP_TIMEOUT`].
fn install_patient(cache: &'static Cache, url: &str) {
    cache
        .install(
            Config::builder()
                .url(url)
                .namespace("t")
                .op_timeout(PATIENT_OP_TIMEOUT)
                .build()
                .expect("valid config"),
        )
        .expect("cache installed once");
}

tokio::task_local! {
    /// Which caller a body run belongs to (unset in tasks the caller did not scope).
    static CALLER: usize;
}

/// Awaits `fut`, counting it in `joined` right after its first poll. A cached call does
/// everything up to the single-flight join synchronously in its first poll (the first await is
/// the leader's Redis read or a follower's wait), so once `joined` counts a call, it is in the
/// flight.
async fn counted<F: Future>(fut: F, joined: &'static AtomicUsize) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut first = true;
    std::future::poll_fn(move |cx| {
        let polled = fut.as_mut().poll(cx);
        if std::mem::take(&mut first) {
            joined.fetch_add(1, SeqCst);
        }
        polled
    })
    .await
}

/// Waits (bounded) until `joined` reaches `n`; a body uses it to hold its flight open until
/// every caller has joined. Returns either way: the tests assert the count afterwards.
async fn gate(joined: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + DEADLINE;
    while joined.load(SeqCst) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// GETs that found their key (`keyspace_hits`): the reads that served a hit from Redis. Every hit
/// a caller counts is either one of those or a `coalesced` one (the value of a concurrent call's
/// flight), so `coalesced` is checked exactly against the server's own count.
async fn read_hits(server: &RedisServer) -> u64 {
    info_counter(server, "stats", "keyspace_hits").await
}

/// Runs `n` calls made by `call` in their own tasks, released together by a barrier.
async fn concurrently<F, Fut>(n: usize, call: F) -> Vec<Result<Fut::Output, JoinError>>
where
    F: Fn() -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let fut = call();
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_cold_calls_run_the_body_once() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install_patient(&CACHE, &server.url());
    static SLOW_RUNS: AtomicU32 = AtomicU32::new(0);
    static FAST_RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn stampede_slow(x: u64) -> String {
        SLOW_RUNS.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        format!("value-{x}")
    }
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn stampede_fast(x: u64) -> String {
        FAST_RUNS.fetch_add(1, SeqCst);
        format!("value-{x}")
    }
    const N: usize = 1000;

    let hits_before = read_hits(&server).await;
    let started = Instant::now();
    let results = concurrently(N, || stampede_slow(7)).await;
    let took = started.elapsed();
    assert_eq!(results.len(), N);
    for r in results {
        assert_eq!(r.expect("no call panics"), "value-7");
    }
    assert_eq!(SLOW_RUNS.load(SeqCst), 1, "one body run for {N} calls");
    assert_eq!(CACHE.in_flight(), 0, "the flight table is empty afterwards");
    let s = stats_of("stampede_slow");
    let from_redis = read_hits(&server).await - hits_before;
    println!(
        "stampede_slow (50 ms body): {N} calls in {took:?}, {} coalesced, {from_redis} hits read from Redis",
        s.coalesced
    );
    assert_eq!((s.misses, s.hits), (1, N as u64 - 1), "{s:?}");
    assert_eq!(
        s.coalesced + from_redis,
        N as u64 - 1,
        "every hit is either coalesced or read from Redis ({from_redis}): {s:?}"
    );
    assert!(
        s.coalesced > 0,
        "the calls waiting for the 50 ms body got its value: {s:?}"
    );

    // A body without any await: the flight lasts only the Redis read and write, so later
    // callers start new flights, and those read the stored value.
    let hits_before = read_hits(&server).await;
    let started = Instant::now();
    let results = concurrently(N, || stampede_fast(8)).await;
    let took = started.elapsed();
    for r in results {
        assert_eq!(r.expect("no call panics"), "value-8");
    }
    let s = stats_of("stampede_fast");
    let from_redis = read_hits(&server).await - hits_before;
    assert_eq!(
        s.coalesced + from_redis,
        N as u64 - 1,
        "every hit is either coalesced or read from Redis ({from_redis}): {s:?}"
    );
    println!(
        "stampede_fast (0 ms body): {N} calls in {took:?}, body runs {}, {s:?}",
        FAST_RUNS.load(SeqCst)
    );
    assert_eq!(FAST_RUNS.load(SeqCst), 1, "one body run for {N} calls");
    assert_eq!((s.misses, s.hits), (1, N as u64 - 1), "{s:?}");
    assert_eq!(CACHE.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_panic_hands_the_flight_to_a_follower() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    const N: usize = 50;
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static PANICKED: AtomicBool = AtomicBool::new(false);
    static JOINED: AtomicUsize = AtomicUsize::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn panicky(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        if !PANICKED.swap(true, SeqCst) {
            // Hold the flight until every caller is in it, then panic.
            gate(&JOINED, N).await;
            panic!("the leader's body panics (on purpose)");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        x * 2
    }

    let hits_before = read_hits(&server).await;
    let tasks: Vec<_> = (0..N)
        .map(|_| tokio::spawn(counted(panicky(21), &JOINED)))
        .collect();
    let mut panics = 0;
    for t in tasks {
        match t.await {
            Ok(v) => assert_eq!(v, 42),
            Err(e) => {
                assert!(e.is_panic(), "{e}");
                panics += 1;
            }
        }
    }
    assert_eq!(
        JOINED.load(SeqCst),
        N,
        "every call started before the panic"
    );
    assert_eq!(panics, 1, "only the panicking leader's call fails");
    // Callers already in the panicking leader's flight are released at once and run their own
    // bodies (`herd.rs` pins that); callers whose read was still under way find the flight over
    // and share one new run.
    let runs = RUNS.load(SeqCst);
    assert!((2..=N as u32).contains(&runs), "{runs} runs");
    assert_eq!(CACHE.in_flight(), 0);
    let s = stats_of("panicky");
    // The panicking call never ended, so it has no outcome; every other call counts once: the
    // calls that ran a body are misses, every other one a hit, coalesced or read from Redis.
    assert_eq!(s.misses, u64::from(runs) - 1, "{s:?}");
    assert_eq!(s.hits + s.misses, N as u64 - 1, "{s:?}");
    let from_redis = read_hits(&server).await - hits_before;
    assert_eq!(
        s.coalesced + from_redis,
        s.hits,
        "every hit is either coalesced or read from Redis ({from_redis}): {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_err_is_not_shared_followers_run_their_own_body() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    const N: usize = 50;
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static JOINED: AtomicUsize = AtomicUsize::new(0);
    /// The callers whose own body run returned `Err`.
    static ERRED: Mutex<Vec<Option<usize>>> = Mutex::new(Vec::new());
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn fallible(x: u64) -> Result<u64, String> {
        let caller = CALLER.try_with(|c| *c).ok();
        if RUNS.fetch_add(1, SeqCst) == 0 {
            gate(&JOINED, N).await;
            ERRED.lock().unwrap().push(caller);
            return Err("the first run fails".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(x * 2)
    }

    let tasks: Vec<_> = (0..N)
        .map(|i| tokio::spawn(CALLER.scope(i, counted(fallible(21), &JOINED))))
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("no call panics"));
    }
    assert_eq!(JOINED.load(SeqCst), N, "every call joined the first flight");
    let erred = ERRED.lock().unwrap().clone();
    assert_eq!(erred.len(), 1);
    assert!(erred[0].is_some(), "the Err came from a caller's own run");
    for (i, r) in results.iter().enumerate() {
        if erred.contains(&Some(i)) {
            assert_eq!(r, &Err("the first run fails".to_string()), "caller {i}");
        } else {
            assert_eq!(r, &Ok(42), "caller {i} did not run the failing body");
        }
    }
    // The leader's Err is not shared: followers read, run and store by themselves (a follower
    // reading after another one stored gets a hit instead).
    let runs = RUNS.load(SeqCst);
    assert!((2..=N as u32).contains(&runs), "{runs} runs");
    assert_eq!(CACHE.in_flight(), 0);
    let key = fallible_key(&21).unwrap();
    assert!(
        common::exists(&server, &key).await,
        "a follower's Ok was stored"
    );
    let before = RUNS.load(SeqCst);
    assert_eq!(fallible(21).await, Ok(42));
    assert_eq!(RUNS.load(SeqCst), before, "the next call is a hit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_leader_hands_the_flight_to_a_follower() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    const N: usize = 50;
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static JOINED: AtomicUsize = AtomicUsize::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn slow_first(x: u64) -> u64 {
        if RUNS.fetch_add(1, SeqCst) == 0 {
            // The leader's run; it is aborted long before this ends.
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        x * 2
    }

    let leader = tokio::spawn(slow_first(21));
    eventually(DEADLINE, "the leader runs the body", || async {
        RUNS.load(SeqCst) == 1
    })
    .await;
    let followers: Vec<_> = (0..N)
        .map(|_| tokio::spawn(counted(slow_first(21), &JOINED)))
        .collect();
    eventually(DEADLINE, "every follower joined", || async {
        JOINED.load(SeqCst) == N
    })
    .await;
    assert_eq!(CACHE.in_flight(), 1, "one flight, led by the running body");
    assert_eq!(RUNS.load(SeqCst), 1, "the followers wait");

    leader.abort();
    let err = leader.await.expect_err("the leader was aborted");
    assert!(err.is_cancelled(), "{err}");
    for f in followers {
        assert_eq!(f.await.expect("no follower panics"), 42);
    }
    assert_eq!(RUNS.load(SeqCst), 2, "one follower took over the flight");
    assert_eq!(CACHE.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_leader_hands_the_flight_to_a_follower() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    const N: usize = 50;
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static JOINED: AtomicUsize = AtomicUsize::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn slow_once(x: u64) -> u64 {
        if RUNS.fetch_add(1, SeqCst) == 0 {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        x * 2
    }

    // The caller gives up (a timeout): its future, and with it the flight's lead, is dropped
    // mid-body. The deadline is the moment every follower has joined the flight (bounded by
    // `gate`), not a fixed delay that a slow machine could overrun before they join.
    let leader = tokio::spawn(async {
        let gave_up = tokio::select! {
            _ = slow_once(21) => false,
            () = gate(&JOINED, N) => true,
        };
        (gave_up, JOINED.load(SeqCst))
    });
    eventually(DEADLINE, "the leader runs the body", || async {
        RUNS.load(SeqCst) == 1
    })
    .await;
    let followers: Vec<_> = (0..N)
        .map(|_| tokio::spawn(counted(slow_once(21), &JOINED)))
        .collect();
    let (timed_out, joined_before) = leader.await.expect("leader task");
    assert!(timed_out, "the leader's call timed out");
    assert_eq!(joined_before, N, "every follower joined before the timeout");
    for f in followers {
        assert_eq!(f.await.expect("no follower panics"), 42);
    }
    assert_eq!(RUNS.load(SeqCst), 2);
    assert_eq!(CACHE.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_false_runs_every_concurrent_body() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    const N: usize = 50;
    static RUNS: AtomicU32 = AtomicU32::new(0);
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    #[redis_cache(cache = CACHE, ttl = 60, single_flight = false)]
    async fn unshared(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        // Nothing is stored until a body returns, so every call that read before that runs
        // its own body: wait (bounded) for a second one instead of hoping a fixed sleep is long
        // enough for the others to read. With single-flight this waits out the deadline and
        // the count below is 1.
        RUNNING.fetch_add(1, SeqCst);
        gate(&RUNNING, 2).await;
        x * 2
    }

    for r in concurrently(N, || unshared(21)).await {
        assert_eq!(r.expect("no call panics"), 42);
    }
    let runs = RUNS.load(SeqCst);
    println!("single_flight = false: {runs} body runs for {N} concurrent cold calls");
    assert!(
        runs > 1,
        "without single-flight concurrent misses each run the body"
    );
    assert_eq!(CACHE.in_flight(), 0);
}

const CHILD_URL_ENV: &str = "MEMO_LOCK_CHILD_URL";
const CHILD_MODE_ENV: &str = "MEMO_LOCK_CHILD_MODE";
const CHILDREN: usize = 4;
const CALLS_PER_CHILD: usize = 100;
/// Counts body runs across processes (`INCR` in the body).
const RUNS_KEY: &str = "stampede:runs";
/// Each child `INCR`s it once it is connected and waiting for the start signal.
const READY_KEY: &str = "stampede:ready";
/// The start signal: the parent sets it once every child is ready.
const GO_KEY: &str = "stampede:go";

/// The child side of the cross-process tests: waits for the parent's start signal, then makes
/// 100 concurrent calls of the same cold key and checks every result. Only the parent runs it
/// (`--ignored`, with `MEMO_LOCK_CHILD_URL` and `MEMO_LOCK_CHILD_MODE` set); run by hand without
/// them it fails rather than pass without testing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the cross_process_* tests, which run it"]
async fn lock_child() {
    let (Ok(url), Ok(mode)) = (std::env::var(CHILD_URL_ENV), std::env::var(CHILD_MODE_ENV)) else {
        panic!("lock_child runs as a child of the cross_process_* tests ({CHILD_URL_ENV} unset)");
    };
    static CACHE: Cache = Cache::from_env();
    install_patient(&CACHE, &url);
    static URL: OnceLock<String> = OnceLock::new();
    URL.set(url.clone()).expect("set once");

    async fn conn() -> redis::aio::MultiplexedConnection {
        redis::Client::open(URL.get().expect("url").as_str())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
    }
    async fn counted_body(x: u64) -> u64 {
        let _: i64 = redis::cmd("INCR")
            .arg(RUNS_KEY)
            .query_async(&mut conn().await)
            .await
            .expect("INCR");
        tokio::time::sleep(Duration::from_millis(200)).await;
        x * 10
    }
    #[redis_cache(cache = CACHE, ttl = 60, lock = true)]
    async fn with_lock(x: u64) -> u64 {
        counted_body(x).await
    }
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn without_lock(x: u64) -> u64 {
        counted_body(x).await
    }
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn warm_up(x: u64) -> u64 {
        x
    }

    // Connect the cache before reporting ready, so the children start their calls together.
    assert_eq!(warm_up(1).await, 1);
    let mut c = conn().await;
    let _: i64 = redis::cmd("INCR")
        .arg(READY_KEY)
        .query_async(&mut c)
        .await
        .expect("INCR ready");
    let deadline = Instant::now() + CHILD_DEADLINE;
    loop {
        let go: bool = redis::cmd("EXISTS")
            .arg(GO_KEY)
            .query_async(&mut c)
            .await
            .expect("EXISTS go");
        if go {
            break;
        }
        assert!(Instant::now() < deadline, "no start signal");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let locked = match mode.as_str() {
        "lock" => true,
        "nolock" => false,
        other => panic!("unknown {CHILD_MODE_ENV} {other}"),
    };
    let results = concurrently(CALLS_PER_CHILD, || async move {
        if locked {
            with_lock(7).await
        } else {
            without_lock(7).await
        }
    })
    .await;
    for r in results {
        assert_eq!(r.expect("no call panics"), 70);
    }
    assert_eq!(CACHE.in_flight(), 0);
    let name = if locked { "with_lock" } else { "without_lock" };
    println!(
        "lock_child {mode}: {CALLS_PER_CHILD} calls ok; {:?}",
        stats_of(name)
    );
}

/// Starts the children in `mode`, releases them together, checks they all passed, and returns
/// how many times the body ran across all of them.
async fn run_children(server: &RedisServer, mode: &str) -> i64 {
    let exe = std::env::current_exe().expect("current test binary");
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            tokio::process::Command::new(&exe)
                .args([
                    "--exact",
                    "lock_child",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_URL_ENV, server.url())
                .env(CHILD_MODE_ENV, mode)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn a child test process")
        })
        .collect();

    let mut c = server.conn().await;
    let deadline = Instant::now() + CHILD_DEADLINE;
    loop {
        let ready: Option<usize> = redis::cmd("GET")
            .arg(READY_KEY)
            .query_async(&mut c)
            .await
            .expect("GET ready");
        if ready == Some(CHILDREN) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {ready:?} of {CHILDREN} children ready"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let started = Instant::now();
    let _: () = redis::cmd("SET")
        .arg(GO_KEY)
        .arg(1)
        .query_async(&mut c)
        .await
        .expect("SET go");

    for child in children {
        let out = tokio::time::timeout(CHILD_DEADLINE, child.wait_with_output())
            .await
            .expect("child finishes in time")
            .expect("child output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "child failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        let done = format!("lock_child {mode}: {CALLS_PER_CHILD} calls ok");
        assert!(
            stdout.contains(&done),
            "the child did not run lock_child:\n{stdout}\n{stderr}"
        );
    }
    let runs: Option<i64> = redis::cmd("GET")
        .arg(RUNS_KEY)
        .query_async(&mut c)
        .await
        .expect("GET runs");
    let runs = runs.unwrap_or(0);
    println!(
        "{CHILDREN} processes x {CALLS_PER_CHILD} calls ({mode}): {runs} body runs, {:?}",
        started.elapsed()
    );
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_process_lock_runs_the_body_once_in_total() {
    let server = RedisServer::start();
    let runs = run_children(&server, "lock").await;
    assert_eq!(
        runs, 1,
        "with `lock = true` one process computes, the others wait"
    );
    assert!(
        server.keys("*:lock").await.is_empty(),
        "the lock was released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_process_without_lock_runs_the_body_once_per_process_at_most() {
    let server = RedisServer::start();
    let runs = run_children(&server, "nolock").await;
    assert!(
        (1..=CHILDREN as i64).contains(&runs),
        "single-flight is per process: 1..={CHILDREN} runs, got {runs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_or_panicking_lock_holder_releases_the_lock() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    const LEASE: Duration = Duration::from_secs(3);
    static HUNG_RUNS: AtomicU32 = AtomicU32::new(0);
    static PANIC_RUNS: AtomicU32 = AtomicU32::new(0);
    // No in-process single-flight: the second call waits on the Redis lock as another process
    // would.
    #[redis_cache(cache = CACHE, ttl = 60, single_flight = false, lock = "3s")]
    async fn hung_holder(x: u64) -> u64 {
        if HUNG_RUNS.fetch_add(1, SeqCst) == 0 {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        x * 2
    }
    #[redis_cache(cache = CACHE, ttl = 60, single_flight = false, lock = "3s")]
    async fn panicking_holder(x: u64) -> u64 {
        if PANIC_RUNS.fetch_add(1, SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            panic!("the lock holder's body panics (on purpose)");
        }
        x * 2
    }

    // Cancelled holder.
    let lock_key = format!("{}:lock", hung_holder_key(&21).unwrap());
    let holder = tokio::spawn(hung_holder(21));
    eventually(DEADLINE, "the holder runs the body", || async {
        HUNG_RUNS.load(SeqCst) == 1
    })
    .await;
    assert!(common::exists(&server, &lock_key).await, "the lock is held");
    let started = Instant::now();
    let waiter = tokio::spawn(hung_holder(21));
    holder.abort();
    assert!(holder.await.expect_err("aborted").is_cancelled());
    assert_eq!(waiter.await.expect("no panic"), 42);
    let took = started.elapsed();
    println!("waiter behind a cancelled lock holder: {took:?} (lease {LEASE:?})");
    assert!(
        took < LEASE / 2,
        "the cancelled holder released its lock; the waiter did not wait out the lease: {took:?}"
    );
    assert_eq!(HUNG_RUNS.load(SeqCst), 2);

    // Panicking holder.
    let lock_key = format!("{}:lock", panicking_holder_key(&21).unwrap());
    let holder = tokio::spawn(panicking_holder(21));
    eventually(DEADLINE, "the holder runs the body", || async {
        PANIC_RUNS.load(SeqCst) == 1
    })
    .await;
    assert!(common::exists(&server, &lock_key).await, "the lock is held");
    let started = Instant::now();
    let waiter = panicking_holder(21).await;
    let took = started.elapsed();
    assert!(holder.await.expect_err("panicked").is_panic());
    assert_eq!(waiter, 42);
    println!("waiter behind a panicking lock holder: {took:?} (lease {LEASE:?})");
    assert!(
        took < LEASE / 2,
        "the panicking holder released its lock; the waiter did not wait out the lease: {took:?}"
    );
    assert_eq!(PANIC_RUNS.load(SeqCst), 2);
    eventually(DEADLINE, "the lock is released", || async {
        !common::exists(&server, &lock_key).await
    })
    .await;
}
