//! The typed handle: explicit `get` / `set` / `evict` / `has` / `get_or_set_with`, sliding and
//! absolute expiry and tag groups as methods on [`Cache`], storing the same entries (envelope,
//! keys) as cached functions.
//!
//! # Keys
//!
//! A handle key `k` is the Redis key `{namespace}:{k}`. A key that already starts with
//! `{namespace}:` — the output of a cached function's `f_key()` companion, or of
//! [`Cache::full_key`] — is used as is, so the handle reads and writes a cached function's entries.
//! Keys whose remainder starts with `tag:` or `tags:` are reserved for tag bookkeeping.
//!
//! # Errors
//!
//! Unlike a memoized call, the explicit operations report Redis trouble: a failure, a timeout or an
//! open circuit breaker is an `Err`. [`Cache::get_fail_open`] and [`Cache::set_fail_open`] are the
//! fail-open variants, and [`Cache::get_or_set_with`] still returns the closure's value when Redis
//! fails.
//!
//! # Tags
//!
//! [`Cache::set_with_tags`] records the entry in one sorted set per tag (`{namespace}:tag:{tag}`,
//! the scheme cached functions with `tags = [...]` use, see `tags.rs`), and the entry's tag list in
//! `{namespace}:tags:{S}{entry key}`, which expires with the entry. `{S}` is a hash tag naming the
//! entry's Redis Cluster slot, so that the scripts touching an entry and its list work (atomically)
//! on a cluster too (see `tag_list_key`). The list lets
//! [`Cache::get_and_extend`] and [`Cache::expire_at`] move the entry's expiry in its tag sets too, so
//! a sliding entry stays in its groups for as long as it lives; [`Cache::set`] and
//! [`Cache::evict`] take the entry out of the groups its previous write put it in.

use std::convert::Infallible;
use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::{Cache, Inner};
use crate::clock::now_ms;
use crate::codec::Storable;
use crate::error::Error;
use crate::events::Event;
use crate::log::RateLimited;
use crate::pipeline::entry;
use crate::store::Budget;
use crate::tags;

mod fill;
mod tag_list;

use tag_list::{
    decode_tags, leave_groups, tag_list, tag_list_key, write, DELETE, EXPIRE_AT, EXTEND,
};

/// TTLs are capped at 2^52 ms (about 142,000 years): expiry times then stay exact as sorted-set
/// scores (doubles) and far from the overflow Redis checks for.
const MAX_TTL_MS: u64 = 1 << 52;

/// One warning per interval for the fail-open variants, whatever the key.
static FAIL_OPEN_LOG: LazyLock<RateLimited> = LazyLock::new(RateLimited::new);

impl Cache {
    /// The TTL meaning "never expires": pass `Some(Cache::NO_EXPIRY)` to [`Cache::set`] and its
    /// siblings; [`Cache::ttl`] reports it for an entry without expiry.
    ///
    /// ```
    /// assert_eq!(memo_redis::Cache::NO_EXPIRY, std::time::Duration::MAX);
    /// ```
    pub const NO_EXPIRY: Duration = Duration::MAX;

    /// The Redis key the handle uses for `key`: `{namespace}:{key}`, or `key` itself when it
    /// already starts with `{namespace}:` (a cached function's `f_key()`, or this function's own
    /// output).
    ///
    /// # Errors
    /// [`Error::Config`] when the cache's configuration is invalid; [`Error::Key`] when `key` is
    /// empty, is only the namespace, or falls in the space reserved for tag bookkeeping
    /// (`tag:…`, `tags:…`).
    ///
    /// ```
    /// use memo_redis::{Cache, Config};
    /// static APP: Cache = Cache::lazy(|| Config::builder().namespace("app").build());
    ///
    /// assert_eq!(APP.full_key("user:1")?, "app:user:1");
    /// assert_eq!(APP.full_key("app:user:1")?, "app:user:1", "already inside the namespace");
    /// assert!(APP.full_key("").is_err());
    /// assert!(APP.full_key("tag:user:1").is_err(), "reserved for tag sets");
    /// # Ok::<(), memo_redis::Error>(())
    /// ```
    pub fn full_key(&self, key: &str) -> Result<String, Error> {
        full_key_in(&self.ready()?.config.namespace, key)
    }

