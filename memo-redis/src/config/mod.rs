//! Configuration: environment variables and a typed builder, validated once, secrets redacted.

use std::fmt;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::codec::CodecKind;
use crate::error::ConfigError;

#[path = "dotenv.rs"]
mod dotenv;

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
    pub(crate) max_connections: u32,
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

    /// Reads the configuration from the process environment (see the table in the crate docs)
    /// and, with the `dotenv` feature, from a `.env` file in the current directory if there is
    /// one; a variable set in the environment wins over the file (see `Config::from_env_and_file`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable that is malformed or out of range.
    ///
    /// ```
    /// // With no REDIS_* variables set this is the default configuration.
    /// let config = memo_redis::Config::from_env()?;
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Config, ConfigError> {
        dotenv::from_env()
    }

    /// Like [`Config::from_env`], reading variables through `lookup` instead of the environment
    /// (for tests and for configuration kept elsewhere).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable that is malformed or out of range.
    ///
    /// ```
    /// let config = memo_redis::Config::from_lookup(|name| match name {
    ///     "REDIS_PREFIX" => Some("svc".to_string()),
    ///     "REDIS_DEFAULT_TTL" => Some("0".to_string()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.namespace(), "svc");
    /// assert_eq!(config.default_ttl(), None);
    /// let err = memo_redis::Config::from_lookup(|n| (n == "REDIS_PORT").then(|| "70000".into()));
    /// assert!(err.unwrap_err().to_string().contains("REDIS_PORT"));
    /// # Ok::<(), memo_redis::ConfigError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = ConfigBuilder::default();
        if let Some(v) = get("REDIS_URL") {
            b = b.url(v);
        }
        if let Some(v) = get("REDIS_HOST") {
            b = b.host(v);
        }
        if let Some(v) = get("REDIS_PORT") {
            b.port = Some(parse_num::<u32>("REDIS_PORT", &v)?);
        }
        if let Some(v) = get("REDIS_DB") {
            b.db = Some(parse_num::<i64>("REDIS_DB", &v)?);
        }
        if let Some(v) = get("REDIS_USERNAME") {
            b = b.username(v);
        }
        if let Some(v) = lookup("REDIS_PASSWORD").filter(|v| !v.is_empty()) {
            b = b.password(v);
        }
        if let Some(v) = get("REDIS_SSL") {
            b = b.ssl(parse_bool("REDIS_SSL", &v)?);
        }
        if let Some(v) = get("REDIS_CLUSTER") {
            b = b.cluster(parse_bool("REDIS_CLUSTER", &v)?);
        }
        if let Some(v) = get("REDIS_PREFIX") {
            b = b.namespace(v);
        }
        if let Some(v) = get("REDIS_DEFAULT_TTL") {
            b.default_ttl = Some(parse_ttl_secs("REDIS_DEFAULT_TTL", &v)?);
        }
        if let Some(v) = get("REDIS_MAX_CONNECTIONS") {
            b.max_connections = Some(parse_num::<u32>("REDIS_MAX_CONNECTIONS", &v)?);
        }
        if let Some(v) = get("REDIS_SOCKET_TIMEOUT") {
            b.op_timeout = Some(parse_secs("REDIS_SOCKET_TIMEOUT", &v)?);
        }
        if let Some(v) = get("REDIS_SOCKET_CONNECT_TIMEOUT") {
            b.connect_timeout = Some(parse_secs("REDIS_SOCKET_CONNECT_TIMEOUT", &v)?);
        }
        if let Some(v) = get("REDIS_BREAKER_THRESHOLD") {
            b.breaker_threshold = Some(parse_num::<u32>("REDIS_BREAKER_THRESHOLD", &v)?);
        }
        if let Some(v) = get("REDIS_BREAKER_COOLDOWN") {
            b.breaker_cooldown = Some(parse_secs("REDIS_BREAKER_COOLDOWN", &v)?);
        }
        if let Some(v) = get("REDIS_MAX_VALUE_BYTES") {
            b.max_value_bytes = Some(parse_num::<usize>("REDIS_MAX_VALUE_BYTES", &v)?);
        }
        if let Some(v) = get("REDIS_COMPRESS_MIN_BYTES") {
            b.compress_min_bytes = Some(parse_num::<usize>("REDIS_COMPRESS_MIN_BYTES", &v)?);
        }
        if let Some(v) = get("REDIS_LOCAL_MAX_BYTES") {
            b.local_max_bytes = Some(parse_num::<usize>("REDIS_LOCAL_MAX_BYTES", &v)?);
        }
        if let Some(v) = get("REDIS_TLS_CA_CERT") {
            let pem = std::fs::read(v.trim()).map_err(|e| ConfigError::Invalid {
                name: "REDIS_TLS_CA_CERT",
                value: v.clone(),
                reason: format!("cannot read the CA certificate file: {e}"),
            })?;
            b = b.tls_ca_cert_pem(pem);
        }
        if let Some(v) = get("REDIS_CODEC") {
            b.codec =
                Some(
                    v.trim()
                        .parse::<CodecKind>()
                        .map_err(|reason| ConfigError::Invalid {
                            name: "REDIS_CODEC",
                            value: v.clone(),
                            reason,
                        })?,
                );
        }
        b.build()
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
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.display_url)
            .field("namespace", &self.namespace)
            .field("default_ttl", &self.default_ttl)
            .field("max_connections", &self.max_connections)
            .field("op_timeout", &self.op_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("compress_min_bytes", &self.compress_min_bytes)
            .field("local_max_bytes", &self.local_max_bytes)
            .field("codec", &self.codec)
            .field("cluster", &self.is_cluster())
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
    url: Option<String>,
    host: Option<String>,
    port: Option<u32>,
    db: Option<i64>,
    username: Option<String>,
    password: Option<String>,
    ssl: bool,
    cluster: bool,
    namespace: Option<String>,
    default_ttl: Option<Option<Duration>>,
    max_connections: Option<u32>,
    op_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    breaker_threshold: Option<u32>,
    breaker_cooldown: Option<Duration>,
    max_value_bytes: Option<usize>,
    compress_min_bytes: Option<usize>,
    local_max_bytes: Option<usize>,
    codec: Option<CodecKind>,
    tls_ca_cert: Option<Vec<u8>>,
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
    /// first node's scheme and credentials). See `docs/cluster.md`.
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }
    /// Redis Cluster mode with these seed nodes (`host:port` or full URLs); the same as
    /// `.cluster(true).url(nodes joined by commas)`.
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
    /// `REDIS_MAX_CONNECTIONS` (default 1). One multiplexed connection serves all concurrent
    /// calls; the value is validated and kept for future pooling.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n);
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
            if cluster_nodes
                .iter()
                .any(|n| matches!(n.addr(), ConnectionAddr::TcpTls { .. }))
            {
                return Err(ConfigError::Unsupported(
                    "TLS (`rediss://` or REDIS_SSL=true) together with REDIS_CLUSTER=true is not \
                     supported by this version of memo-redis"
                        .into(),
                ));
            }
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
        let max_connections = self.max_connections.unwrap_or(1);
        if max_connections == 0 {
            return Err(invalid("REDIS_MAX_CONNECTIONS", "0", "must be at least 1"));
        }
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
            max_connections,
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

