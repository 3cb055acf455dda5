//! Error types, one per layer, with secrets redacted.

use std::time::Duration;

/// Invalid configuration, reported by [`crate::Config::from_env`], [`crate::ConfigBuilder::build`]
/// and [`crate::Cache::install`].
///
/// Messages name the offending setting and the value as given, except for secrets, which are never
/// printed.
///
/// ```
/// let err = memo_redis::Config::builder().port(0).build().unwrap_err();
/// assert!(err.to_string().contains("REDIS_PORT"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting could not be parsed or is out of range.
    #[error("invalid {name} `{value}`: {reason}")]
    Invalid {
        /// The environment variable (or builder setting) name, e.g. `REDIS_PORT`.
        name: &'static str,
        /// The value as given (redacted for secrets).
        value: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The Redis URL could not be parsed.
    #[error("invalid REDIS_URL `{url}`: {reason}")]
    Url {
        /// The URL with any password replaced by `***`.
        url: String,
        /// Why redis-rs rejected it.
        reason: String,
    },
    /// A feature the configuration asks for was not compiled in or is not available yet.
    #[error("{0}")]
    Unsupported(String),
}

/// Errors of the explicit operations (companions such as `evict` and `peek`, [`crate::Cache::install`]).
///
/// A memoized call never returns this: it is fail-open and runs the function instead.
///
/// ```
/// use memo_redis::Error;
/// let e = Error::Timeout(std::time::Duration::from_millis(250));
/// assert_eq!(e.to_string(), "redis operation timed out after 250ms");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The cache was already installed or initialised.
    #[error("cache already initialised; install its configuration before the first cached call")]
    AlreadyInitialised,
    /// Redis answered with an error or the connection failed. The redis-rs error is kept: its
    /// [`kind`](redis::RedisError::kind), [`code`](redis::RedisError::code) and its own
    /// [`source`](std::error::Error::source) (e.g. the I/O error) stay reachable, and it is this
    /// error's `source()`.
    ///
    /// ```
    /// use std::error::Error as _;
    /// let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    /// let e = memo_redis::Error::from(memo_redis::redis::RedisError::from(io));
    /// assert!(e.to_string().starts_with("redis error: "));
    /// let source = e.source().and_then(|s| s.downcast_ref::<memo_redis::redis::RedisError>());
    /// assert!(source.is_some_and(|r| r.is_connection_refusal()));
    /// if let memo_redis::Error::Redis(r) = &e {
    ///     assert_eq!(r.kind(), memo_redis::redis::ErrorKind::Io);
    /// }
    /// ```
    #[error("redis error: {0}")]
    Redis(#[source] redis::RedisError),
    /// The operation did not finish within the configured operation timeout.
    #[error("redis operation timed out after {0:?}")]
    Timeout(Duration),
    /// The circuit breaker is open: Redis failed repeatedly and is not being asked for now.
    #[error("redis circuit breaker is open; not contacting redis until the cooldown elapses")]
    BreakerOpen,
    /// The key holds a value that is not a string (foreign data).
    #[error("redis holds a value of another type under the key")]
    WrongType,
    /// A value could not be encoded or an entry could not be decoded.
    #[error("codec error: {0}")]
    Codec(String),
    /// The key could not be computed (an argument failed to serialize).
    #[error("key error: {0}")]
    Key(String),
    /// Called outside a Tokio 1.x runtime, or on one built without its time or IO driver
    /// (`tokio::runtime::Builder` without `enable_all()`): Redis cannot be used from there.
    #[error("memo-redis needs a Tokio runtime with time and IO enabled: {0}")]
    Runtime(&'static str),
}

// redis-rs errors never carry the password (it is not echoed by the server and the connection
// info is not part of the message; `RedisError`'s `Debug` is its `Display`), so the error is kept
// whole and shown as is (tests/tests/redaction.rs checks every `Display`/`Debug`).
impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::Redis(e)
    }
}