    /// The value stored under `key`, `Ok(None)` when there is none or when the entry is a cached
    /// `None` (written by a function with `cache_none = true`).
    ///
    /// `T` is the cached value type: `U` for a function returning `U`, `Option<U>`,
    /// `Result<U, E>` or `Result<Option<U>, E>`. The entry's codec is read from its envelope.
    ///
    /// # Errors
    /// [`Error::Codec`] when the entry is corrupt, foreign (not written by memo-redis), larger than
    /// `max_value_bytes` or not a `T` (nothing is deleted); [`Error::WrongType`] when the key holds
    /// a Redis list, hash, …; [`Error::Redis`], [`Error::Timeout`] or [`Error::BreakerOpen`] when
    /// Redis could not answer; [`Error::Key`] / [`Error::Config`] as for [`Cache::full_key`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// let cache = memo_redis::global();
    /// let visits: Option<u64> = cache.get("visits:home").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let inner = self.ready()?;
        let full = full_key_in(&inner.config.namespace, key)?;
        match inner.store.get(&full, inner.store.op_timeout()).await? {
            Some(bytes) => decode(&bytes, inner.config.max_value_bytes),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key` for `ttl`: `None` is the cache's default TTL
    /// (`REDIS_DEFAULT_TTL`, which may itself be "no expiry"), `Some(Cache::NO_EXPIRY)` never
    /// expires, anything else is rounded up to whole milliseconds (at least 1 ms).
    ///
    /// The value is encoded with the cache's codec in the envelope cached functions use, so a
    /// value stored under a function's key (`f_key(&args)?`) is what that function then returns.
    /// If `key` was stored with [`Cache::set_with_tags`] before, it leaves those groups.
    ///
    /// The write is guarded like a cached function's: a value nested deeper than
    /// [`MAX_DEPTH`](crate::depth::MAX_DEPTH) levels, or one whose encoding does not decode back
    /// to the same value with the cache's codec (e.g. a `skip_serializing_if` field with bincode,
    /// `Some(None)` with JSON), is not written. `T` is any `Serialize + DeserializeOwned` type,
    /// or `str` / `[T]` (see [`Storable`]).
    ///
    /// # Errors
    /// [`Error::Codec`] when the codec cannot encode the value, the value is too deep or does not
    /// decode back to itself, or its encoding exceeds
    /// `max_value_bytes` (nothing is written); [`Error::Redis`], [`Error::Timeout`] or
    /// [`Error::BreakerOpen`] when Redis could not be written; [`Error::Key`] /
    /// [`Error::Config`] as for [`Cache::full_key`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use memo_redis::Cache;
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// let cache = memo_redis::global();
    /// cache.set("motd", &"hello".to_string(), Some(Duration::from_secs(60))).await?;
    /// cache.set("config:v", &3u32, Some(Cache::NO_EXPIRY)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set<T: Storable + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        self.set_with_tags(key, value, ttl, &[]).await
    }

    /// [`Cache::set`], also making the entry a member of each group in `tags` (and of no other):
    /// [`Cache::invalidate_tags`] on one of them deletes it, together with
    /// the entries of cached functions carrying the same tag.
    ///
    /// Tags are used verbatim: `"user:42"` is the group a function with
    /// `tags = ["user:{id}"]` puts `id = 42` in, and `"region:eu-west"` the one
    /// `tags = ["region:{region}"]` puts `"eu-west"` in (functions do not escape tag values).
    ///
    /// # Errors
    /// As for [`Cache::set`]; [`Error::Key`] when a tag is empty. On a Redis error after the value
    /// was written, the entry may be missing from some of its groups: write it again.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// let cache = memo_redis::global();
    /// let ttl = Some(Duration::from_secs(600));
    /// cache.set_with_tags("cart:42", &vec![7u32, 9], ttl, &["user:42", "carts"]).await?;
    /// cache.invalidate_tags(["user:42"]).await?; // the cart is gone
    /// # Ok(()) }
    /// ```
    pub async fn set_with_tags<T: Storable + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        tags: &[&str],
    ) -> Result<(), Error> {
        let inner = self.ready()?;
        let full = full_key_in(&inner.config.namespace, key)?;
        let tags = tag_list(tags)?;
        let bytes = encode::<T, T::Owned>(inner, value, crate::schema::tag_of::<T::Owned>())?;
        let mut budget = Budget::new(inner.store.op_timeout());
        write(
            inner,
            &full,
            &bytes,
            resolve_ttl(inner, ttl),
            &tags,
            &mut budget,
        )
        .await
    }

