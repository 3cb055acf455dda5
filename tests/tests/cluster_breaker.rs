//! A breaker per cluster node: when one master of three dies (`SIGKILL`) or hangs (`SIGSTOP`)
//! under load, only the calls whose keys it serves bypass Redis (fail-open: the body runs, the
//! caller gets its value); keys on the two healthy masters keep hitting.
//!
//! Each test prints the figure docs/cluster.md quotes (hits on healthy masters during the
//! failover window):
//! `cargo test -p memo-redis-tests --test cluster_breaker -- --nocapture --test-threads 1`

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memo_redis::{redis_cache, BreakerState, Cache, Config};
use memo_redis_tests::{RedisCluster, RedisServer};

/// Keys under load (as in the figure of issue 18).
const KEYS: u64 = 3000;
/// Concurrent callers.
const TASKS: u64 = 64;
/// The share of calls on healthy masters that must be hits during the window.
const TARGET: f64 = 0.95;

fn config(cluster: &RedisCluster, namespace: &str) -> Config {
    Config::builder()
        .cluster(true)
        .url(cluster.url())
        .namespace(namespace)
        .op_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .expect("valid cluster config")
}

/// What a cached function's body costs (the query it saves): 1 ms.
async fn body_work() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

type Call = fn(u64) -> Pin<Box<dyn Future<Output = u64> + Send>>;

/// Calls and body runs per argument, for one cached function.
struct Counts {
    calls: Vec<AtomicU64>,
    runs: Vec<AtomicU64>,
}

