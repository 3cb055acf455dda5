//! The global cache configures itself from `REDIS_*` variables on the first cached call. One test
//! in its own binary, so the global cache is fresh and nothing else reads the environment.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use memo_redis::redis_cache;
use memo_redis_tests::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_cache_from_environment() {
    let server = RedisServer::start();
    std::env::set_var("REDIS_URL", server.url());
    std::env::set_var("REDIS_PREFIX", "envtest");
    // Durations in the attribute's units (issue 19): a TTL for functions without `ttl`, and the
    // operation timeout.
    std::env::set_var("REDIS_DEFAULT_TTL", "5m");
    std::env::set_var("REDIS_SOCKET_TIMEOUT", "750ms");

    static RUNS: AtomicU32 = AtomicU32::new(0);
    #[redis_cache(ttl = 60)]
    async fn from_env(x: u32) -> String {
        RUNS.fetch_add(1, SeqCst);
        format!("env-{x}")
    }

    assert_eq!(from_env(5).await, "env-5");
    assert_eq!(RUNS.load(SeqCst), 1, "miss");
    assert_eq!(from_env(5).await, "env-5");
    assert_eq!(RUNS.load(SeqCst), 1, "hit");

    let config = memo_redis::global().config().expect("valid configuration");
    assert_eq!(config.namespace(), "envtest");
    assert_eq!(config.op_timeout(), std::time::Duration::from_millis(750));
    assert_eq!(
        config.default_ttl(),
        Some(std::time::Duration::from_secs(300))
    );

    // A function without `ttl` gets REDIS_DEFAULT_TTL=5m on the real server.
    #[redis_cache]
    async fn default_ttl(x: u32) -> u32 {
        x + 1
    }
    assert_eq!(default_ttl(1).await, 2);
    let mut c = server.conn().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(default_ttl_key(&1).unwrap())
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        (290_000..=300_000).contains(&pttl),
        "PTTL {pttl} ms, want ≈ 5 min"
    );
    let key = from_env_key(&5).unwrap();
    assert!(key.starts_with("envtest:"), "{key}");
    let mut keys = server.keys("envtest:*").await;
    keys.sort();
    let mut want = vec![key, default_ttl_key(&1).unwrap()];
    want.sort();
    assert_eq!(keys, want);

    assert!(memo_redis::shutdown().await);
    // A call after shutdown reconnects and still hits.
    assert_eq!(from_env(5).await, "env-5");
    assert_eq!(RUNS.load(SeqCst), 1, "hit after shutdown");
}
