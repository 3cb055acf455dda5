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

/// A buffer receiving everything a global `tracing` subscriber writes.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// How many lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }
}

/// Installs (once per test binary) a global subscriber recording every level into a buffer.
pub fn capture_logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("no other global subscriber in this test binary");
        logs
    })
    .clone()
}

/// Installs a configuration pointing `cache` at `url` (for child processes, which get the URL of
/// their parent's server).
pub fn install_url(cache: &'static Cache, url: &str) {
    cache
        .install(
            Config::builder()
                .url(url)
                .namespace("t")
                .op_timeout(Duration::from_millis(300))
                .build()
                .expect("valid config"),
        )
        .expect("cache installed once");
}

/// Whether `key` exists.
pub async fn exists(server: &RedisServer, key: &str) -> bool {
    let mut c = server.conn().await;
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut c)
        .await
        .expect("EXISTS")
}

/// Polls `check` every 5 ms until it returns true; panics naming `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The counters of the cached function named `name` (its identity ends with `::name`).
pub fn stats_of(name: &str) -> memo_redis::FnStats {
    let suffix = format!("::{name}");
    let all = memo_redis::stats();
    let mut found = all.iter().filter(|f| f.function.ends_with(&suffix));
    let entry = found
        .next()
        .unwrap_or_else(|| panic!("no stats for {name}: {all:?}"));
    assert!(found.next().is_none(), "{name} is ambiguous: {all:?}");
    entry.stats
}
