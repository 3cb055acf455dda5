//! One test body, two backends: a private single `redis-server` per test, or the Redis Cluster
//! shared by every test of the binary ([`RedisCluster::shared`]). Tests keep apart on the shared
//! cluster through their namespace, so every assertion on raw keys goes through [`Backend`]
//! (which scans every master on a cluster) and names keys with [`Backend::ns`].
//!
//! ```ignore
//! macro_rules! suite { ($backend:ident) => { mod $backend {
//!     #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//!     async fn works() { let b = Backend::$backend("works"); /* ... */ }
//! } } }
//! suite!(single);
//! suite!(cluster);
//! ```
#![allow(dead_code)]

use std::time::{Duration, Instant};

use memo_redis::{Cache, Config, ConfigBuilder};
use memo_redis_tests::{RedisCluster, RedisServer};
use redis::FromRedisValue;

/// Where one test's keys live.
pub enum Backend {
    /// A private server for this test.
    Single(Box<RedisServer>, String),
    /// The binary's shared cluster.
    Cluster(&'static RedisCluster, String),
}

impl Backend {
    /// A fresh single server; the namespace is `t_{test}`, like on the cluster.
    pub fn single(test: &str) -> Backend {
        Backend::Single(Box::new(RedisServer::start()), format!("t_{test}"))
    }

    /// The shared cluster (started by the first caller), namespace `t_{test}`.
    pub fn cluster(test: &str) -> Backend {
        Backend::Cluster(RedisCluster::shared(), format!("t_{test}"))
    }

    /// The namespace every key of this test starts with.
    pub fn ns(&self) -> &str {
        match self {
            Backend::Single(_, ns) | Backend::Cluster(_, ns) => ns,
        }
    }

    /// `{ns}:{rest}`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.ns())
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Backend::Cluster(..))
    }

    /// The URL (a seed list on the cluster).
    pub fn url(&self) -> String {
        match self {
            Backend::Single(s, _) => s.url(),
            Backend::Cluster(c, _) => c.url(),
        }
    }

    /// A builder pointing at this backend with the test's namespace and a 2 s operation timeout.
    /// These suites count body runs and hits exactly, so one read timing out (or the first
    /// call not getting its lazily made cluster connection in time) on a 2-core machine running
    /// a 6-node cluster beside other tests would fail them with nothing wrong; timeouts
    /// themselves are tested in `fail_open.rs`.
    pub fn config(&self) -> ConfigBuilder {
        Config::builder()
            .cluster(self.is_cluster())
            .url(self.url())
            .namespace(self.ns())
            .op_timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(2))
    }

    /// Installs [`Backend::config`] into `cache`.
    pub fn install(&self, cache: &'static Cache) {
        cache
            .install(self.config().build().expect("valid config"))
            .expect("cache installed once");
    }

    /// Runs one command against the backend (routed by its key on the cluster).
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        match self {
            Backend::Single(s, _) => {
                let mut c = s.conn().await;
                cmd.query_async(&mut c).await.expect("command")
            }
            Backend::Cluster(c, _) => {
                let nodes: Vec<String> = c
                    .nodes()
                    .iter()
                    .map(|n| format!("redis://{}", n.addr()))
                    .collect();
                let mut conn = redis::cluster::ClusterClient::new(nodes)
                    .expect("cluster client")
                    .get_async_connection()
                    .await
                    .expect("cluster connection");
                cmd.query_async(&mut conn).await.expect("command")
            }
        }
    }

    /// Keys matching `pattern`, from every master on the cluster; sorted.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        match self {
            Backend::Single(s, _) => s.keys(pattern).await,
            Backend::Cluster(c, _) => {
                let mut all = Vec::new();
                for m in c.masters() {
                    all.extend(m.keys(pattern).await);
                }
                all.sort();
                all
            }
        }
    }

    /// Keys matching `pattern` per master (one entry on a single node).
    pub async fn keys_per_node(&self, pattern: &str) -> Vec<usize> {
        match self {
            Backend::Single(s, _) => vec![s.keys(pattern).await.len()],
            Backend::Cluster(c, _) => {
                let mut counts = Vec::new();
                for m in c.masters() {
                    counts.push(m.keys(pattern).await.len());
                }
                counts
            }
        }
    }

    /// PTTL of `key` in ms (-2 missing, -1 no expiry).
    pub async fn pttl(&self, key: &str) -> i64 {
        self.query(redis::cmd("PTTL").arg(key)).await
    }

    /// Raw bytes under `key`.
    pub async fn raw_get(&self, key: &str) -> Option<Vec<u8>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    pub async fn exists(&self, key: &str) -> bool {
        self.query(redis::cmd("EXISTS").arg(key)).await
    }

    pub async fn zcard(&self, key: &str) -> u64 {
        self.query(redis::cmd("ZCARD").arg(key)).await
    }

    /// Polls (bounded) until `key` no longer exists (an expiry has no event to wait on).
    pub async fn wait_gone(&self, key: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.exists(key).await {
            assert!(
                Instant::now() < deadline,
                "{key} still exists after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
