//! What one miss costs Redis (issue 17, the cheaper miss path): the commands it runs (`INFO
//! commandstats`) and the round trips it waits for (`INFO stats` `total_reads_processed`: one
//! read per request the server receives; pipelined commands arrive in one). A plain miss is a
//! `GET` and a `SET` (two round trips); tags ride in the `SET`'s round trip; the cross-process
//! lock re-checks the entry in its own round trip. Each test has a server of its own, and calls
//! one at a time, so the counts are exact.

mod common;

use std::time::Duration;

use common::data_commands;
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::RedisServer;

fn install(cache: &'static Cache, server: &RedisServer) {
    cache
        .install(
            Config::builder()
                .url(server.url())
                .namespace("rt")
                .op_timeout(Duration::from_secs(2))
                .build()
                .expect("config"),
        )
        .expect("installed once");
}

/// `total_reads_processed` of the server.
async fn reads(server: &RedisServer) -> u64 {
    common::info_counter(server, "stats", "total_reads_processed").await
}

/// The commands and round trips `call` caused, by name (`get`, `set`, `evalsha`, ...), not
/// counting this function's own `INFO` requests. Commands run by a script count too (Redis
/// counts them), so a script's work is pinned along with the calls.
async fn cost<F: std::future::Future<Output = ()>>(
    server: &RedisServer,
    call: F,
) -> (Vec<(String, u64)>, u64) {
    // The reads of the measurement itself: two `INFO stats` with nothing between.
    let (a, b) = (reads(server).await, reads(server).await);
    let overhead = b - a;
    let before = data_commands(server).await;
    let start = reads(server).await;
    call.await;
    let end = reads(server).await;
    let after = data_commands(server).await;
    let mut delta: Vec<(String, u64)> = after
        .into_iter()
        .filter_map(|(name, n)| {
            let was = before
                .iter()
                .find(|(b, _)| *b == name)
                .map_or(0, |(_, n)| *n);
            (n > was).then(|| (name, n - was))
        })
        .collect();
    delta.sort();
    // `end - start` counts the request that read `end` too, as `b - a` did.
    let trips = end - start - overhead;
    (delta, trips)
}

fn names(v: &[(&str, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(n, c)| ((*n).to_string(), *c)).collect()
}

#[tokio::test]
async fn a_plain_miss_is_one_get_and_one_set() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    #[redis_cache(cache = CACHE, ttl = 60)]
    async fn plain(x: u64) -> u64 {
        x + 1
    }
    assert_eq!(plain(0).await, 1); // the connection is set up
    let (commands, trips) = cost(&server, async {
        assert_eq!(plain(1).await, 2);
    })
    .await;
    assert_eq!(commands, names(&[("get", 1), ("set", 1)]));
    assert_eq!(trips, 2, "GET, then SET");
    assert_eq!(plain_stats().misses, 2);
}

#[tokio::test]
async fn tags_ride_in_the_round_trip_of_the_write() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    #[redis_cache(cache = CACHE, ttl = 60, tags = ["user:{x}", "all"])]
    async fn tagged(x: u64) -> u64 {
        x + 1
    }
    assert_eq!(tagged(0).await, 1); // connection and script loaded
    let (commands, trips) = cost(&server, async {
        assert_eq!(tagged(1).await, 2);
    })
    .await;
    // The bookkeeping script: the server's clock, then per tag set: drop expired members, add,
    // read the newest, expire.
    assert_eq!(
        commands,
        names(&[
            ("evalsha", 1),
            ("get", 1),
            ("pexpireat", 2),
            ("set", 1),
            ("time", 1),
            ("zadd", 2),
            ("zrange", 2),
            ("zremrangebyscore", 2)
        ])
    );
    assert_eq!(trips, 2, "GET, then SET + tag bookkeeping pipelined");
    // The bookkeeping did its job: the entry goes with its tag.
    assert_eq!(CACHE.invalidate_tags(["user:1"]).await.unwrap(), 1);
    assert_eq!(tagged_peek(&1).await.unwrap(), None);
}

#[tokio::test]
async fn tags_are_recorded_when_the_server_forgot_the_script() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    #[redis_cache(cache = CACHE, ttl = 60, tags = ["group"])]
    async fn grouped(x: u64) -> u64 {
        x + 1
    }
    assert_eq!(grouped(0).await, 1);
    let mut c = server.conn().await;
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(grouped(1).await, 2);
    let stats = grouped_stats();
    assert_eq!((stats.misses, stats.errors), (2, 0), "{stats:?}");
    assert_eq!(
        CACHE.invalidate_tags(["group"]).await.unwrap(),
        2,
        "both entries recorded under the tag, the second after NOSCRIPT"
    );
}

#[tokio::test]
async fn the_lock_rechecks_the_entry_in_its_own_round_trip() {
    let server = RedisServer::start();
    static CACHE: Cache = Cache::from_env();
    install(&CACHE, &server);
    #[redis_cache(cache = CACHE, ttl = 60, lock = true)]
    async fn locked(x: u64) -> u64 {
        x + 1
    }
    assert_eq!(locked(0).await, 1);
    let (commands, trips) = cost(&server, async {
        assert_eq!(locked(1).await, 2);
    })
    .await;
    // GET (miss) | SET NX lock + GET lock + GET entry | SET entry | EVALSHA release (its GET
    // and DEL of the lock).
    assert_eq!(
        commands,
        names(&[("del", 1), ("evalsha", 1), ("get", 4), ("set", 2)])
    );
    assert_eq!(trips, 4, "read, lock + re-check, write, release");
    assert_eq!(locked_stats().misses, 2);
}