/// Parses `redis://[auth@]h1:p1,h2:p2,...`: a node without `://` inherits the first node's
/// scheme and credentials.
fn parse_cluster_nodes(url: &str) -> Result<Vec<ConnectionInfo>, ConfigError> {
    let parts: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let first = parts.first().copied().unwrap_or("");
    let (scheme, auth) = match first.find("://") {
        Some(i) => {
            let rest = &first[i + 3..];
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            let auth = authority.rfind('@').map_or("", |at| &authority[..=at]);
            (&first[..i + 3], auth)
        }
        None => ("redis://", ""),
    };
    let mut nodes = Vec::with_capacity(parts.len());
    let count = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        let full = if part.contains("://") {
            part.to_string()
        } else {
            format!("{scheme}{auth}{part}")
        };
        check_url_shape(&full)?;
        let info = full
            .as_str()
            .into_connection_info()
            .map_err(|e| ConfigError::Url {
                url: redact_url(url),
                // By position, not text: a password containing `,` splits a node in two, and
                // either half may hold part of it.
                reason: format!(
                    "cluster node {} of {count}: {}",
                    i + 1,
                    url_error_reason(&e, &full)
                ),
            })?;
        nodes.push(info);
    }
    Ok(nodes)
}

/// `a, b ,c` → `a,b,c` (for display; redact the result).
fn normalize_node_list(url: &str) -> String {
    url.split(',').map(str::trim).collect::<Vec<_>>().join(",")
}

