//! Soak: 64 tasks hammer one cached function for a bounded ~20 s over ~500 keys whose values are
//! a pure function of the key, while another task kills Redis (`SIGKILL`) and restarts it on the
//! same port three times. No call may return a wrong value, panic or hang; the cache must serve
//! hits again after the last restart; the outcome counters must add up; and the process's
//! resident memory must stay bounded.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::RedisServer;

const TASKS: u64 = 64;
const KEYS: u64 = 500;
/// Length of the load phase (the loop is deadline-based).
const RUN: Duration = Duration::from_secs(20);
/// Fixed points of the run at which Redis is killed ...
const KILL_AT: [Duration; 3] = [
    Duration::from_secs(4),
    Duration::from_secs(9),
    Duration::from_secs(14),
];
/// ... and how long it stays down before the restart (load, not synchronisation).
const DOWN_FOR: Duration = Duration::from_millis(800);
const OP_TIMEOUT: Duration = Duration::from_millis(250);
/// "Never hangs": far above op_timeout, far below anything a hang would produce.
const SLOWEST_CALL_BOUND: Duration = Duration::from_secs(2);
/// Allowed growth of the resident set over the run.
const RSS_GROWTH_BOUND: u64 = 64 * 1024 * 1024;

/// The value for key `k`: a pure function of `k` with a key-dependent length, so a value served
/// for the wrong key, or a corrupt one, is detected.
fn value_of(k: u64) -> String {
    let mut h = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    format!("{k}:{h:016x}:{}", "z".repeat((h % 200) as usize))
}

/// The process's resident set size in bytes.
fn vm_rss_bytes() -> u64 {
    memo_redis_tests::proc_status_kib("VmRSS").expect("VmRSS in /proc/self/status") * 1024
}

/// What one calling task saw.
#[derive(Debug, Default)]
struct TaskReport {
    calls: u64,
    slowest: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_three_kills() {
    let server = Arc::new(RedisServer::start());
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(
            Config::builder()
                .url(server.url())
                .op_timeout(OP_TIMEOUT)
                .breaker_cooldown(Duration::from_millis(200))
                .build()
                .unwrap(),
        )
        .unwrap();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    // A short TTL keeps misses coming between the kills.
    #[redis_cache(cache = CACHE, ttl = "3s")]
    async fn soaked(k: u64) -> String {
        RUNS.fetch_add(1, SeqCst);
        value_of(k)
    }

    let rss_before = vm_rss_bytes();
    let started = Instant::now();
    let deadline = started + RUN;
    let wrong = Arc::new(AtomicU64::new(0));
    let wrong_examples = Arc::new(Mutex::new(Vec::new()));

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (wrong, wrong_examples) = (Arc::clone(&wrong), Arc::clone(&wrong_examples));
        tasks.push(tokio::spawn(async move {
            let mut report = TaskReport::default();
            let mut seed = (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            while Instant::now() < deadline {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let k = seed % KEYS;
                let call_started = Instant::now();
                let v = soaked(k).await;
                report.slowest = report.slowest.max(call_started.elapsed());
                report.calls += 1;
                if v != value_of(k) {
                    wrong.fetch_add(1, SeqCst);
                    let mut examples = wrong_examples.lock().unwrap();
                    if examples.len() < 5 {
                        examples.push(format!("task {t}: key {k} returned {v:?}"));
                    }
                }
                tokio::task::yield_now().await;
            }
            report
        }));
    }

    // The chaos task: kills at fixed points of the run, restarts after a short interval.
    let chaos = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let mut hits_at_restart = Vec::new();
            for at in KILL_AT {
                tokio::time::sleep_until((started + at).into()).await;
                let s = Arc::clone(&server);
                tokio::task::spawn_blocking(move || s.kill())
                    .await
                    .expect("kill");
                tokio::time::sleep(DOWN_FOR).await;
                let s = Arc::clone(&server);
                tokio::task::spawn_blocking(move || s.restart())
                    .await
                    .expect("restart");
                hits_at_restart.push((started.elapsed(), soaked_stats().hits));
            }
            hits_at_restart
        })
    };

    let mut calls = 0;
    let mut slowest = Duration::ZERO;
    let mut panics = 0;
    for task in tasks {
        match task.await {
            Ok(report) => {
                calls += report.calls;
                slowest = slowest.max(report.slowest);
            }
            Err(e) if e.is_panic() => panics += 1,
            Err(e) => panic!("a calling task was cancelled: {e}"),
        }
    }
    let restarts = chaos.await.expect("the chaos task panicked");
    let elapsed = started.elapsed();
    let rss_after = vm_rss_bytes();
    let runs = RUNS.load(SeqCst);
    let s = soaked_stats();
    let wrong = wrong.load(SeqCst);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "soak: {calls} calls by {TASKS} tasks in {elapsed:?}, {runs} body runs, slowest call \
         {slowest:?}; {s:?}; (time, hits) at each restart {restarts:?}; VmRSS before {rss_before} \
         B ({:.1} MiB), after {rss_after} B ({:.1} MiB)",
        mib(rss_before),
        mib(rss_after)
    );

    assert_eq!(panics, 0, "calling tasks panicked");
    assert_eq!(
        wrong,
        0,
        "wrong values, e.g. {:?}",
        wrong_examples.lock().unwrap()
    );
    assert!(
        runs > KEYS && runs < calls,
        "implausible body-run count {runs} for {KEYS} keys and {calls} calls"
    );
    assert_eq!(restarts.len(), KILL_AT.len());
    let (last_restart_at, hits_at_last_restart) = restarts[restarts.len() - 1];
    assert!(
        last_restart_at < RUN,
        "the last restart ({last_restart_at:?}) came after the end of the run"
    );
    assert!(
        s.hits > hits_at_last_restart,
        "no hits after the last restart ({} then, {} at the end)",
        hits_at_last_restart,
        s.hits
    );
    // Every call ended as exactly one outcome, and the body ran for every non-hit.
    assert_eq!(s.calls(), calls, "{s:?}");
    assert_eq!(s.misses + s.bypass + s.errors, runs, "{s:?}");
    assert!(
        s.errors + s.bypass > 0,
        "the kills were noticed by some calls: {s:?}"
    );
    assert!(
        slowest < SLOWEST_CALL_BOUND,
        "slowest call {slowest:?} (bound {SLOWEST_CALL_BOUND:?})"
    );
    let growth = rss_after.saturating_sub(rss_before);
    assert!(
        growth < RSS_GROWTH_BOUND,
        "VmRSS grew by {:.1} MiB (before {:.1} MiB, after {:.1} MiB), bound {:.0} MiB",
        mib(growth),
        mib(rss_before),
        mib(rss_after),
        mib(RSS_GROWTH_BOUND)
    );
}
