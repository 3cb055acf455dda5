//! [`Config::from_env`]: the `REDIS_*` variables (and a `.env` file), read through the builder.

use super::dotenv;
use super::parse::{parse_bool, parse_num, parse_secs, parse_ttl_secs};
use super::{Config, ConfigBuilder};
use crate::codec::CodecKind;
use crate::error::ConfigError;

impl Config {
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
        if let Some(v) = get("REDIS_READ_FROM_REPLICAS") {
            b = b.read_from_replicas(parse_bool("REDIS_READ_FROM_REPLICAS", &v)?);
        }
        if let Some(v) = get("REDIS_PREFIX") {
            b = b.namespace(v);
        }
        if let Some(v) = get("REDIS_DEFAULT_TTL") {
            b.default_ttl = Some(parse_ttl_secs("REDIS_DEFAULT_TTL", &v)?);
        }
        if get("REDIS_MAX_CONNECTIONS").is_some() {
            // Removed (issue 17): several connections served fewer hits per second than one.
            // Ignored rather than refused, so a deployment that sets it keeps starting.
            tracing::warn!(
                "REDIS_MAX_CONNECTIONS is ignored: a cache uses one multiplexed connection, which \
                 outperformed several (docs/benchmarks.md); remove the variable"
            );
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
}