fn tls_supported() -> bool {
    cfg!(feature = "tls")
}

fn invalid(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn positive(
    name: &'static str,
    value: Option<Duration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let v = value.unwrap_or(default);
    if v.is_zero() {
        return Err(invalid(name, "0", "must be greater than zero"));
    }
    Ok(v)
}

/// Namespaces and prefixes are one key field: no `:` (it separates fields), no glob characters
/// (they would make pattern invalidation match other keys), no whitespace.
pub(crate) fn validate_segment(name: &'static str, s: &str) -> Result<(), ConfigError> {
    if s.is_empty() {
        return Err(invalid(name, s, "must not be empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, ':' | '*' | '?' | '[' | ']' | '{' | '}') || c.is_whitespace())
    {
        return Err(invalid(
            name,
            s,
            &format!("must not contain `{c}`; use letters, digits, `_`, `-`, `.` or `/`"),
        ));
    }
    Ok(())
}

fn parse_num<T: std::str::FromStr>(name: &'static str, v: &str) -> Result<T, ConfigError> {
    v.trim()
        .parse::<T>()
        .map_err(|_| invalid(name, v, "expected a non-negative whole number"))
}

fn parse_bool(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, v, "expected true or false")),
    }
}

/// A duration variable: seconds as a number (`0.25`, `3`: the historical form), or the
/// attribute's units (`250ms`, `90s`, `5m`, `1h30m`, `2d`).
fn parse_secs(name: &'static str, v: &str) -> Result<Duration, ConfigError> {
    let t = v.trim();
    if t.starts_with('-') {
        return Err(invalid(name, v, "must not be negative"));
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| invalid(name, v, "expected a finite number of seconds"));
    }
    parse_units(t).map_err(|why| {
        invalid(
            name,
            v,
            &format!("{why}; expected seconds (`0.25`) or a duration such as `250ms`, `90s`, `5m`, `1h30m`"),
        )
    })
}

/// `REDIS_DEFAULT_TTL`: whole seconds or units as for [`parse_secs`]; `0` or `never` = no expiry.
fn parse_ttl_secs(name: &'static str, v: &str) -> Result<Option<Duration>, ConfigError> {
    let t = v.trim();
    if t.starts_with('-') {
        return Err(invalid(name, v, "must not be negative; 0 means no expiry"));
    }
    if t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let ttl = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => parse_units(t).map_err(|why| {
            invalid(
                name,
                v,
                &format!("{why}; expected whole seconds (`300`), a duration such as `5m` or `1h30m`, or `never` (also `0`)"),
            )
        })?,
    };
    Ok((!ttl.is_zero()).then_some(ttl))
}

/// `90s`, `5m`, `1h30m`, `1500ms`, `2d`: the grammar of the attribute's durations
/// (`memo-redis-derive`'s `parse_duration_ms`, which a proc-macro crate cannot share at run time;
/// the unit tests below hold both to the same examples).
fn parse_units(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "number too large".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("missing unit after `{n}`")),
            other => return Err(format!("unknown unit `{other}`")),
        };
        total_ms = n
            .checked_mul(factor)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| "duration too large".to_string())?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// The mistakes people make in `REDIS_URL`, each with its fix, before redis-rs's own parser
