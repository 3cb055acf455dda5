//! Batch companions (`f_many`, issue 17): results in input order, hits and misses mixed in one
//! `MGET` and one write pipeline, duplicates computed once, a `#[memo(skip)]` argument passed
//! once, methods, fail-open when Redis is down, a corrupt entry a miss for its key only, the
//! counters exactly as single calls count them, and a Redis Cluster (one `MGET` per slot).
//!
//! Each test owns its server and its cache (a `Cache` is installed once per process).

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use memo_redis::{redis_cache, Cache, Config, Stats};
use memo_redis_tests::{RedisCluster, RedisServer};

fn install(cache: &'static Cache, server: &RedisServer) {
    let config = Config::builder()
        .url(server.url())
        .namespace("t")
        .op_timeout(Duration::from_millis(500))
        .build()
        .expect("valid config");
    cache.install(config).expect("cache installed once");
}

/// `cmdstat_<cmd>` calls on `server` (`INFO commandstats`), 0 when never called.
async fn calls(server: &RedisServer, cmd: &str) -> u64 {
    let mut c = server.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .expect("INFO");
    let prefix = format!("cmdstat_{cmd}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Counters since `before` (hits, misses, coalesced, bypass + errors).
fn delta(before: &Stats, after: &Stats) -> (u64, u64, u64, u64) {
    (
        after.hits - before.hits,
        after.misses - before.misses,
        after.coalesced - before.coalesced,
        (after.bypass + after.errors) - (before.bypass + before.errors),
    )
}

static ORDER: Cache = Cache::from_env();
static ORDER_RUNS: AtomicU32 = AtomicU32::new(0);

#[redis_cache(cache = ORDER, ttl = 60)]
async fn square(x: u64) -> u64 {
    ORDER_RUNS.fetch_add(1, SeqCst);
    // Misses finish out of input order: results must still come back in it.
    tokio::time::sleep(Duration::from_millis(30 - x % 30)).await;
    x * x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_hits_and_misses_in_one_read_and_one_write() {
    let server = RedisServer::start();
    install(&ORDER, &server);
    for x in [0, 1, 2] {
        assert_eq!(square(x).await, x * x);
    }
    let (gets, sets) = (calls(&server, "get").await, calls(&server, "set").await);
    let before = square_stats();
    ORDER_RUNS.store(0, SeqCst);

    let items = [7u64, 0, 28, 1, 2, 9];
    let got = square_many(items).await;
    assert_eq!(got, items.iter().map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(ORDER_RUNS.load(SeqCst), 3, "only the misses (7, 28, 9) ran");
    assert_eq!(
        delta(&before, &square_stats()),
        (3, 3, 0, 0),
        "hits, misses, coalesced, bypass+errors"
    );
    assert_eq!(calls(&server, "mget").await, 1, "one MGET for the batch");
    assert_eq!(calls(&server, "get").await, gets, "no GET per key");
    assert_eq!(calls(&server, "set").await, sets + 3, "one SET per miss");

    // The misses were stored: the same batch again is all hits, one more MGET, no body.
    assert_eq!(square_many(items).await, got);
    assert_eq!(ORDER_RUNS.load(SeqCst), 3);
    assert_eq!(calls(&server, "mget").await, 2);
    // And single calls read what the batch wrote.
    assert_eq!(square(28).await, 784);
    assert_eq!(ORDER_RUNS.load(SeqCst), 3);
    // An empty batch asks Redis nothing.
    assert!(square_many([]).await.is_empty());
    assert_eq!(calls(&server, "mget").await, 2);
}

static DUPS: Cache = Cache::from_env();
static DUP_RUNS: AtomicU32 = AtomicU32::new(0);

#[redis_cache(cache = DUPS, ttl = 60)]
async fn label(x: u64, suffix: &str) -> String {
    DUP_RUNS.fetch_add(1, SeqCst);
    format!("{x}{suffix}")
}

#[redis_cache(cache = DUPS, ttl = 60)]
async fn checked(x: u64) -> Result<u64, String> {
    DUP_RUNS.fetch_add(1, SeqCst);
    if x == 0 {
        Err("zero".into())
    } else {
        Ok(x)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_compute_once_and_errors_are_not_shared() {
    let server = RedisServer::start();
    install(&DUPS, &server);
    let before = label_stats();
    let got = label_many([(5, "a"), (5, "a"), (6, "a"), (5, "a"), (5, "b")]).await;
    assert_eq!(got, ["5a", "5a", "6a", "5a", "5b"]);
    assert_eq!(
        DUP_RUNS.load(SeqCst),
        3,
        "(5, a), (6, a) and (5, b) once each"
    );
    assert_eq!(
        delta(&before, &label_stats()),
        (2, 3, 2, 0),
        "the two repeats count as coalesced hits, as followers of a flight do"
    );

    // An `Err` is neither stored nor shared: each duplicate runs its own body, as the released
    // followers of a failed flight do.
    DUP_RUNS.store(0, SeqCst);
    let got = checked_many([0, 3, 0]).await;
    assert_eq!(
        got,
        [Err("zero".to_string()), Ok(3), Err("zero".to_string())]
    );
    assert_eq!(DUP_RUNS.load(SeqCst), 3);
    assert_eq!(checked_many([3]).await, [Ok(3)]);
    assert_eq!(DUP_RUNS.load(SeqCst), 3, "the Ok was stored");
}

static SKIP: Cache = Cache::from_env();

struct Db {
    queries: AtomicU32,
}

#[redis_cache(cache = SKIP, ttl = 60)]
async fn user_name(id: u64, #[memo(skip)] db: &Db) -> String {
    db.queries.fetch_add(1, SeqCst);
    format!("user{id}")
}

struct Repo {
    prefix: &'static str,
    runs: AtomicU32,
}

impl Repo {
    #[redis_cache(cache = SKIP, ttl = 60)]
    async fn title(&self, id: u64) -> String {
        self.runs.fetch_add(1, SeqCst);
        format!("{}{id}", self.prefix)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_argument_passed_once_and_methods() {
    let server = RedisServer::start();
    install(&SKIP, &server);
    let db = Db {
        queries: AtomicU32::new(0),
    };
    assert_eq!(user_name(2, &db).await, "user2");
    let got = user_name_many([1, 2, 3], &db).await;
    assert_eq!(got, ["user1", "user2", "user3"]);
    assert_eq!(db.queries.load(SeqCst), 3, "2 was a hit");

    let repo = Repo {
        prefix: "t",
        runs: AtomicU32::new(0),
    };
    assert_eq!(repo.title_many(vec![4, 5]).await, ["t4", "t5"]);
    assert_eq!(repo.title(5).await, "t5");
    assert_eq!(repo.runs.load(SeqCst), 2);
    let s = repo.title_stats();
    assert_eq!((s.hits, s.misses), (1, 2), "{s:?}");
}

static DOWN: Cache = Cache::from_env();
static DOWN_RUNS: AtomicU32 = AtomicU32::new(0);

#[redis_cache(cache = DOWN, ttl = 60)]
async fn triple(x: u64) -> u64 {
    DOWN_RUNS.fetch_add(1, SeqCst);
    x * 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_runs_every_body() {
    let server = RedisServer::start();
    install(&DOWN, &server);
    assert_eq!(triple_many([1, 2]).await, [3, 6]);
    server.stop();
    DOWN_RUNS.store(0, SeqCst);
    let before = triple_stats();
    assert_eq!(triple_many([1, 2, 3, 2]).await, [3, 6, 9, 6]);
    // 1, 2 and 3 ran; the repeated 2 shares its result (single-flight holds without Redis).
    assert_eq!(DOWN_RUNS.load(SeqCst), 3);
    let (hits, misses, coalesced, failed) = delta(&before, &triple_stats());
    assert_eq!((hits, misses, coalesced, failed), (1, 0, 1, 3));
    // Again, whether the breaker has opened by now or not: every body runs, nothing fails.
    assert_eq!(triple_many([4, 5]).await, [12, 15]);
    assert_eq!(DOWN_RUNS.load(SeqCst), 5);
}

static CORRUPT: Cache = Cache::from_env();
static CORRUPT_RUNS: AtomicU32 = AtomicU32::new(0);

#[redis_cache(cache = CORRUPT, ttl = 60)]
async fn double(x: u64) -> u64 {
    CORRUPT_RUNS.fetch_add(1, SeqCst);
    x * 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_entry_is_a_miss_for_its_key_only() {
    let server = RedisServer::start();
    install(&CORRUPT, &server);
    assert_eq!(double_many([1, 2, 3]).await, [2, 4, 6]);
    let bad = double_key(&2).expect("key");
    let mut c = server.conn().await;
    let () = redis::cmd("SET")
        .arg(&bad)
        .arg(&b"not an envelope"[..])
        .query_async(&mut c)
        .await
        .expect("SET");
    // A list under a key: MGET reads it as absent; the batch's SET replaces it.
    let foreign = double_key(&3).expect("key");
    let () = redis::cmd("DEL")
        .arg(&foreign)
        .query_async(&mut c)
        .await
        .expect("DEL");
    let () = redis::cmd("RPUSH")
        .arg(&foreign)
        .arg("x")
        .query_async(&mut c)
        .await
        .expect("RPUSH");
    CORRUPT_RUNS.store(0, SeqCst);
    let before = double_stats();
    assert_eq!(double_many([1, 2, 3]).await, [2, 4, 6]);
    assert_eq!(CORRUPT_RUNS.load(SeqCst), 2, "2 and 3 recomputed, 1 a hit");
    assert_eq!(delta(&before, &double_stats()), (1, 2, 0, 0));
    assert_eq!(
        double_peek(&2).await.ok(),
        Some(Some(4)),
        "the bad entry was overwritten"
    );
    assert_eq!(
        double_peek(&3).await.ok(),
        Some(Some(6)),
        "the foreign one too"
    );
}

static NEAR: Cache = Cache::from_env();
static NEAR_RUNS: AtomicU32 = AtomicU32::new(0);

#[redis_cache(cache = NEAR, ttl = 60, local = "30s")]
async fn near_value(x: u64) -> u64 {
    NEAR_RUNS.fetch_add(1, SeqCst);
    x + 100
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_is_consulted_first() {
    let server = RedisServer::start();
    install(&NEAR, &server);
    // Single calls fill the near cache (once its invalidation channel is up: no event says
    // when, so a bounded number of calls).
    for _ in 0..200 {
        assert_eq!(near_value(1).await, 101);
        if near_value_stats().local_hits > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let local_before = near_value_stats().local_hits;
    assert!(local_before >= 1, "{:?}", near_value_stats());
    let mgets = calls(&server, "mget").await;
    assert_eq!(near_value_many([1, 2]).await, [101, 102]);
    assert_eq!(near_value_stats().local_hits, local_before + 1);
    assert_eq!(NEAR_RUNS.load(SeqCst), 2);
    assert_eq!(calls(&server, "mget").await, mgets + 1, "for 2 only");
    // A batch of local hits asks Redis nothing.
    assert_eq!(near_value_many([1]).await, [101]);
    assert_eq!(calls(&server, "mget").await, mgets + 1);
}

static CLUSTER: Cache = Cache::from_env();
static CLUSTER_RUNS: AtomicU32 = AtomicU32::new(0);

#[redis_cache(cache = CLUSTER, ttl = 60)]
async fn spread(x: u64) -> u64 {
    CLUSTER_RUNS.fetch_add(1, SeqCst);
    x + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_reads_and_writes_per_slot() {
    let cluster = RedisCluster::start();
    let config = Config::builder()
        .cluster(true)
        .url(cluster.url())
        .namespace("t")
        .op_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("valid cluster config");
    CLUSTER.install(config).expect("installed once");
    let items: Vec<u64> = (0..40).collect();
    let want: Vec<u64> = items.iter().map(|x| x + 1).collect();
    assert_eq!(spread_many(items.clone()).await, want);
    assert_eq!(CLUSTER_RUNS.load(SeqCst), 40);
    // Keys landed on every master (they spread over slots), and the batch reads them back.
    let mut masters_with_keys = 0;
    for m in cluster.masters() {
        if !m.keys("t:batch.spread:*").await.is_empty() {
            masters_with_keys += 1;
        }
    }
    assert_eq!(masters_with_keys, 3);
    assert_eq!(spread_many(items).await, want);
    assert_eq!(CLUSTER_RUNS.load(SeqCst), 40, "all hits");
    let s = spread_stats();
    assert_eq!(
        (s.hits, s.misses, s.errors, s.bypass),
        (40, 40, 0, 0),
        "{s:?}"
    );
}

static FOLLOW: Cache = Cache::from_env();
static FOLLOW_RUNS: AtomicU32 = AtomicU32::new(0);
/// Key 2's body, run by a single call, signals that it started and waits for the test.
static STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();
static RELEASE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

#[redis_cache(cache = FOLLOW, ttl = 60)]
async fn gated(x: u64) -> u64 {
    FOLLOW_RUNS.fetch_add(1, SeqCst);
    if x == 2 {
        STARTED.notify_one();
        let _permit = RELEASE.acquire().await;
    }
    x * 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_another_caller_is_computing_is_awaited_not_recomputed() {
    let server = RedisServer::start();
    install(&FOLLOW, &server);
    let single = tokio::spawn(gated(2));
    STARTED.notified().await;
    // The single call leads key 2's flight now; the batch computes 1 and follows 2's flight.
    let batch = tokio::spawn(gated_many([1, 2, 3]));
    // No event says that the batch is waiting on the flight; whether it joined it before the
    // release (coalesced) or read the stored value after it (a hit), 2's body runs once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    RELEASE.add_permits(1);
    assert_eq!(single.await.expect("single call"), 20);
    assert_eq!(batch.await.expect("batch"), [10, 20, 30]);
    assert_eq!(
        FOLLOW_RUNS.load(SeqCst),
        3,
        "2 ran once, in the single call"
    );
    let s = gated_stats();
    assert_eq!((s.misses, s.hits), (3, 1), "{s:?}");
}