    /// Deletes `key`; `true` if it existed. The entry leaves its groups and the deletion is
    /// announced on the cache's event channel (like a cached function's `f_evict`).
    ///
    /// # Errors
    /// [`Error::Redis`], [`Error::Timeout`] or [`Error::BreakerOpen`] when Redis could not
    /// answer; [`Error::Key`] / [`Error::Config`] as for [`Cache::full_key`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// let existed = memo_redis::global().evict("motd").await?;
    /// # Ok(()) }
    /// ```
    pub async fn evict(&self, key: &str) -> Result<bool, Error> {
        let inner = self.ready()?;
        let full = full_key_in(&inner.config.namespace, key)?;
        let mut invocation = DELETE.key(&full);
        invocation.key(tag_list_key(inner, &full));
        let (deleted, old): (u64, Option<Vec<u8>>) = inner.store.invoke(&invocation).await?;
        if let Some(old) = old {
            let mut budget = Budget::new(inner.store.op_timeout());
            leave_groups(inner, &full, &decode_tags(&old), &[], &mut budget).await?;
        }
        inner.announce(Event::Keys(vec![full])).await;
        Ok(deleted > 0)
    }

    /// Whether `key` holds an entry (any entry: a cached `None`, or one [`Cache::get`] would
    /// reject as corrupt, counts).
    ///
    /// # Errors
    /// [`Error::Redis`], [`Error::Timeout`] or [`Error::BreakerOpen`] when Redis could not
    /// answer; [`Error::Key`] / [`Error::Config`] as for [`Cache::full_key`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// if !memo_redis::global().has("motd").await? {
    ///     println!("no message of the day");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn has(&self, key: &str) -> Result<bool, Error> {
        let inner = self.ready()?;
        let full = full_key_in(&inner.config.namespace, key)?;
        let n: u64 = inner.store.query(redis::cmd("EXISTS").arg(&full)).await?;
        Ok(n > 0)
    }

    /// The value under `key`, or the one `make` computes, stored for `ttl` (as in
    /// [`Cache::set`]).
    ///
    /// An entry that is missing, corrupt, a cached `None`, or not a `T` counts as a miss and is
    /// overwritten.
    ///
    /// # Concurrent calls on the same key
    /// Within a process, each call reads Redis (hits need no coordination); on a miss one call
    /// runs its `make` and the concurrent calls wait and decode its result (`T` needs no
    /// `Clone`). If that call is cancelled, one of the waiting calls takes over; if its `make`
    /// returns an `Err` or panics, every waiting call runs its own `make` at once and stores an
    /// `Ok` it gets (the panic goes on to that call's caller). Each call has one Redis time
    /// budget (the operation timeout) for all its reads and writes. The calls share this table
    /// with cached functions (it is the same pipeline), so a function's call and a handle call
    /// on the function's key also coalesce. Across processes there is no lock: each process may
    /// compute once. An entry that cannot be decoded as a `T` and is not overwritten (the value
    /// was not stored) is deleted, unless it changed meanwhile, as for cached functions.
    ///
    /// # Errors
    /// Only [`Error::Key`] and [`Error::Config`] (as for [`Cache::full_key`]), and then `make`
    /// does not run. Redis trouble is fail-open: when Redis cannot be read (error, timeout, open
    /// breaker) `make` runs and its value is returned without being stored; when the value
    /// cannot be stored (Redis error, encoding failure, too large) it is returned all the same
    /// and the failure is logged.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn load_rates() -> Vec<f64> { vec![1.08] }
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// let rates: Vec<f64> = memo_redis::global()
    ///     .get_or_set_with("fx:eur", Some(Duration::from_secs(30)), || async { load_rates().await })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_or_set_with<T, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        make: F,
    ) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let outcome = self
            .fill::<T, Infallible, _, _>(key, ttl, || async { Ok(make().await) })
            .await?;
        match outcome {
            Ok(value) => Ok(value),
            Err(never) => match never {},
        }
    }

    /// [`Cache::get_or_set_with`] for a fallible `make`: an `Err` is returned as is and never
    /// stored; concurrent calls waiting for it then run their own `make`.
    ///
    /// # Errors
    /// `make`'s error; [`Error::Key`] or [`Error::Config`] (converted with `E: From<Error>`)
    /// before `make` runs. Redis trouble is fail-open, as for [`Cache::get_or_set_with`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// #[derive(Debug)]
    /// enum AppError { Db(String), Cache(memo_redis::Error) }
    /// impl From<memo_redis::Error> for AppError {
    ///     fn from(e: memo_redis::Error) -> Self { AppError::Cache(e) }
    /// }
    /// # async fn query_name(id: u64) -> Result<String, AppError> { Ok(format!("user-{id}")) }
    /// # async fn run() -> Result<(), AppError> {
    /// let name: String = memo_redis::global()
    ///     .try_get_or_set_with("name:7", Some(Duration::from_secs(60)), || query_name(7))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn try_get_or_set_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        make: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.fill(key, ttl, make).await {
            Ok(outcome) => outcome,
            Err(e) => Err(E::from(e)),
        }
    }

    /// A sliding read: the value under `key`, its expiry (and its tag groups') reset to `ttl`
    /// from now in the same round trip (`GETEX … PX`). `Ok(None)` when there is no entry (nothing
    /// is extended) or it is a cached `None`.
    ///
    /// # Errors
    /// As for [`Cache::get`]. A corrupt entry has been extended when [`Error::Codec`] is returned.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// // Each visit keeps the session alive for another 30 minutes.
    /// let session: Option<String> = memo_redis::global()
    ///     .get_and_extend("session:3f2a", Duration::from_secs(1800))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_and_extend<T: DeserializeOwned>(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<T>, Error> {
        let inner = self.ready()?;
        let full = full_key_in(&inner.config.namespace, key)?;
        let ms = ttl_millis(ttl);
        let mut invocation = EXTEND.key(&full);
        invocation.key(tag_list_key(inner, &full)).arg(ms);
        let reply: Vec<Option<Vec<u8>>> = inner.store.invoke(&invocation).await?;
        let mut reply = reply.into_iter();
        let Some(Some(bytes)) = reply.next() else {
            return Ok(None);
        };
        if let Some(Some(list)) = reply.next() {
            let now = now_ms();
            let tags = decode_tags(&list);
            let mut budget = Budget::new(inner.store.op_timeout());
            tags::record(
                inner,
                &tags,
                &full,
                Some(now.saturating_add(ms)),
                now,
                &mut budget,
            )
            .await?;
        }
        decode(&bytes, inner.config.max_value_bytes)
    }

    /// Makes `key` expire at `when` (`PEXPIREAT`), moving its tag groups' bookkeeping along;
    /// `true` if the entry existed. A time in the past deletes it.
    ///
    /// # Errors
    /// [`Error::Redis`], [`Error::Timeout`] or [`Error::BreakerOpen`] when Redis could not
    /// answer; [`Error::Key`] / [`Error::Config`] as for [`Cache::full_key`].
    ///
    /// ```no_run
    /// use std::time::{Duration, SystemTime};
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// let midnight = SystemTime::now() + Duration::from_secs(3600); // computed by your calendar
    /// memo_redis::global().expire_at("daily:report", midnight).await?;
    /// # Ok(()) }
    /// ```
    pub async fn expire_at(&self, key: &str, when: SystemTime) -> Result<bool, Error> {
        let inner = self.ready()?;
        let full = full_key_in(&inner.config.namespace, key)?;
        let at_ms = when
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
            .min(MAX_TTL_MS.saturating_mul(2));
        let mut invocation = EXPIRE_AT.key(&full);
        invocation.key(tag_list_key(inner, &full)).arg(at_ms);
        let reply = inner
            .store
            .invoke::<(u64, Option<Vec<u8>>)>(&invocation)
            .await;
        // A near-cache copy may assume a longer life than the new expiry: drop it now.
        inner.forget_local(&full);
        let (existed, list) = reply?;
        if let Some(list) = list {
            let now = now_ms();
            if at_ms > now {
                let mut budget = Budget::new(inner.store.op_timeout());
                tags::record(
                    inner,
                    &decode_tags(&list),
                    &full,
                    Some(at_ms),
                    now,
                    &mut budget,
                )
                .await?;
            }
        }
        Ok(existed > 0)
    }

    /// How long `key` has left (`PTTL`): `None` when there is no entry, `Some(Cache::NO_EXPIRY)`
    /// when it never expires.
    ///
    /// # Errors
    /// [`Error::Redis`], [`Error::Timeout`] or [`Error::BreakerOpen`] when Redis could not
    /// answer; [`Error::Key`] / [`Error::Config`] as for [`Cache::full_key`].
    ///
    /// ```no_run
    /// use memo_redis::Cache;
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// match memo_redis::global().ttl("motd").await? {
    ///     None => println!("gone"),
    ///     Some(Cache::NO_EXPIRY) => println!("never expires"),
    ///     Some(left) => println!("{left:?} left"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>, Error> {
        let inner = self.ready()?;
        let full = full_key_in(&inner.config.namespace, key)?;
        let ms: i64 = inner.store.query(redis::cmd("PTTL").arg(&full)).await?;
        Ok(match ms {
            -1 => Some(Cache::NO_EXPIRY),
            ms => u64::try_from(ms).ok().map(Duration::from_millis),
        })
    }

    /// Fail-open [`Cache::get`]: `None` when there is no value *or on any error* (Redis down,
    /// timeout, open breaker, corrupt entry, invalid key). Redis failures are logged by the
    /// connection layer, the others here, at most once per 10 s.
    ///
    /// # Errors
    /// None: that is the point. Use [`Cache::get`] to tell a miss from a failure.
    ///
    /// ```no_run
    /// # async fn run() {
    /// let banner: String = memo_redis::global()
    ///     .get_fail_open("banner")
    ///     .await
    ///     .unwrap_or_else(|| "welcome".into());
    /// # }
    /// ```
    pub async fn get_fail_open<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        match self.get(key).await {
            Ok(value) => value,
            Err(e) => {
                if is_redis_trouble(&e) {
                    tracing::debug!(key, error = %e, "memo-redis: get_fail_open: no value");
                } else {
                    FAIL_OPEN_LOG.hit(|suppressed| {
                        tracing::warn!(key, error = %e, suppressed, "memo-redis: get_fail_open could not read the entry");
                    });
                }
                None
            }
        }
    }

    /// Fail-open [`Cache::set`]: never returns an error. Returns whether the value was stored; a
    /// failure is logged as a warning (at most once per 10 s).
    ///
    /// # Errors
    /// None: failures are logged, and reported only by the `false` return.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn run() {
    /// memo_redis::global()
    ///     .set_fail_open("last-seen:42", &1_700_000_000u64, Some(Duration::from_secs(86_400)))
    ///     .await;
    /// # }
    /// ```
    pub async fn set_fail_open<T: Storable + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> bool {
        match self.set(key, value, ttl).await {
            Ok(()) => true,
            Err(e) => {
                FAIL_OPEN_LOG.hit(|suppressed| {
                    tracing::warn!(key, error = %e, suppressed, "memo-redis: set_fail_open did not store the value");
                });
                false
            }
        }
    }
}