/// (whose messages, e.g. "InvalidClientConfig", do not say what to change).
fn check_url_shape(url: &str) -> Result<(), ConfigError> {
    let t = url.trim();
    let error = |reason: &str| ConfigError::Url {
        url: redact_url(t),
        reason: reason.to_string(),
    };
    let Some(scheme_end) = t.find("://") else {
        return Err(error(
            "missing scheme; write `redis://host:port` (or `rediss://` for TLS, `unix://` for a socket)",
        ));
    };
    let scheme = t[..scheme_end].to_ascii_lowercase();
    match scheme.as_str() {
        "redis" | "valkey" => {}
        "rediss" | "valkeys" if !tls_supported() => {
            return Err(error(
                "`rediss://` (TLS) needs memo-redis's `tls` cargo feature: \
                 memo-redis = { version = \"0.1\", features = [\"tls\"] }",
            ))
        }
        "rediss" | "valkeys" | "unix" | "redis+unix" | "valkey+unix" => {}
        "http" | "https" | "tcp" => {
            return Err(error(&format!(
                "`{scheme}://` is not a Redis scheme; write `redis://` (or `rediss://` for TLS)"
            )))
        }
        other => {
            return Err(error(&format!(
                "unknown scheme `{other}://`; write `redis://` (or `rediss://` for TLS)"
            )))
        }
    }
    if scheme.ends_with("unix") {
        return Ok(());
    }
    let rest = &t[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..]);
    if host_port.is_empty() || host_port.starts_with(':') {
        return Err(error(
            "missing host; write `redis://host:port`, e.g. `redis://127.0.0.1:6379`",
        ));
    }
    Ok(())
}