impl Counts {
    fn new() -> Self {
        Counts {
            calls: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
            runs: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn snapshot(&self) -> Vec<(u64, u64)> {
        self.calls
            .iter()
            .zip(&self.runs)
            .map(|(c, r)| (c.load(SeqCst), r.load(SeqCst)))
            .collect()
    }
}

/// (calls, hits) on the arguments `on` selects, between two snapshots.
fn hits_between(
    before: &[(u64, u64)],
    after: &[(u64, u64)],
    on: impl Fn(u64) -> bool,
) -> (u64, u64) {
    let (mut calls, mut runs) = (0, 0);
    for x in (0..KEYS).filter(|x| on(*x)) {
        let i = usize::try_from(x).expect("small index");
        calls += after[i].0 - before[i].0;
        runs += after[i].1 - before[i].1;
    }
    (calls, calls.saturating_sub(runs))
}

fn signal(node: &RedisServer, sig: libc::c_int) {
    let pid = node.pid().expect("node running");
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: plain kill(2) on our own child process.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// Polls (bounded) until another node than `failed` is the master of `slot`; returns its port.
/// (`RedisCluster::wait_for_failover` also waits for every running node to report
/// `cluster_state:ok`, which a stopped node never answers.)
fn promotion(cluster: &RedisCluster, slot: u16, failed: u16, within: Duration) -> u16 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(port) = cluster.master_port_for_slot(slot).filter(|p| *p != failed) {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "no replica promoted for slot {slot} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `cluster-require-full-coverage no` on every node: the healthy masters keep serving their
/// slots while a failed master's slots have no owner (with the default `yes`, every node answers
/// `CLUSTERDOWN` to every command from the moment the master is marked failed until its replica
/// is promoted; see docs/cluster.md).
async fn partial_coverage(cluster: &RedisCluster) {
    for node in cluster.nodes() {
        let mut c = node
            .client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("cluster-require-full-coverage")
            .arg("no")
            .query_async(&mut c)
            .await
            .expect("CONFIG SET");
    }
}

/// How the victim master fails.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// `SIGKILL`: connections are refused at once.
    Kill,
    /// `SIGSTOP`: connections hang (the kernel still accepts them); resumed after the failover.
    Stop,
}

/// Warms every key, makes the master of `victim_x`'s key fail under load, and returns
/// (hit share on healthy masters, calls on them) during the window from the failure until a
/// replica took over its slots.
async fn failover_under_load(
    cluster: Arc<RedisCluster>,
    cache: &'static Cache,
    counts: &'static Counts,
    call: Call,
    key_of: fn(u64) -> String,
    failure: Failure,
    target: f64,
) {
    for x in 0..KEYS {
        assert_eq!(call(x).await, x * x);
    }
    let victim_slot = cluster.slot_of(&key_of(7));
    let victim_port = cluster
        .master_port_for_slot(victim_slot)
        .expect("a master serves the slot");
    let victim = cluster
        .nodes()
        .iter()
        .find(|n| n.port() == victim_port)
        .expect("victim node");
    let on_victim: HashSet<String> = victim.keys("*").await.into_iter().collect();
    let victim_args: HashSet<u64> = (0..KEYS)
        .filter(|x| on_victim.contains(&key_of(*x)))
        .collect();
    assert!(
        !victim_args.is_empty() && victim_args.len() < usize::try_from(KEYS).unwrap() / 2,
        "about a third of the keys on the victim: {}",
        victim_args.len()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut x = t;
                while !stop.load(SeqCst) {
                    // Never an error, never a wrong value (fail-open), on every node.
                    assert_eq!(call(x).await, x * x);
                    counts.calls[usize::try_from(x).unwrap()].fetch_add(1, SeqCst);
                    x = (x + TASKS) % KEYS;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Watch the whole-cache and the per-master breakers through the window.
    let watching = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let watching = Arc::clone(&watching);
        async move {
            let (mut whole_open, mut most_nodes_open) = (0u64, 0usize);
            while watching.load(SeqCst) {
                whole_open += u64::from(cache.breaker_open());
                let open = cache
                    .breaker_nodes()
                    .iter()
                    .filter(|n| n.state == BreakerState::Open)
                    .count();
                most_nodes_open = most_nodes_open.max(open);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (whole_open, most_nodes_open)
        }
    });
    let before = counts.snapshot();
    let failed_at = Instant::now();
    match failure {
        Failure::Kill => victim.kill(),
        Failure::Stop => signal(victim, libc::SIGSTOP),
    }
    let promoted = tokio::task::spawn_blocking({
        let cluster = Arc::clone(&cluster);
        move || promotion(&cluster, victim_slot, victim_port, Duration::from_secs(20))
    })
    .await
    .unwrap();
    let window = failed_at.elapsed();
    let after = counts.snapshot();
    let per_node = cache.breaker_nodes();
    watching.store(false, SeqCst);
    let (whole_open, most_nodes_open) = sampler.await.unwrap();
    let (healthy_calls, healthy_hits) =
        hits_between(&before, &after, |x| !victim_args.contains(&x));
    let (victim_calls, victim_hits) = hits_between(&before, &after, |x| victim_args.contains(&x));
    let share = healthy_hits as f64 / healthy_calls.max(1) as f64;
    println!(
        "{failure:?}: master {victim_port} failed, replica {promoted} promoted after {window:?}; \
         healthy masters: {healthy_hits} hits of {healthy_calls} calls ({:.1} %); \
         failed master's keys: {victim_hits} hits of {victim_calls} calls; \
         whole-cache breaker seen open {whole_open} times, at most {most_nodes_open} master(s) open; \
         breakers now: {per_node:?}",
        100.0 * share
    );
    if matches!(failure, Failure::Stop) {
        signal(victim, libc::SIGCONT);
    }
    stop.store(true, SeqCst);
    for t in tasks {
        t.await.expect("no call failed or returned a wrong value");
    }
    assert!(
        share >= target,
        "{failure:?}: only {:.1} % hits on healthy masters during the failover",
        100.0 * share
    );
    assert!(healthy_calls > 1000, "load ran: {healthy_calls} calls");
    if target == 0.0 {
        // Full coverage: every node refuses during part of the window (see the test below).
        return;
    }
    assert_eq!(whole_open, 0, "one master down never opens the whole cache");
    if matches!(failure, Failure::Kill) {
        assert!(most_nodes_open >= 1, "the dead master's breaker opened");
    }
    assert!(
        victim_calls > 0,
        "the failed master's keys were called (and served by their bodies)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_bypasses_only_its_own_keys() {
    static CACHE: Cache = Cache::from_env();
    static COUNTS: std::sync::LazyLock<Counts> = std::sync::LazyLock::new(Counts::new);
    #[redis_cache(cache = CACHE, ttl = 600)]
    async fn killed(x: u64) -> u64 {
        COUNTS.runs[usize::try_from(x).unwrap()].fetch_add(1, SeqCst);
        body_work().await;
        x * x
    }
    fn call(x: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
        Box::pin(killed(x))
    }
    fn key_of(x: u64) -> String {
        killed_key(&x).expect("key")
    }
    let cluster = Arc::new(RedisCluster::start());
    partial_coverage(&cluster).await;
    CACHE.install(config(&cluster, "kill")).unwrap();
    failover_under_load(
        cluster,
        &CACHE,
        &COUNTS,
        call,
        key_of,
        Failure::Kill,
        TARGET,
    )
    .await;
    assert_eq!(CACHE.breaker_state(), BreakerState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_master_bypasses_only_its_own_keys() {
    static CACHE: Cache = Cache::from_env();
    static COUNTS: std::sync::LazyLock<Counts> = std::sync::LazyLock::new(Counts::new);
    #[redis_cache(cache = CACHE, ttl = 600)]
    async fn stopped(x: u64) -> u64 {
        COUNTS.runs[usize::try_from(x).unwrap()].fetch_add(1, SeqCst);
        body_work().await;
        x * x
    }
    fn call(x: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
        Box::pin(stopped(x))
    }
    fn key_of(x: u64) -> String {
        stopped_key(&x).expect("key")
    }
    let cluster = Arc::new(RedisCluster::start());
    partial_coverage(&cluster).await;
    CACHE.install(config(&cluster, "stop")).unwrap();
    failover_under_load(
        cluster,
        &CACHE,
        &COUNTS,
        call,
        key_of,
        Failure::Stop,
        TARGET,
    )
    .await;
}

/// With Redis's default `cluster-require-full-coverage yes` the whole cluster refuses commands
/// while the failed master's slots have no owner: the figure is printed (docs/cluster.md), and
/// only fail-open (no error, no wrong value, the load ran) is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_full_coverage_the_cluster_refuses_until_the_promotion() {
    static CACHE: Cache = Cache::from_env();
    static COUNTS: std::sync::LazyLock<Counts> = std::sync::LazyLock::new(Counts::new);
    #[redis_cache(cache = CACHE, ttl = 600)]
    async fn covered(x: u64) -> u64 {
        COUNTS.runs[usize::try_from(x).unwrap()].fetch_add(1, SeqCst);
        body_work().await;
        x * x
    }
    fn call(x: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
        Box::pin(covered(x))
    }
    fn key_of(x: u64) -> String {
        covered_key(&x).expect("key")
    }
    let cluster = Arc::new(RedisCluster::start());
    CACHE.install(config(&cluster, "full")).unwrap();
    failover_under_load(cluster, &CACHE, &COUNTS, call, key_of, Failure::Kill, 0.0).await;
}