/// See the module docs for the rule.
fn full_key_in(namespace: &str, key: &str) -> Result<String, Error> {
    if key.is_empty() {
        return Err(Error::Key("empty key".into()));
    }
    let rest = match key
        .strip_prefix(namespace)
        .and_then(|r| r.strip_prefix(':'))
    {
        Some("") => return Err(Error::Key(format!("`{key}` is only the namespace"))),
        Some(rest) => rest,
        None => key,
    };
    if rest.starts_with("tag:") || rest.starts_with("tags:") {
        return Err(Error::Key(format!(
            "`{key}` is reserved for tag bookkeeping (`tag:` and `tags:` keys); choose another key"
        )));
    }
    Ok(format!("{namespace}:{rest}"))
}

/// `None` (the cache's default), `NO_EXPIRY` or a duration → PX milliseconds, `None` = never.
fn resolve_ttl(inner: &Inner, ttl: Option<Duration>) -> Option<u64> {
    match ttl {
        Some(d) if d == Cache::NO_EXPIRY => None,
        Some(d) => Some(ttl_millis(d)),
        None => inner.config.default_ttl.map(ttl_millis),
    }
}

/// Whole milliseconds, rounded up, within `[1, MAX_TTL_MS]`.
fn ttl_millis(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MS)
}

