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

/// A counter of the server's `INFO` output, e.g. `info_counter(s, "stats", "keyspace_hits")` or
/// `info_counter(s, "commandstats", "cmdstat_get:calls")` (0 when absent: a command not run yet).
pub async fn info_counter(server: &RedisServer, section: &str, field: &str) -> u64 {
    let mut c = server.conn().await;
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut c)
        .await
        .expect("INFO");
    let prefix = format!("{field}=");
    let prefix = if field.contains(':') {
        prefix
    } else {
        format!("{field}:")
    };
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|rest| rest.split(',').next().unwrap_or(rest).trim())
        .map_or(0, |n| n.parse().expect("a counter"))
}

/// Commands the server has run other than connection set-up and `INFO` (`INFO commandstats`):
/// the I/O a cache did against it, by name (`get`, `set`, `evalsha`, ...) with its call count.
pub async fn data_commands(server: &RedisServer) -> Vec<(String, u64)> {
    const SETUP: [&str; 7] = [
        "info", "hello", "client", "ping", "select", "auth", "command",
    ];
    let mut c = server.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            let calls: u64 = rest.split(',').next()?.parse().ok()?;
            let base = name.split('|').next().unwrap_or(name);
            (!SETUP.contains(&base)).then(|| (name.to_string(), calls))
        })
        .collect()
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
pub fn stats_of(name: &str) -> memo_redis::Stats {
    let suffix = format!("::{name}");
    let all = memo_redis::stats();
    let mut found = all.iter().filter(|f| f.function.ends_with(&suffix));
    let entry = found
        .next()
        .unwrap_or_else(|| panic!("no stats for {name}: {all:?}"));
    assert!(found.next().is_none(), "{name} is ambiguous: {all:?}");
    entry.stats
}

/// Leaves a `noeviction` server with `maxmemory 1mb` and about 3 MiB of data: every write fails
/// with `OOM`. Filling first and lowering the limit afterwards leaves megabytes of margin, so
/// memory freed later (a client's query buffer shrinking) cannot make room again, as it could
/// with a server filled to just over the limit.
pub async fn fill_until_oom(server: &RedisServer) {
    let mut conn = server.conn().await;
    let junk = vec![b'j'; 64 * 1024];
    for i in 0..48 {
        let () = redis::cmd("SET")
            .arg(format!("junk:{i}"))
            .arg(&junk)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1mb")
        .query_async(&mut conn)
        .await
        .unwrap();
    let r: redis::RedisResult<()> = redis::cmd("SET")
        .arg("one-more")
        .arg("x")
        .query_async(&mut conn)
        .await;
    assert_eq!(
        r.as_ref().err().and_then(|e| e.code()),
        Some("OOM"),
        "the server is full: {r:?}"
    );
}

/// Waits (bounded) until the near cache of `cache` is live (tracking connection up, in sync).
pub async fn wait_near_live(cache: &'static Cache, within: Duration) {
    let deadline = Instant::now() + within;
    while !cache.near_cache().is_some_and(|n| n.live) {
        assert!(
            Instant::now() < deadline,
            "near cache not live after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Calls `f` (yielding between calls, so the tracking task can run on any runtime) until one
/// call is served from the near cache, bounded. A read right after our own write may not be
/// kept locally: that write's invalidation can arrive after the read started, and the tier then
/// refuses the copy (by design); the next read keeps it.
pub async fn warm_local<F, Fut, T>(name: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    warm_local_by(name, || stats_of(name), f).await
}

/// [`warm_local`] for a function whose name another function shares (two caches standing for
/// two processes): its counters come from its own `f_stats` companion.
pub async fn warm_local_by<S, F, Fut, T>(name: &str, stats: S, mut f: F)
where
    S: Fn() -> memo_redis::Stats,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let before = stats().local_hits;
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats().local_hits == before {
        assert!(Instant::now() < deadline, "{name}: no local hit after 5 s");
        f().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A minimal executor that is not Tokio's: polls `fut` on this thread, parking until woken (for
/// tests of calls made outside a Tokio runtime).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
