//! Helpers shared by the memoization tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use memo_redis::{Cache, Config};
use memo_redis_tests::RedisServer;

/// Installs a configuration pointing `cache` at `server`.
pub fn install(cache: &'static Cache, server: &RedisServer) {
    cache
        .install(
            Config::builder()
                .url(server.url())
                .namespace("t")
                .op_timeout(Duration::from_millis(300))
                .build()
                .expect("valid config"),
        )
        .expect("cache installed once");
}

/// PTTL of `key` in ms (-2 missing, -1 no expiry).
pub async fn pttl(server: &RedisServer, key: &str) -> i64 {
    let mut c = server.conn().await;
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut c)
        .await
        .expect("PTTL")
}

/// Raw bytes under `key`.
pub async fn raw_get(server: &RedisServer, key: &str) -> Option<Vec<u8>> {
    let mut c = server.conn().await;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut c)
        .await
        .expect("GET")
}

/// Polls (bounded) until `key` no longer exists.
pub async fn wait_gone(server: &RedisServer, key: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let mut c = server.conn().await;
    loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("EXISTS");
        if !exists {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} still exists after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
