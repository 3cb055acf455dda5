//! `max_connections` / `REDIS_MAX_CONNECTIONS` (issue 17): a cache opens that many multiplexed
//! connections to a single node and spreads its calls over them; each of them comes back by
//! itself after Redis restarts, and the cache fails open while Redis is gone, as with one.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use common::eventually;
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::RedisServer;

const DEADLINE: Duration = Duration::from_secs(10);

/// Clients connected to `server` other than the one asking (`CLIENT LIST`).
async fn clients(server: &RedisServer) -> usize {
    let mut c = server.conn().await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .expect("CLIENT LIST");
    list.lines().filter(|l| !l.trim().is_empty()).count() - 1
}

/// Waits until `n` clients are connected (a closed connection leaves the list a moment later).
async fn wait_clients(server: &RedisServer, n: usize, what: &str) {
    eventually(DEADLINE, what, || async { clients(server).await == n }).await;
}

fn config(server: &RedisServer, connections: u32) -> Config {
    Config::builder()
        .url(server.url())
        .namespace("conns")
        .max_connections(connections)
        .op_timeout(Duration::from_millis(500))
        .build()
        .expect("config")
}

#[tokio::test]
async fn max_connections_opens_that_many_connections_and_uses_each() {
    let server = RedisServer::start();
    static FOUR: Cache = Cache::from_env();
    FOUR.install(config(&server, 4)).expect("installed once");
    #[redis_cache(cache = FOUR, ttl = 60)]
    async fn four(x: u64) -> u64 {
        x * 2
    }
    wait_clients(&server, 0, "connections are opened lazily").await;
    for x in 0..8 {
        assert_eq!(four(x).await, x * 2);
    }
    assert_eq!(
        clients(&server).await,
        4,
        "four connections after eight calls (round robin)"
    );
    for x in 0..8 {
        assert_eq!(four(x).await, x * 2);
    }
    assert_eq!(clients(&server).await, 4, "and no more");
    let stats = four_stats();
    assert_eq!((stats.misses, stats.hits, stats.errors), (8, 8, 0));

    // The default: one.
    static ONE: Cache = Cache::from_env();
    ONE.install(config(&server, 1)).expect("installed once");
    #[redis_cache(cache = ONE, ttl = 60)]
    async fn one(x: u64) -> u64 {
        x * 3
    }
    for x in 0..8 {
        assert_eq!(one(x).await, x * 3);
    }
    assert_eq!(
        clients(&server).await,
        5,
        "the other cache adds one connection"
    );
}

#[tokio::test]
async fn each_connection_comes_back_after_a_restart_and_the_cache_fails_open_meanwhile() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    CACHE.install(config(&server, 4)).expect("installed once");
    static RUNS: AtomicU64 = AtomicU64::new(0);
    #[redis_cache(cache = CACHE, ttl = 300)]
    async fn pooled(x: u64) -> u64 {
        RUNS.fetch_add(1, SeqCst);
        x + 100
    }
    for x in 0..4 {
        assert_eq!(pooled(x).await, x + 100);
    }
    assert_eq!(clients(&server).await, 4);
    let keys: Vec<String> = (0..4).map(|x| pooled_key(&x).unwrap()).collect();
    let mut entries = Vec::new();
    for key in &keys {
        entries.push(common::raw_get(&server, key).await.expect("stored"));
    }

    // Redis restarts: all four connections die with it. The data comes back as a restored
    // snapshot would bring it.
    server.restart();
    let mut c = server.conn().await;
    for (key, entry) in keys.iter().zip(&entries) {
        let () = redis::cmd("SET")
            .arg(key)
            .arg(entry)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    drop(c);
    let before = pooled_stats();
    let runs = RUNS.load(SeqCst);
    // Eight calls go round all four dead connections twice: each first use reconnects that
    // connection and retries on it within the call, so every call is a hit.
    for round in 0..2 {
        for x in 0..4 {
            assert_eq!(pooled(x).await, x + 100, "round {round}");
        }
    }
    let after = pooled_stats();
    assert_eq!(
        (after.hits - before.hits, after.errors - before.errors),
        (8, 0),
        "{after:?}"
    );
    assert_eq!(RUNS.load(SeqCst), runs, "no body ran");
    wait_clients(&server, 4, "all four reconnected").await;

    // Redis gone: the calls run their bodies (fail-open), the breaker opens.
    server.stop();
    let mut x = 1000;
    eventually(DEADLINE, "the breaker opens", || {
        x += 1;
        let expected = x + 100;
        async move {
            assert_eq!(pooled(x).await, expected);
            CACHE.breaker_open()
        }
    })
    .await;

    // Back: the breaker's probe closes it, and hits are served again on all connections.
    server.restart();
    eventually(DEADLINE, "served from Redis again", || async {
        pooled(5000).await;
        !CACHE.breaker_open() && pooled_peek(&5000).await.ok().flatten().is_some()
    })
    .await;
    let before = pooled_stats();
    for _ in 0..8 {
        assert_eq!(pooled(5000).await, 5100);
    }
    assert_eq!(pooled_stats().hits - before.hits, 8);
    wait_clients(&server, 4, "four connections again").await;
}
