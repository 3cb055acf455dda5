//! Calls outside a Tokio runtime, or on a runtime without its time or IO driver: the body runs
//! (bypass), one warning says why, explicit operations return an error, nothing panics.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use memo_redis::{redis_cache, Cache, Error};
use memo_redis_tests::RedisServer;

use common::block_on;

static RUNS: AtomicU32 = AtomicU32::new(0);
static CACHE: Cache = Cache::from_env();

#[redis_cache(cache = CACHE, ttl = 60, local = "60s")]
async fn f(x: u32) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    x + 1
}

/// Everything a user may call from an executor: the cached call twice (both run the body), the
/// companions and the typed handle (errors, not panics).
async fn everything() {
    let before = RUNS.load(SeqCst);
    assert_eq!(f(41).await, 42);
    assert_eq!(f(41).await, 42);
    assert_eq!(
        RUNS.load(SeqCst) - before,
        2,
        "bypass: the body ran each time"
    );
    assert!(matches!(f_evict(&41).await, Err(Error::Runtime(_))));
    assert!(matches!(f_peek(&41).await, Err(Error::Runtime(_))));
    assert!(f_key(&41).is_ok(), "the key needs no runtime");
    assert!(matches!(
        CACHE.get::<u32>("k").await,
        Err(Error::Runtime(_))
    ));
    assert!(matches!(
        CACHE.set("k", &1u32, None).await,
        Err(Error::Runtime(_))
    ));
    assert_eq!(
        CACHE
            .get_or_set_with("k", None, || async { 7u32 })
            .await
            .ok(),
        Some(7),
        "fail-open: the value is computed"
    );
    assert!(matches!(
        CACHE.invalidate_tags(["t"]).await,
        Err(Error::Runtime(_))
    ));
    assert!(matches!(
        CACHE.subscribe(|_| {}).await,
        Err(Error::Runtime(_))
    ));
}

/// Runs `make_and_run` on a fresh thread (driver verdicts are kept per thread) and fails if it
/// panicked.
fn on_thread(what: &str, make_and_run: impl FnOnce() + Send + 'static) {
    let joined = std::thread::Builder::new()
        .name(what.to_string())
        .spawn(make_and_run)
        .unwrap()
        .join();
    assert!(joined.is_ok(), "{what}: panicked");
}

#[test]
fn no_runtime_and_runtimes_without_drivers_run_the_body_and_never_panic() {
    let logs = common::capture_logs();
    let server = RedisServer::start();
    common::install(&CACHE, &server);
    on_thread("futures-style block_on, no runtime", || {
        block_on(everything())
    });
    on_thread("current_thread without drivers", || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(everything())
    });
    on_thread("time only", || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(everything())
    });
    on_thread("io only", || {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap()
            .block_on(everything())
    });
    on_thread("multi_thread without drivers", || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async { tokio::spawn(everything()).await.unwrap() })
    });
    assert_eq!(
        logs.count("needs a Tokio runtime with time and IO enabled"),
        1,
        "one warning for the cached calls:\n{}",
        logs.text()
    );
    // A proper runtime afterwards uses the cache normally.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let before = RUNS.load(SeqCst);
            assert_eq!(f(41).await, 42);
            assert_eq!(f(41).await, 42);
            assert_eq!(RUNS.load(SeqCst) - before, 1, "the second call is a hit");
            assert_eq!(f_evict(&41).await.ok(), Some(true));
            assert!(CACHE.shutdown(Duration::from_secs(5)).await);
        });
}