/// The one redaction of anything that may hold credentials (a URL, a node list, a host): from
/// after the scheme (or the start) up to the **last** `@`, everything is replaced by `***` — user,
/// password and whatever a password containing `@`, `/`, `:` or `,` would make a URL parser see —
/// and the values of `pass`/`password` query parameters (unix-socket URLs) likewise.
///
/// `redis://app:p@ss/w:rd@h:6379/0` → `redis://***@h:6379/0`; `app:pw@h:1` → `***@h:1`.
pub(crate) fn redact_url(url: &str) -> String {
    // A scheme is letters, digits, `+`, `-`, `.` before `://`; a password containing `://` in
    // a URL without one must not be taken for it.
    let scheme_len = url.find("://").filter(|&i| {
        i > 0
            && url[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let (scheme, rest) = match scheme_len {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let rest = match rest.rfind('@') {
        Some(at) => format!("***{}", &rest[at..]),
        None => rest.to_string(),
    };
    format!("{scheme}{}", redact_query(&rest))
}

/// redis-rs's reason for rejecting `url`. Its detail quotes part of the URL (a `protocol=`
/// value); when the URL holds an `@`, that part may be a piece of a password that a URL parser
/// cut elsewhere, so it is not shown.
fn url_error_reason(e: &redis::RedisError, url: &str) -> String {
    let text = e.to_string();
    match e.detail() {
        Some(detail) if !detail.is_empty() && url.contains('@') => text.replace(detail, "***"),
        _ => text,
    }
}

/// `…?db=1&pass=secret` → `…?db=1&pass=***`.
fn redact_query(s: &str) -> String {
    let Some(q) = s.find('?') else {
        return s.to_string();
    };
    let params: Vec<String> = s[q + 1..]
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _))
                if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") =>
            {
                format!("{k}=***")
            }
            _ => kv.to_string(),
        })
        .collect();
    format!("{}?{}", &s[..q], params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults() {
        let c = from(&[]).unwrap();
        assert_eq!(c.namespace(), "memo");
        assert_eq!(c.default_ttl(), Some(DEFAULT_TTL));
        assert_eq!(c.op_timeout(), DEFAULT_OP_TIMEOUT);
        assert_eq!(c.redacted_url(), "redis://127.0.0.1:6379/0");
    }

    #[test]
    fn table_of_bad_values() {
        let cases: &[(&str, &str, &str)] = &[
            ("REDIS_PORT", "0", "invalid REDIS_PORT `0`: must be 1-65535"),
            ("REDIS_PORT", "65536", "invalid REDIS_PORT `65536`: must be 1-65535"),
            ("REDIS_PORT", "abc", "invalid REDIS_PORT `abc`: expected a non-negative whole number"),
            ("REDIS_DB", "-1", "invalid REDIS_DB `-1`: must not be negative"),
            ("REDIS_DEFAULT_TTL", "-5", "invalid REDIS_DEFAULT_TTL `-5`: must not be negative; 0 means no expiry"),
            ("REDIS_DEFAULT_TTL", "1.5", "invalid REDIS_DEFAULT_TTL `1.5`: missing unit after `1`; expected whole seconds (`300`), a duration such as `5m` or `1h30m`, or `never` (also `0`)"),
            ("REDIS_DEFAULT_TTL", "5 minutes", "invalid REDIS_DEFAULT_TTL `5 minutes`: missing unit after `5`; expected whole seconds (`300`), a duration such as `5m` or `1h30m`, or `never` (also `0`)"),
            ("REDIS_SOCKET_TIMEOUT", "0", "invalid REDIS_SOCKET_TIMEOUT `0`: must be greater than zero"),
            ("REDIS_SOCKET_TIMEOUT", "-1", "invalid REDIS_SOCKET_TIMEOUT `-1`: must not be negative"),
            ("REDIS_SOCKET_TIMEOUT", "250mss", "invalid REDIS_SOCKET_TIMEOUT `250mss`: unknown unit `mss`; expected seconds (`0.25`) or a duration such as `250ms`, `90s`, `5m`, `1h30m`"),
            ("REDIS_SOCKET_CONNECT_TIMEOUT", "x", "invalid REDIS_SOCKET_CONNECT_TIMEOUT `x`: expected a number at `x`; expected seconds (`0.25`) or a duration such as `250ms`, `90s`, `5m`, `1h30m`"),
            ("REDIS_SSL", "maybe", "invalid REDIS_SSL `maybe`: expected true or false"),
            ("REDIS_PREFIX", "a:b", "invalid REDIS_PREFIX `a:b`: must not contain `:`; use letters, digits, `_`, `-`, `.` or `/`"),
            ("REDIS_MAX_CONNECTIONS", "0", "invalid REDIS_MAX_CONNECTIONS `0`: must be at least 1"),
            ("REDIS_CODEC", "xml", "invalid REDIS_CODEC `xml`: unknown codec `xml`; expected one of `bincode`, `json`, `msgpack`, `postcard`"),
            ("REDIS_DB", "x", "invalid REDIS_DB `x`: expected a non-negative whole number"),
            ("REDIS_CLUSTER", "2", "invalid REDIS_CLUSTER `2`: expected true or false"),
            ("REDIS_PREFIX", "a{b}", "invalid REDIS_PREFIX `a{b}`: must not contain `{`; use letters, digits, `_`, `-`, `.` or `/`"),
            ("REDIS_MAX_CONNECTIONS", "-1", "invalid REDIS_MAX_CONNECTIONS `-1`: expected a non-negative whole number"),
            ("REDIS_BREAKER_THRESHOLD", "0", "invalid REDIS_BREAKER_THRESHOLD `0`: must be at least 1"),
            ("REDIS_BREAKER_THRESHOLD", "many", "invalid REDIS_BREAKER_THRESHOLD `many`: expected a non-negative whole number"),
            ("REDIS_BREAKER_COOLDOWN", "0", "invalid REDIS_BREAKER_COOLDOWN `0`: must be greater than zero"),
            ("REDIS_BREAKER_COOLDOWN", "inf", "invalid REDIS_BREAKER_COOLDOWN `inf`: expected a finite number of seconds"),
            ("REDIS_MAX_VALUE_BYTES", "0", "invalid REDIS_MAX_VALUE_BYTES `0`: must be at least 1"),
            ("REDIS_MAX_VALUE_BYTES", "1e6", "invalid REDIS_MAX_VALUE_BYTES `1e6`: expected a non-negative whole number"),
            ("REDIS_LOCAL_MAX_BYTES", "0", "invalid REDIS_LOCAL_MAX_BYTES `0`: must be at least 1"),
        ];
        for (name, value, want) in cases {
            let err = from(&[(name, value)]).unwrap_err();
            assert_eq!(err.to_string(), *want, "{name}={value}");
        }
        let err = from(&[("REDIS_URL", "http://:pw@host")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid REDIS_URL `http://***@host`"),
            "{err}"
        );
        assert!(!err.to_string().contains("pw@"));
        let err = from(&[
            ("REDIS_CLUSTER", "true"),
            ("REDIS_URL", "redis://h1:7000/1,h2:7001"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("only database 0"), "{err}");
    }

    #[test]
    fn durations_accept_the_attribute_units() {
        let c = from(&[
            ("REDIS_DEFAULT_TTL", "5m"),
            ("REDIS_SOCKET_TIMEOUT", "250ms"),
            ("REDIS_SOCKET_CONNECT_TIMEOUT", "2s"),
            ("REDIS_BREAKER_COOLDOWN", "1m30s"),
        ])
        .unwrap();
        assert_eq!(c.default_ttl(), Some(Duration::from_secs(300)));
        assert_eq!(c.op_timeout(), Duration::from_millis(250));
        assert_eq!(c.connect_timeout(), Duration::from_secs(2));
        assert_eq!(c.breaker_cooldown, Duration::from_secs(90));
        // The historical forms still mean what they meant.
        let c = from(&[
            ("REDIS_DEFAULT_TTL", "3600"),
            ("REDIS_SOCKET_TIMEOUT", "0.25"),
        ])
        .unwrap();
        assert_eq!(c.default_ttl(), Some(Duration::from_secs(3600)));
        assert_eq!(c.op_timeout(), Duration::from_millis(250));
        for never in ["0", "never", "NEVER", "0s"] {
            let c = from(&[("REDIS_DEFAULT_TTL", never)]).unwrap();
            assert_eq!(c.default_ttl(), None, "{never}");
        }
        // The attribute's examples (memo-redis-derive's parse_duration_ms tests).
        assert_eq!(parse_units("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_units("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_units("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_units("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_units("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_units("5").is_err());
        assert!(parse_units("5 minutes").is_err());
        assert!(parse_units("m").is_err());
    }

    #[test]
    fn url_mistakes_name_the_fix() {
        let cases: &[(&str, &str)] = &[
            (
                "http://127.0.0.1:6379",
                "`http://` is not a Redis scheme; write `redis://`",
            ),
            (
                "https://cache.example.com",
                "`https://` is not a Redis scheme",
            ),
            (
                "127.0.0.1:6390",
                "missing scheme; write `redis://host:port`",
            ),
            ("memcached://h:1", "unknown scheme `memcached://`"),
            ("redis://", "missing host"),
            ("redis://:6379", "missing host"),
            ("redis://:pw@:6379/0", "missing host"),
        ];
        for (url, want) in cases {
            let err = from(&[("REDIS_URL", url)]).unwrap_err().to_string();
            assert!(err.contains(want), "{url}: {err}");
            assert!(
                !err.contains("secret") && !err.contains(":pw@"),
                "{url}: {err}"
            );
        }
        #[cfg(not(feature = "tls"))]
        {
            let err = from(&[("REDIS_URL", "rediss://h:6380")])
                .unwrap_err()
                .to_string();
            assert!(err.contains("`tls` cargo feature"), "{err}");
        }
        let err = from(&[
            ("REDIS_CLUSTER", "true"),
            ("REDIS_URL", "redis://h1:7000,http://h2:7001"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("not a Redis scheme"), "{err}");
        for ok in [
            "redis://127.0.0.1:6379/2",
            "valkey://h:1",
            "unix:///run/redis.sock",
            "redis://u:p@h",
        ] {
            assert!(from(&[("REDIS_URL", ok)]).is_ok(), "{ok}");
        }
    }

    #[test]
    fn table_of_every_variable() {
        let ca = std::env::temp_dir().join(format!("memo-redis-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, b"-----BEGIN CERTIFICATE-----\n").unwrap();
        let ca_path = ca.display().to_string();
        let c = from(&[
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6390"),
            ("REDIS_DB", "4"),
            ("REDIS_USERNAME", "svc"),
            ("REDIS_PASSWORD", "p4ss"),
            ("REDIS_SSL", "false"),
            ("REDIS_CLUSTER", "no"),
            ("REDIS_PREFIX", "svc"),
            ("REDIS_DEFAULT_TTL", "120"),
            ("REDIS_MAX_CONNECTIONS", "8"),
            ("REDIS_SOCKET_TIMEOUT", "0.1"),
            ("REDIS_SOCKET_CONNECT_TIMEOUT", "2.5"),
            ("REDIS_BREAKER_THRESHOLD", "3"),
            ("REDIS_BREAKER_COOLDOWN", "0.5"),
            ("REDIS_MAX_VALUE_BYTES", "1024"),
            ("REDIS_COMPRESS_MIN_BYTES", "512"),
            ("REDIS_LOCAL_MAX_BYTES", "2048"),
            ("REDIS_CODEC", " bincode "),
            ("REDIS_TLS_CA_CERT", &ca_path),
        ])
        .unwrap();
        std::fs::remove_file(&ca).unwrap();
        assert_eq!(c.redacted_url(), "redis://***@cache.internal:6390/4");
        assert_eq!(c.connection.redis_settings().username(), Some("svc"));
        assert_eq!(c.connection.redis_settings().password(), Some("p4ss"));
        assert!(!c.is_cluster());
        assert_eq!(c.namespace(), "svc");
        assert_eq!(c.default_ttl(), Some(Duration::from_secs(120)));
        assert_eq!(c.max_connections, 8);
        assert_eq!(c.op_timeout(), Duration::from_millis(100));
        assert_eq!(c.connect_timeout(), Duration::from_millis(2500));
        assert_eq!(c.breaker_threshold, 3);
        assert_eq!(c.breaker_cooldown, Duration::from_millis(500));
        assert_eq!(c.max_value_bytes(), 1024);
        assert_eq!(c.compress_min_bytes(), Some(512));
        assert_eq!(c.local_max_bytes(), 2048);
        assert_eq!(
            c.codec(),
            CodecKind::Bincode,
            "the only codec without a feature"
        );
        assert_eq!(c.tls_ca_cert.as_deref().map(<[u8]>::len), Some(28));
        for shown in [format!("{c:?}"), c.to_string()] {
            assert!(!shown.contains("p4ss"), "{shown}");
        }

        // Every builder method sets the same thing.
        let b = Config::builder()
            .host("cache.internal")
            .port(6390)
            .db(4)
            .username("svc")
            .password("p4ss")
            .ssl(false)
            .cluster(false)
            .namespace("svc")
            .default_ttl(Duration::from_secs(120))
            .max_connections(8)
            .op_timeout(Duration::from_millis(100))
            .connect_timeout(Duration::from_millis(2500))
            .breaker_threshold(3)
            .breaker_cooldown(Duration::from_millis(500))
            .max_value_bytes(1024)
            .compress_min_bytes(512)
            .local_max_bytes(2048)
            .codec(CodecKind::Bincode)
            .tls_ca_cert_pem(b"-----BEGIN CERTIFICATE-----\n".to_vec());
        assert!(!format!("{b:?}").contains("p4ss"));
        assert_eq!(format!("{:?}", b.build().unwrap()), format!("{c:?}"));

        // A CA file that cannot be read names the variable and the path.
        let err = from(&[("REDIS_TLS_CA_CERT", "/nonexistent/ca.pem")]).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "invalid REDIS_TLS_CA_CERT `/nonexistent/ca.pem`: cannot read the CA certificate file"
            ),
            "{err}"
        );
        // TLS together with cluster mode is refused at configuration time.
        let err = from(&[("REDIS_CLUSTER", "true"), ("REDIS_SSL", "true")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TLS (`rediss://` or REDIS_SSL=true) together with REDIS_CLUSTER=true is not \
             supported by this version of memo-redis"
        );
    }

    #[test]
    fn cluster_nodes() {
        let c = from(&[
            ("REDIS_CLUSTER", "true"),
            ("REDIS_URL", "redis://:pw@n1:7000, n2:7001,redis://n3:7002"),
        ])
        .unwrap();
        assert!(c.is_cluster());
        assert_eq!(c.cluster_nodes.len(), 3);
        assert_eq!(c.cluster_nodes[1].redis_settings().password(), Some("pw"));
        assert_eq!(c.cluster_nodes[2].redis_settings().password(), None);
        assert_eq!(
            c.redacted_url(),
            "redis://***@n1:7000,n2:7001,redis://n3:7002"
        );
        assert!(!format!("{c:?}").contains("pw"));
        let b = Config::builder()
            .cluster_nodes(["127.0.0.1:7000", "127.0.0.1:7001"])
            .build()
            .unwrap();
        assert!(b.is_cluster());
        assert_eq!(b.cluster_nodes.len(), 2);
        let single = from(&[("REDIS_URL", "redis://h:1")]).unwrap();
        assert!(!single.is_cluster());
        // A cluster without a URL uses the host/port fields as its only seed node.
        let fields = from(&[("REDIS_CLUSTER", "true"), ("REDIS_PORT", "7000")]).unwrap();
        assert_eq!(fields.cluster_nodes.len(), 1);
    }

    #[test]
    fn fields_and_url() {
        let c = from(&[
            ("REDIS_HOST", "10.0.0.1"),
            ("REDIS_PORT", "6380"),
            ("REDIS_DB", "3"),
            ("REDIS_USERNAME", "app"),
            ("REDIS_PASSWORD", "hunter2"),
            ("REDIS_DEFAULT_TTL", "0"),
            ("REDIS_SOCKET_TIMEOUT", "0.5"),
        ])
        .unwrap();
        assert_eq!(c.redacted_url(), "redis://***@10.0.0.1:6380/3");
        assert_eq!(c.default_ttl(), None);
        assert_eq!(c.op_timeout(), Duration::from_millis(500));
        assert_eq!(c.connection.redis_settings().password(), Some("hunter2"));
        // REDIS_URL wins over the fields.
        let c = from(&[("REDIS_URL", "redis://u:pw@h:1/2"), ("REDIS_PORT", "7")]).unwrap();
        assert_eq!(c.redacted_url(), "redis://***@h:1/2");
        for shown in [format!("{c:?}"), c.to_string()] {
            assert!(!shown.contains("pw"), "{shown}");
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("redis://:p@h:1"), "redis://***@h:1");
        assert_eq!(redact_url("redis://u@h"), "redis://***@h");
        assert_eq!(redact_url("redis://h/0"), "redis://h/0");
        assert_eq!(redact_url("rediss://u:p:q@h/0"), "rediss://***@h/0");
        // The cases of issue 12: `/` in the password, no scheme, `@` in the password.
        assert_eq!(
            redact_url("redis://app:PWSLASH/abc+def@127.0.0.1:16379"),
            "redis://***@127.0.0.1:16379"
        );
        assert_eq!(redact_url("app:PW@127.0.0.1:16379"), "***@127.0.0.1:16379");
        assert_eq!(redact_url("redis://:p@ss:w/rd@h:1"), "redis://***@h:1");
        assert_eq!(redact_url("a:x://y@h:1"), "***@h:1", "not a scheme");
        // A password a parser cut at `?` leaves its tail in redis-rs's error detail.
        let err = Config::builder()
            .url("redis://h/?protocol=x:Pq7secret@h2")
            .build()
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("Pq7"), "{err}");
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
    }
}
