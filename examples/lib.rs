//! Shared setup for the memo-redis examples.
//!
//! Every example uses `REDIS_URL` when it is set, and otherwise starts a throwaway
//! `redis-server` on a free loopback port (stopped when the example exits), so the examples run
//! on a machine with nothing configured.

use memo_redis_tests::RedisServer;

/// Where the example's Redis is, and the throwaway server if one was started.
pub struct DemoRedis {
    /// The URL to configure memo-redis with.
    pub url: String,
    /// The server this process started (None when `REDIS_URL` was set).
    pub server: Option<RedisServer>,
}

impl DemoRedis {
    /// Uses `REDIS_URL`, or starts a throwaway `redis-server`.
    pub fn start() -> DemoRedis {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => DemoRedis { url, server: None },
            _ => {
                let server = RedisServer::start();
                DemoRedis {
                    url: server.url(),
                    server: Some(server),
                }
            }
        }
    }

    /// The usual start of an example: logging, a Redis (throwaway or `REDIS_URL`), a title line,
    /// and the global cache installed on it under the `memo-demo` namespace.
    pub fn start_global(title: &str) -> Result<DemoRedis, Box<dyn std::error::Error>> {
        init_logging();
        let redis = DemoRedis::start();
        println!("{title} — redis: {}\n", redis.describe());
        memo_redis::init(
            memo_redis::Config::builder()
                .url(redis.url.clone())
                .namespace("memo-demo")
                .build()?,
        )?;
        Ok(redis)
    }

    /// A one-line description for the example's output.
    pub fn describe(&self) -> String {
        match &self.server {
            Some(s) => format!("throwaway redis-server on {} (REDIS_URL unset)", s.addr()),
            None => format!("REDIS_URL={}", redact(&self.url)),
        }
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

/// Installs a `tracing` subscriber honouring `RUST_LOG` (default: memo-redis warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("memo_redis=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