/// The entry for `value`, through the encode guards (`O`: the type it is read back as).
fn encode<V: Serialize + ?Sized, O: Serialize + DeserializeOwned>(
    inner: &Inner,
    value: &V,
    shape: u64,
) -> Result<Vec<u8>, Error> {
    let encoded = entry::encode_value::<V, O>(
        inner.config.codec,
        inner.config.compress_min_bytes,
        inner,
        Some(value),
        shape,
        Duration::ZERO,
    )
    .map_err(|refused| Error::Codec(refused.to_string()))?;
    if let Some(payload) = entry::oversize(inner, &encoded.bytes) {
        return Err(Error::Codec(format!(
            "value of {payload} bytes exceeds max_value_bytes ({})",
            inner.config.max_value_bytes
        )));
    }
    Ok(encoded.bytes)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<Option<T>, Error> {
    entry::decode_value::<T>(bytes, max_len, crate::schema::tag_of::<T>())
        .map(|(value, _)| value)
        .map_err(Error::Codec)
}

/// Errors the connection layer already logs.
fn is_redis_trouble(e: &Error) -> bool {
    matches!(e, Error::Redis(_) | Error::Timeout(_) | Error::BreakerOpen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_inside_the_namespace_are_kept() {
        assert_eq!(full_key_in("ns", "a").unwrap(), "ns:a");
        assert_eq!(full_key_in("ns", "ns:a").unwrap(), "ns:a");
        assert_eq!(full_key_in("ns", "nsx:a").unwrap(), "ns:nsx:a");
        assert_eq!(full_key_in("ns", "ns").unwrap(), "ns:ns");
        assert!(matches!(full_key_in("ns", ""), Err(Error::Key(_))));
        assert!(matches!(full_key_in("ns", "ns:"), Err(Error::Key(_))));
        for reserved in ["tag:x", "tags:x", "ns:tag:x", "ns:tags:ns:x"] {
            assert!(
                matches!(full_key_in("ns", reserved), Err(Error::Key(_))),
                "{reserved}"
            );
        }
        assert_eq!(full_key_in("ns", "tagged:x").unwrap(), "ns:tagged:x");
    }

    #[test]
    fn ttls_round_up_and_stay_bounded() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 2);
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2000);
        assert_eq!(ttl_millis(Duration::from_secs(u64::MAX)), MAX_TTL_MS);
    }
}
