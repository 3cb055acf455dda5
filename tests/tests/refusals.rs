//! A command the server refuses (`NOPERM`, `READONLY`, …) fails that one operation and degrades
//! only its feature: the circuit breaker, shared by every function of the cache, stays closed.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use memo_redis::{redis_cache, BreakerState, Cache, Config};
use memo_redis_tests::RedisServer;

fn config(url: String) -> Config {
    Config::builder()
        .url(url)
        .namespace("t")
        .op_timeout(Duration::from_millis(300))
        .breaker_threshold(2)
        .breaker_cooldown(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// An ACL user that may not run scripts: tag bookkeeping (a Lua script) is refused on every
/// tagged write. Untagged functions keep their hits, tagged results are returned and not left
/// in Redis without their tags, and the breaker stays closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_without_scripting_keeps_untagged_hits_and_the_breaker_closed() {
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
                "-@scripting",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    static CACHE: Cache = Cache::from_env();
    CACHE
        .install(config(format!(
            "redis://app:app-pass@127.0.0.1:{}/",
            server.port()
        )))
        .unwrap();
    static PLAIN_RUNS: AtomicU32 = AtomicU32::new(0);
    static TAGGED_RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn plain(x: u32) -> u32 {
        PLAIN_RUNS.fetch_add(1, SeqCst);
        x * 3
    }
    #[redis_cache(cache = CACHE, ttl = 60, tags = ["grp:{x}"])]
    async fn tagged(x: u32) -> u32 {
        TAGGED_RUNS.fetch_add(1, SeqCst);
        x * 5
    }
    assert_eq!(plain(1).await, 3);
    for round in 0..20 {
        assert_eq!(tagged(round % 2).await, (round % 2) * 5, "body's value");
        // The value whose tags could not be recorded is removed in the background (not charged
        // to the call): wait for that removal, so the next call of this key is a miss whatever
        // the machine's load (without the wait a slow background task let a call see the entry).
        let key = tagged_key(&(round % 2)).unwrap();
        common::wait_gone(&server, &key, Duration::from_secs(5)).await;
        assert_eq!(plain(1).await, 3);
    }
    assert_eq!(
        PLAIN_RUNS.load(SeqCst),
        1,
        "every later plain call was a hit"
    );
    assert_eq!(
        TAGGED_RUNS.load(SeqCst),
        20,
        "tagged results are not cached"
    );
    assert_eq!(CACHE.breaker_state(), BreakerState::Closed);
    assert_eq!(common::stats_of("plain").hits, 20);
    let noperm = logs
        .text()
        .lines()
        .filter(|l| l.contains(&format!(":{}/", server.port())) && l.contains("NOPERM"))
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert_eq!(noperm.len(), 1, "one rate-limited line: {noperm:#?}");
    assert!(noperm[0].contains("refused a command"), "{}", noperm[0]);
    assert!(!logs.text().contains("app-pass"));
}

/// `sliding = true` against a read-only replica: `GETEX` is refused (`READONLY`), the read falls
/// back to `GET` (hits, TTL not extended), later reads use `GET` directly, the breaker stays
/// closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_reads_on_a_read_only_replica_fall_back_to_get() {
    let logs = common::capture_logs();
    // No 5 s wait before the replica's first sync.
    let master = RedisServer::start_with_args(["--repl-diskless-sync-delay", "0"]);
    let replica = RedisServer::start_with_args([
        "--replicaof",
        "127.0.0.1",
        &master.port().to_string(),
        "--replica-read-only",
        "yes",
    ]);
    static PRIMARY: Cache = Cache::from_env();
    static REPLICA: Cache = Cache::from_env();
    PRIMARY.install(config(master.url())).unwrap();
    REPLICA.install(config(replica.url())).unwrap();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    // One identity (`name`), so both functions use the same key.
    #[redis_cache(cache = PRIMARY, ttl = 60, sliding = true, name = "session")]
    async fn on_primary(id: u32) -> u32 {
        RUNS.fetch_add(1, SeqCst);
        id + 1000
    }
    #[redis_cache(cache = REPLICA, ttl = 60, sliding = true, name = "session")]
    async fn on_replica(id: u32) -> u32 {
        RUNS.fetch_add(1, SeqCst);
        id + 1000
    }
    assert_eq!(on_primary(7).await, 1007);
    let key = on_replica_key(&7).unwrap();
    assert_eq!(key, on_primary_key(&7).unwrap());
    // Wait (bounded) for the replica to have the entry.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !common::exists(&replica, &key).await {
        assert!(
            Instant::now() < deadline,
            "replication did not deliver {key}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..20 {
        assert_eq!(on_replica(7).await, 1007);
    }
    assert_eq!(RUNS.load(SeqCst), 1, "every replica read was a hit");
    assert_eq!(on_replica_stats().hits, 20);
    assert_eq!(REPLICA.breaker_state(), BreakerState::Closed);
    let readonly = logs
        .text()
        .lines()
        .filter(|l| l.contains(&format!(":{}/", replica.port())) && l.contains("READONLY"))
        .count();
    assert_eq!(readonly, 1, "GETEX was tried once, then GET directly");
}
