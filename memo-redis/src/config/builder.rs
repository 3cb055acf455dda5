//! [`ConfigBuilder`]: every setting by hand, validated once by [`ConfigBuilder::build`].

use std::fmt;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use super::parse::{invalid, positive, validate_segment};
use super::url::{
    check_url_shape, normalize_node_list, parse_cluster_nodes, redact_url, tls_supported,
    url_error_reason,
};
use super::{
    Config, DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_THRESHOLD, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_LOCAL_MAX_BYTES, DEFAULT_MAX_VALUE_BYTES, DEFAULT_NAMESPACE, DEFAULT_OP_TIMEOUT,
    DEFAULT_TTL,
};
use crate::codec::CodecKind;
use crate::error::ConfigError;

/// Builder for [`Config`]; every method corresponds to one `REDIS_*` variable.
///
/// Nothing is validated until [`ConfigBuilder::build`], which reports the first problem.
///
/// ```
/// use std::time::Duration;
/// let config = memo_redis::Config::builder()
///     .host("127.0.0.1")
///     .port(6380)
///     .db(2)
///     .op_timeout(Duration::from_millis(100))
///     .build()?;
/// assert_eq!(config.redacted_url(), "redis://127.0.0.1:6380/2");
/// # Ok::<(), memo_redis::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct ConfigBuilder {
    pub(super) url: Option<String>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u32>,
    pub(super) db: Option<i64>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) ssl: bool,
    pub(super) cluster: bool,
    pub(super) read_from_replicas: bool,
    pub(super) namespace: Option<String>,
    pub(super) default_ttl: Option<Option<Duration>>,
    pub(super) op_timeout: Option<Duration>,
    pub(super) connect_timeout: Option<Duration>,
    pub(super) breaker_threshold: Option<u32>,
    pub(super) breaker_cooldown: Option<Duration>,
    pub(super) max_value_bytes: Option<usize>,
    pub(super) compress_min_bytes: Option<usize>,
    pub(super) local_max_bytes: Option<usize>,
    pub(super) codec: Option<CodecKind>,
    pub(super) tls_ca_cert: Option<Vec<u8>>,
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("host", &self.host.as_deref().map(redact_url))
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username.as_ref().map(|_| "***"))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl ConfigBuilder {
    /// `REDIS_URL`: `redis://[user[:password]@]host[:port][/db]` (or `rediss://`). Wins over
    /// host, port, db, username, password and ssl.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }
    /// `REDIS_HOST` (default `127.0.0.1`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }
    /// `REDIS_PORT`, 1–65535 (default 6379).
    pub fn port(mut self, port: u32) -> Self {
        self.port = Some(port);
        self
    }
    /// `REDIS_DB`, the database number (default 0).
    pub fn db(mut self, db: i64) -> Self {
        self.db = Some(db);
        self
    }
    /// `REDIS_USERNAME`, the ACL user.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }
    /// `REDIS_PASSWORD`; never printed.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }
    /// `REDIS_SSL`: connect with TLS (needs TLS support compiled into redis-rs).
    pub fn ssl(mut self, ssl: bool) -> Self {
        self.ssl = ssl;
        self
    }
    /// `REDIS_CLUSTER`: Redis Cluster mode. The URL is then a comma-separated list of seed
    /// nodes, e.g. `redis://n1:7000,n2:7001,n3:7002` (a node without a scheme inherits the
    /// first node's scheme and credentials). See `docs/cluster.md`. Needs the cargo feature
    /// `cluster`: without it, installing such a configuration fails with
    /// [`ConfigError::Unsupported`](crate::ConfigError::Unsupported).
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }
    /// Redis Cluster mode with these seed nodes (`host:port` or full URLs); the same as
    /// `.cluster(true).url(nodes joined by commas)`. Needs the cargo feature `cluster`.
    pub fn cluster_nodes<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list: Vec<String> = nodes
            .into_iter()
            .map(|n| n.as_ref().trim().to_string())
            .collect();
        self.cluster = true;
        self.url = Some(list.join(","));
        self
    }
    /// `REDIS_READ_FROM_REPLICAS`: on a Redis Cluster, serve reads (`GET`, `MGET`, `GET`+`PTTL`
    /// of a hit) from the replicas of each key's master; writes, locks and sliding reads
    /// (`GETEX`) stay on the master (default `false`). A read may then see a value up to the
    /// replication lag old: see "Reads from replicas" in `docs/cluster.md`. Without cluster mode
    /// `build` refuses it (a single node has no replicas to read from).
    ///
    /// ```
    /// let config = memo_redis::Config::builder()
    ///     .cluster_nodes(["127.0.0.1:7000", "127.0.0.1:7001"])
    ///     .read_from_replicas(true)
    ///     .build()?;
    /// assert!(config.reads_from_replicas());
    /// let single = memo_redis::Config::builder().read_from_replicas(true).build();
    /// assert!(single.unwrap_err().to_string().contains("REDIS_READ_FROM_REPLICAS"));
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn read_from_replicas(mut self, on: bool) -> Self {
        self.read_from_replicas = on;
        self
    }
    /// `REDIS_PREFIX`: the namespace, first field of every key (default `memo`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }
    /// `REDIS_DEFAULT_TTL`: TTL for functions without `ttl` (default 1 h).
    /// `Duration::ZERO` means entries never expire.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some((!ttl.is_zero()).then_some(ttl));
        self
    }
    /// Ignored: a cache talks to Redis over one multiplexed connection, which served more hits
    /// per second than several did in the benchmark that decided it (docs/benchmarks.md,
    /// "Connections"). `REDIS_MAX_CONNECTIONS` is ignored likewise, with a warning.
    ///
    /// ```
    /// #[allow(deprecated)]
    /// let config = memo_redis::Config::builder().max_connections(8).build()?;
    /// # Ok::<(), memo_redis::Error>(())
    /// ```
    #[deprecated(
        since = "0.1.0",
        note = "ignored: one multiplexed connection per cache outperformed several (docs/benchmarks.md)"
    )]
    pub fn max_connections(self, _n: u32) -> Self {
        self
    }
    /// `REDIS_SOCKET_TIMEOUT`: bound on each Redis operation a call waits for (default 250 ms).
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = Some(timeout);
        self
    }
    /// `REDIS_SOCKET_CONNECT_TIMEOUT`: bound on establishing a connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }
    /// `REDIS_BREAKER_THRESHOLD`: consecutive Redis failures that open the breaker (default 5).
    pub fn breaker_threshold(mut self, n: u32) -> Self {
        self.breaker_threshold = Some(n);
        self
    }
    /// `REDIS_BREAKER_COOLDOWN`: how long the breaker stays open before a probe (default 1 s).
    pub fn breaker_cooldown(mut self, cooldown: Duration) -> Self {
        self.breaker_cooldown = Some(cooldown);
        self
    }
    /// `REDIS_MAX_VALUE_BYTES`: largest encoded value stored (default 8 MiB).
    pub fn max_value_bytes(mut self, n: usize) -> Self {
        self.max_value_bytes = Some(n);
        self
    }
    /// `REDIS_COMPRESS_MIN_BYTES`: compress codec payloads of at least `n` bytes (LZ4) before
    /// storing them (unset: never; a function's `compress = ...` argument wins). An entry is
    /// stored compressed only when that makes it smaller.
    ///
    /// ```
    /// let config = memo_redis::Config::builder().compress_min_bytes(4096).build()?;
    /// assert_eq!(config.compress_min_bytes(), Some(4096));
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn compress_min_bytes(mut self, n: usize) -> Self {
        self.compress_min_bytes = Some(n);
        self
    }
    /// `REDIS_LOCAL_MAX_BYTES`: bound of the near cache (keys plus encoded values) shared by this
    /// cache's `local = ...` functions (default 64 MiB). Zero is rejected by `build`.
    ///
    /// ```
    /// let config = memo_redis::Config::builder().local_max_bytes(8 << 20).build()?;
    /// assert_eq!(config.local_max_bytes(), 8 << 20);
    /// assert!(memo_redis::Config::builder().local_max_bytes(0).build().is_err());
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn local_max_bytes(mut self, n: usize) -> Self {
        self.local_max_bytes = Some(n);
        self
    }
    /// `REDIS_CODEC`: default codec for functions that do not name one (default bincode).
    pub fn codec(mut self, codec: CodecKind) -> Self {
        self.codec = Some(codec);
        self
    }

    /// `REDIS_TLS_CA_CERT` (a path to a PEM file): trust this CA for `rediss://` instead of the
    /// platform's root certificates (for private CAs and self-signed servers).
    pub fn tls_ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca_cert = Some(pem.into());
        self
    }

    /// Validates every setting.
    ///
    /// # Errors
    /// The first invalid setting, e.g. a port outside 1–65535, an unparsable URL, a zero timeout,
    /// a namespace containing `:`, or TLS mode when not supported.
    pub fn build(self) -> Result<Config, ConfigError> {
        let mut cluster_nodes = Vec::new();
        let (connection, display_url) = match &self.url {
            Some(url) if self.cluster => {
                cluster_nodes = parse_cluster_nodes(url)?;
                let first = cluster_nodes
                    .first()
                    .cloned()
                    .ok_or_else(|| ConfigError::Url {
                        url: redact_url(url),
                        reason: "no cluster node given".into(),
                    })?;
                (first, redact_url(&normalize_node_list(url)))
            }
            Some(url) => {
                check_url_shape(url)?;
                let info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| ConfigError::Url {
                        url: redact_url(url),
                        reason: url_error_reason(&e, url),
                    })?;
                (info, redact_url(url))
            }
            None => {
                let (info, display) = self.connection_from_fields()?;
                if self.cluster {
                    cluster_nodes.push(info.clone());
                }
                (info, display)
            }
        };
        if !cluster_nodes.is_empty() {
            if let Some(n) = cluster_nodes.iter().find(|n| n.redis_settings().db() != 0) {
                return Err(invalid(
                    "REDIS_DB",
                    &n.redis_settings().db().to_string(),
                    "Redis Cluster has only database 0",
                ));
            }
            // redis-rs connects to every node the way it connects to the first (TLS or not):
            // a mixed list would silently speak TLS to plain nodes or the reverse.
            let tls = |n: &redis::ConnectionInfo| matches!(n.addr(), ConnectionAddr::TcpTls { .. });
            if cluster_nodes.iter().any(tls) && !cluster_nodes.iter().all(tls) {
                return Err(ConfigError::Unsupported(
                    "cluster seed nodes mix `rediss://` and `redis://`; use one scheme for all"
                        .into(),
                ));
            }
        }
        if self.read_from_replicas && cluster_nodes.is_empty() {
            // Refused rather than ignored: a flag that silently does nothing on one environment
            // and changes consistency on another is a surprise waiting for production.
            return Err(invalid(
                "REDIS_READ_FROM_REPLICAS",
                "true",
                "reads from replicas need Redis Cluster (REDIS_CLUSTER=true); a single node has \
                 no replicas memo-redis could read from",
            ));
        }
        if matches!(connection.addr(), ConnectionAddr::TcpTls { .. }) && !tls_supported() {
            return Err(ConfigError::Unsupported(
                "TLS (`rediss://` or REDIS_SSL=true) needs the `tls` feature of memo-redis".into(),
            ));
        }
        let namespace = self
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        validate_segment("REDIS_PREFIX", &namespace)?;
        let op_timeout = positive("REDIS_SOCKET_TIMEOUT", self.op_timeout, DEFAULT_OP_TIMEOUT)?;
        let connect_timeout = positive(
            "REDIS_SOCKET_CONNECT_TIMEOUT",
            self.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?;
        let breaker_threshold = self.breaker_threshold.unwrap_or(DEFAULT_BREAKER_THRESHOLD);
        if breaker_threshold == 0 {
            return Err(invalid(
                "REDIS_BREAKER_THRESHOLD",
                "0",
                "must be at least 1",
            ));
        }
        let breaker_cooldown = positive(
            "REDIS_BREAKER_COOLDOWN",
            self.breaker_cooldown,
            DEFAULT_BREAKER_COOLDOWN,
        )?;
        let max_value_bytes = self.max_value_bytes.unwrap_or(DEFAULT_MAX_VALUE_BYTES);
        if max_value_bytes == 0 {
            return Err(invalid("REDIS_MAX_VALUE_BYTES", "0", "must be at least 1"));
        }
        let local_max_bytes = self.local_max_bytes.unwrap_or(DEFAULT_LOCAL_MAX_BYTES);
        if local_max_bytes == 0 {
            return Err(invalid("REDIS_LOCAL_MAX_BYTES", "0", "must be at least 1"));
        }
        Ok(Config {
            connection,
            display_url,
            namespace,
            default_ttl: self.default_ttl.unwrap_or(Some(DEFAULT_TTL)),
            op_timeout,
            connect_timeout,
            breaker_threshold,
            breaker_cooldown,
            max_value_bytes,
            compress_min_bytes: self.compress_min_bytes,
            local_max_bytes,
            codec: self.codec.unwrap_or_default(),
            tls_ca_cert: self.tls_ca_cert,
            cluster_nodes,
            read_from_replicas: self.read_from_replicas,
        })
    }

    fn connection_from_fields(&self) -> Result<(ConnectionInfo, String), ConfigError> {
        let host = self.host.clone().unwrap_or_else(|| "127.0.0.1".to_string());
        if host.trim().is_empty() {
            return Err(invalid("REDIS_HOST", "", "must not be empty"));
        }
        let port = self.port.unwrap_or(6379);
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid("REDIS_PORT", &port.to_string(), "must be 1-65535"))?;
        let db = self.db.unwrap_or(0);
        if db < 0 {
            return Err(invalid("REDIS_DB", &db.to_string(), "must not be negative"));
        }
        let addr = if self.ssl {
            ConnectionAddr::TcpTls {
                host: host.clone(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.clone(), port)
        };
        let info = addr.into_connection_info().map_err(|e| ConfigError::Url {
            url: redact_url(&host),
            reason: e.to_string(),
        })?;
        let mut settings = info.redis_settings().clone().set_db(db);
        if let Some(u) = &self.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &self.password {
            settings = settings.set_password(p);
        }
        let scheme = if self.ssl { "rediss" } else { "redis" };
        let auth = match (&self.username, &self.password) {
            (None, None) => "",
            _ => "***@",
        };
        let display = redact_url(&format!("{scheme}://{auth}{host}:{port}/{db}"));
        Ok((info.set_redis_settings(settings), display))
    }
}
