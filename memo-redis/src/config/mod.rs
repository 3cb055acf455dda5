//! Configuration: environment variables and a typed builder, validated once, secrets redacted.

use std::fmt;
use std::time::Duration;

use redis::ConnectionInfo;

use crate::codec::CodecKind;

mod builder;
mod dotenv;
mod env;
mod parse;
mod url;

pub use builder::ConfigBuilder;

/// Default Redis URL when neither `REDIS_URL` nor `REDIS_HOST`/`REDIS_PORT` are set.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// Default namespace, the first field of every key (`REDIS_PREFIX`).
pub const DEFAULT_NAMESPACE: &str = "memo";
/// Default TTL for functions without `ttl` (`REDIS_DEFAULT_TTL`): one hour.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Default per-operation timeout (`REDIS_SOCKET_TIMEOUT`): 250 ms.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(250);
/// Default connect timeout (`REDIS_SOCKET_CONNECT_TIMEOUT`): 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default number of consecutive failures that opens the circuit breaker.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
/// Default time the breaker stays open before one probe is let through.
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(1);
/// Default largest encoded value that is stored (`REDIS_MAX_VALUE_BYTES`): 8 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;
/// Default bound of the near cache (`local = ...` functions) of one cache, in bytes.
pub const DEFAULT_LOCAL_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Validated configuration of one [`Cache`](crate::Cache).
///
/// Build it with [`Config::builder`] or read it from the environment with [`Config::from_env`].
/// `Debug` and `Display` never show the password.
///
/// ```
/// use std::time::Duration;
/// let config = memo_redis::Config::builder()
///     .url("redis://:s3cret@127.0.0.1:6379/0")
///     .namespace("myapp")
///     .default_ttl(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(config.namespace(), "myapp");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), memo_redis::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) connection: ConnectionInfo,
    pub(crate) display_url: String,
    pub(crate) namespace: String,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) op_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    pub(crate) max_value_bytes: usize,
    /// `REDIS_COMPRESS_MIN_BYTES`: payloads of at least this many bytes are compressed (`None`:
    /// off).
    pub(crate) compress_min_bytes: Option<usize>,
    pub(crate) local_max_bytes: usize,
    pub(crate) codec: CodecKind,
    pub(crate) tls_ca_cert: Option<Vec<u8>>,
    /// Redis Cluster seed nodes (`REDIS_CLUSTER=true`); empty for a single node. `connection`
    /// is then the first of them (used for the event subscriber).
    pub(crate) cluster_nodes: Vec<ConnectionInfo>,
    /// `REDIS_READ_FROM_REPLICAS`: reads served by replicas (cluster only).
    pub(crate) read_from_replicas: bool,
}

impl Config {
    /// Starts a builder with every setting at its default.
    ///
    /// ```
    /// let config = memo_redis::Config::builder().build()?;
    /// assert_eq!(config.namespace(), "memo");
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The namespace, the first field of every key.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// TTL for functions without `ttl`; `None` means entries do not expire.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.default_ttl
    }

    /// The bound on every Redis operation a cached call waits for.
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// The bound on establishing a connection.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The default codec for functions that do not name one.
    pub fn codec(&self) -> CodecKind {
        self.codec
    }

    /// The largest encoded value that is stored; larger results are returned but not cached.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// The size from which codec payloads are compressed (LZ4) before they are stored, for
    /// functions without a `compress` argument, the typed handle and the HTTP layer; `None`
    /// (the default): not compressed. Entries are decoded whatever this says.
    ///
    /// ```
    /// let config = memo_redis::Config::builder().compress_min_bytes(1024).build()?;
    /// assert_eq!(config.compress_min_bytes(), Some(1024));
    /// assert_eq!(memo_redis::Config::builder().build()?.compress_min_bytes(), None);
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn compress_min_bytes(&self) -> Option<usize> {
        self.compress_min_bytes
    }

    /// The bound of the in-process near cache shared by this cache's `local = ...` functions
    /// (keys plus encoded values, in bytes).
    ///
    /// ```
    /// let config = memo_redis::Config::builder().build()?;
    /// assert_eq!(config.local_max_bytes(), 64 * 1024 * 1024);
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn local_max_bytes(&self) -> usize {
        self.local_max_bytes
    }

    /// The Redis URL with its credentials — everything between the scheme and the last `@` —
    /// replaced by `***`: `redis://***@cache:6379/0`. Every URL memo-redis prints (errors,
    /// `Debug`, logs) is redacted this way.
    ///
    /// ```
    /// let config = memo_redis::Config::builder().url("redis://app:p%40ss:w@127.0.0.1:6379/0").build()?;
    /// assert_eq!(config.redacted_url(), "redis://***@127.0.0.1:6379/0");
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn redacted_url(&self) -> &str {
        &self.display_url
    }

    /// Whether this configuration talks to a Redis Cluster (`REDIS_CLUSTER=true`).
    pub fn is_cluster(&self) -> bool {
        !self.cluster_nodes.is_empty()
    }

    /// Whether reads are served by the replicas of a Redis Cluster
    /// (`REDIS_READ_FROM_REPLICAS=true`, [`ConfigBuilder::read_from_replicas`]); always `false`
    /// on a single node.
    ///
    /// ```
    /// let config = memo_redis::Config::builder()
    ///     .cluster_nodes(["127.0.0.1:7000"])
    ///     .read_from_replicas(true)
    ///     .build()?;
    /// assert!(config.reads_from_replicas());
    /// assert!(!memo_redis::Config::builder().build()?.reads_from_replicas());
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn reads_from_replicas(&self) -> bool {
        self.read_from_replicas
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.display_url)
            .field("namespace", &self.namespace)
            .field("default_ttl", &self.default_ttl)
            .field("op_timeout", &self.op_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("compress_min_bytes", &self.compress_min_bytes)
            .field("local_max_bytes", &self.local_max_bytes)
            .field("codec", &self.codec)
            .field("cluster", &self.is_cluster())
            .field("read_from_replicas", &self.read_from_replicas)
            .field(
                "tls_ca_cert",
                &self
                    .tls_ca_cert
                    .as_ref()
                    .map(|c| format!("{} bytes", c.len())),
            )
            .finish()
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (namespace `{}`)", self.display_url, self.namespace)
    }
}

#[cfg(test)]
mod tests;
