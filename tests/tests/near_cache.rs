//! The near cache (`local = ...`) against real redis-server processes: local hits, coherence
//! when another connection writes, deletes or expires a key (bounded staleness), and an empty
//! tier across a Redis restart.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{wait_near_live, warm_local};
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::{stale_for, RedisServer};

/// The staleness bound promised (and documented) on loopback.
const BOUND: Duration = Duration::from_millis(100);

fn config(server: &RedisServer) -> Config {
    Config::builder()
        .url(server.url())
        .namespace("near")
        .op_timeout(Duration::from_millis(500))
        .build()
        .expect("valid config")
}

static A: Cache = Cache::from_env();
static B: Cache = Cache::from_env();
static VERSION: AtomicU32 = AtomicU32::new(1);
static RUNS_A: AtomicU32 = AtomicU32::new(0);

// The same identity on two caches = the same Redis key: `B` stands for another process.
#[redis_cache(cache = A, name = "near::profile", ttl = 300, local = "60s")]
async fn profile_a(id: u32) -> String {
    RUNS_A.fetch_add(1, SeqCst);
    format!("{id}-v{}", VERSION.load(SeqCst))
}

#[redis_cache(cache = B, name = "near::profile", ttl = 300, local = "60s")]
async fn profile_b(id: u32) -> String {
    format!("{id}-v{}", VERSION.load(SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_write_delete_and_expiry_reach_the_local_copy_within_the_bound() {
    let server = RedisServer::start();
    A.install(config(&server)).unwrap();
    B.install(config(&server)).unwrap();
    assert_eq!(profile_a_key(&1).unwrap(), profile_b_key(&1).unwrap());

    // Miss (stores), Redis hit (kept locally), then local hits that never reach Redis.
    assert_eq!(profile_a(1).await, "1-v1");
    wait_near_live(&A, Duration::from_secs(5)).await;
    common::warm_local_by("profile", profile_a_stats, || profile_a(1)).await;
    let before = profile_a_stats();
    let commands_before = common::data_commands(&server).await;
    for _ in 0..100 {
        assert_eq!(profile_a(1).await, "1-v1");
    }
    let after = profile_a_stats();
    assert_eq!(after.local_hits - before.local_hits, 100, "{after:?}");
    assert_eq!(RUNS_A.load(SeqCst), 1);
    // Served locally means Redis never saw them: not one command for 100 calls.
    assert_eq!(
        common::data_commands(&server).await,
        commands_before,
        "local hits reach Redis"
    );

    // 1. Another process overwrites the value (write-through on its own connection).
    VERSION.store(2, SeqCst);
    assert_eq!(profile_b_refresh(1).await, "1-v2");
    let written = Instant::now();
    let took = stale_for(written, Duration::from_secs(2), "1-v2", || profile_a(1)).await;
    assert!(
        took <= BOUND,
        "the overwritten value was still served {took:?} after the write"
    );
    assert_eq!(RUNS_A.load(SeqCst), 1, "A read the new value from Redis");

    // 2. A raw client deletes the key: A stops serving its copy and recomputes.
    // Warm A's local copy of v2 first (a Redis hit fills it).
    common::warm_local_by("profile", profile_a_stats, || profile_a(1)).await;
    let local_before = profile_a_stats().local_hits;
    assert_eq!(profile_a(1).await, "1-v2");
    assert_eq!(
        profile_a_stats().local_hits,
        local_before + 1,
        "the copy about to go stale is served locally"
    );
    VERSION.store(3, SeqCst);
    let key = profile_a_key(&1).unwrap();
    let mut raw = server.conn().await;
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    let deleted = Instant::now();
    let took = stale_for(deleted, Duration::from_secs(2), "1-v3", || profile_a(1)).await;
    assert!(
        took <= BOUND,
        "the deleted value was still served {took:?} after the delete"
    );
    assert_eq!(RUNS_A.load(SeqCst), 2, "the deleted value was recomputed");

    // 3. The key expires in Redis (a raw PEXPIRE, far shorter than A's 60 s local cap).
    common::warm_local_by("profile", profile_a_stats, || profile_a(1)).await;
    let local_before = profile_a_stats().local_hits;
    assert_eq!(profile_a(1).await, "1-v3");
    assert_eq!(
        profile_a_stats().local_hits,
        local_before + 1,
        "the copy about to go stale is served locally"
    );
    VERSION.store(4, SeqCst);
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(50)
        .query_async(&mut raw)
        .await
        .unwrap();
    // The key expires 50 ms after the PEXPIRE took effect, so at the latest 50 ms from here.
    let pexpired = Instant::now();
    let served_for = stale_for(pexpired, Duration::from_secs(2), "1-v4", || profile_a(1)).await;
    let late = served_for.saturating_sub(Duration::from_millis(50));
    assert!(
        late <= BOUND,
        "the expired value was still served {late:?} after the expiry"
    );
}

static C: Cache = Cache::from_env();
static RUNS_C: AtomicU32 = AtomicU32::new(0);

#[redis_cache(cache = C, ttl = 300, local = true)]
async fn report(id: u32) -> String {
    RUNS_C.fetch_add(1, SeqCst);
    format!("report-{id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_empties_the_tier_and_companions_act_locally_at_once() {
    let server = RedisServer::start();
    C.install(config(&server)).unwrap();

    report(1).await;
    wait_near_live(&C, Duration::from_secs(5)).await;
    warm_local("report", || report(1)).await;
    assert_eq!(C.near_cache().unwrap().entries, 1);

    // `evict` forgets the local copy in this process at once, before Redis's push arrives.
    assert!(report_evict(&1).await.unwrap());
    assert_eq!(C.near_cache().unwrap().entries, 0);
    report(1).await;
    assert_eq!(RUNS_C.load(SeqCst), 2, "evicted: recomputed");

    // Fill the tier with a few entries, then kill Redis: the tier goes dark and empties.
    for id in 2..6 {
        report(id).await;
        warm_local("report", || report(id)).await;
    }
    assert!(C.near_cache().unwrap().entries >= 4);
    server.kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while C.near_cache().unwrap().live {
        assert!(Instant::now() < deadline, "tier still live after the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(C.near_cache().unwrap().entries, 0);
    // While Redis is down every call runs its body (fail-open), nothing is served locally.
    let runs = RUNS_C.load(SeqCst);
    assert_eq!(report(2).await, "report-2");
    assert_eq!(RUNS_C.load(SeqCst), runs + 1);

    server.restart();
    wait_near_live(&C, Duration::from_secs(10)).await;
    assert_eq!(
        C.near_cache().unwrap().entries,
        0,
        "reconnected with an empty tier"
    );
    let local_before = common::stats_of("report").local_hits;
    assert_eq!(report(3).await, "report-3");
    assert_eq!(
        common::stats_of("report").local_hits,
        local_before,
        "nothing served from before"
    );
}

static D: Cache = Cache::from_env();

#[redis_cache(cache = D, ttl = "1s", local = true)]
async fn short_lived(id: u32) -> u32 {
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_copy_never_outlives_the_redis_ttl() {
    let server = RedisServer::start();
    D.install(config(&server)).unwrap();
    short_lived(1).await;
    wait_near_live(&D, Duration::from_secs(5)).await;
    warm_local("short_lived", || short_lived(1)).await;
    let key = short_lived_key(&1).unwrap();
    let pttl = common::pttl(&server, &key).await;
    assert!(pttl > 0);
    assert_eq!(short_lived(1).await, 1);
    assert!(common::stats_of("short_lived").local_hits >= 1);
    // Once Redis no longer has the key, no call is a local hit.
    common::wait_gone(&server, &key, Duration::from_secs(5)).await;
    let local = common::stats_of("short_lived").local_hits;
    short_lived(1).await;
    assert_eq!(
        common::stats_of("short_lived").local_hits,
        local,
        "served after the Redis TTL"
    );
}

static F: Cache = Cache::from_env();
static RUNS_F: AtomicU32 = AtomicU32::new(0);

#[redis_cache(cache = F, ttl = 300, local = true)]
async fn no_tracking(id: u32) -> u32 {
    RUNS_F.fetch_add(1, SeqCst);
    id + 1
}

/// An ACL user that may not run `CLIENT`: tracking cannot be enabled, one warning says so, the
/// tier stays dark, and the function memoizes through Redis as without `local`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_refused_by_acl_warns_and_falls_back_to_redis() {
    let logs = common::capture_logs();
    let server = RedisServer::start();
    let mut admin = server.conn().await;
    let () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                "app",
                "on",
                ">app-pass",
                "~*",
                "&*",
                "+@all",
                "-client",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    F.install(
        Config::builder()
            .url(format!("redis://app:app-pass@127.0.0.1:{}/", server.port()))
            .namespace("near-acl")
            .build()
            .unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while logs.count("near cache unavailable") == 0 {
        assert!(Instant::now() < deadline, "no warning: {}", logs.text());
        assert_eq!(no_tracking(1).await, 2);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..20 {
        assert_eq!(no_tracking(1).await, 2);
    }
    assert_eq!(RUNS_F.load(SeqCst), 1, "memoized through Redis");
    let stats = common::stats_of("no_tracking");
    assert_eq!(stats.local_hits, 0, "{stats:?}");
    assert!(!F.near_cache().unwrap().live);
    assert!(!logs.text().contains("app-pass"), "no password in the logs");
}

static G: Cache = Cache::from_env();
static H: Cache = Cache::from_env();
static SWAP_VERSION: AtomicU32 = AtomicU32::new(1);

// The same identity on two caches: `H` writes into database 1 what `SWAPDB` then brings to 0.
#[redis_cache(cache = G, name = "near::swapped", ttl = 300, local = "60s")]
async fn swapped(id: u32) -> String {
    format!("{id}-v{}", SWAP_VERSION.load(SeqCst))
}

#[redis_cache(cache = H, name = "near::swapped", ttl = 300)]
async fn swapped_in_db1(id: u32) -> String {
    format!("{id}-v{}", SWAP_VERSION.load(SeqCst))
}

/// Redis sends tracking clients nothing on `SWAPDB`: the heartbeat's epoch check notices the
/// other dataset and flushes the tier, so the old value is not served for the `local` cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapdb_flushes_the_tier_within_the_heartbeat_bound() {
    let server = RedisServer::start();
    G.install(config(&server)).unwrap();
    H.install(
        Config::builder()
            .url(format!("redis://127.0.0.1:{}/1", server.port()))
            .namespace("near")
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(swapped(1).await, "1-v1");
    wait_near_live(&G, Duration::from_secs(5)).await;
    common::warm_local_by("swapped", swapped_stats, || swapped(1)).await;
    SWAP_VERSION.store(2, SeqCst);
    assert_eq!(
        swapped_in_db1(1).await,
        "1-v2",
        "database 1 holds the new value"
    );
    assert_eq!(
        swapped(1).await,
        "1-v1",
        "still served locally before the swap"
    );

    let mut admin = server.conn().await;
    let since = Instant::now();
    let () = redis::cmd("SWAPDB")
        .arg(0)
        .arg(1)
        .query_async(&mut admin)
        .await
        .unwrap();
    // Bound: one heartbeat (500 ms) plus its reply (≤ the 500 ms operation timeout), with
    // slack for a loaded machine; before the epoch check this was the 60 s `local` cap.
    let stale = stale_for(since, Duration::from_secs(10), "1-v2", || swapped(1)).await;
    assert!(
        stale < Duration::from_secs(3),
        "old value served {stale:?} after SWAPDB"
    );
}
