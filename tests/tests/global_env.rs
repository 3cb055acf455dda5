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
    let key = from_env_key(&5).unwrap();
    assert!(key.starts_with("envtest:"), "{key}");
    assert_eq!(server.keys("envtest:*").await, vec![key]);

    assert!(memo_redis::shutdown().await);
    // A call after shutdown reconnects and still hits.
    assert_eq!(from_env(5).await, "env-5");
    assert_eq!(RUNS.load(SeqCst), 1, "hit after shutdown");
}
