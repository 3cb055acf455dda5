//! One multiplexed connection per cache (issue 17): `REDIS_MAX_CONNECTIONS` / `max_connections`
//! were removed after the benchmark showed several connections serving fewer hits per second
//! than one (docs/benchmarks.md, "Connections"); a cache opens exactly one connection to a single
//! node, however many tasks call it, and the deprecated setting changes nothing.

mod common;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_every_call_whatever_max_connections_says() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    #[allow(deprecated)]
    let config = Config::builder()
        .url(server.url())
        .namespace("conns")
        .max_connections(4)
        .build()
        .expect("config");
    CACHE.install(config).expect("installed once");
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn doubled(x: u64) -> u64 {
        x * 2
    }
    eventually(DEADLINE, "no connection before the first call", || async {
        clients(&server).await == 0
    })
    .await;
    // 64 tasks, misses then hits, on two worker threads.
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            tokio::spawn(async move {
                for round in 0..2 {
                    for x in t * 4..t * 4 + 4 {
                        assert_eq!(doubled(x).await, x * 2, "round {round}");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a calling task failed");
    }
    let stats = doubled_stats();
    assert_eq!((stats.misses, stats.hits, stats.errors), (256, 256, 0));
    assert_eq!(clients(&server).await, 1, "one multiplexed connection");
}
