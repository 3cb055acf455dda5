//! The typed handle: explicit `get` / `set` / `delete` / `has` / `get_or_set_with`, sliding and
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
//! open circuit breaker is an `Err`. [`Cache::get_or_none`] and [`Cache::set_or_log`] are the
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
//! [`Cache::delete`] take the entry out of the groups its previous write put it in.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Script;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::{Cache, Inner};
use crate::call::now_ms;
use crate::codec::{Bincode, Codec, Storable};
use crate::envelope::{self, Envelope};
use crate::error::Error;
use crate::events::Event;
use crate::flight::{self, Outcome, Role, Wait};
use crate::log::RateLimited;
use crate::store::Budget;
use crate::tags;

/// TTLs are capped at 2^52 ms (about 142,000 years): expiry times then stay exact as sorted-set
/// scores (doubles) and far from the overflow Redis checks for.
const MAX_TTL_MS: u64 = 1 << 52;

/// KEYS = entry, its tag list; ARGV = value, TTL in ms (`''`: none), encoded tag list (`''`: none).
/// Returns the previous tag list, so the caller can take the entry out of the groups it leaves.
/// The read comes first: a foreign value under the list key fails the script before any write.
const SET_LUA: &str = r"
local old = redis.call('GET', KEYS[2])
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[2])
elseif ARGV[2] == '' then
  redis.call('SET', KEYS[2], ARGV[3])
else
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
end
return old
";

/// KEYS = entry, its tag list; ARGV = TTL in ms. `{}` when the entry is missing, else
/// `{value, tag list or nil}`, both now expiring in TTL.
const EXTEND_LUA: &str = r"
local v = redis.call('GETEX', KEYS[1], 'PX', ARGV[1])
if not v then return {} end
return {v, redis.call('GETEX', KEYS[2], 'PX', ARGV[1])}
";

/// KEYS = entry, its tag list; ARGV = expiry in ms since the epoch. `{0, nil}` when the entry is
/// missing, else `{1, tag list or nil}` (nil too when the time has passed and both are gone).
const EXPIRE_AT_LUA: &str = r"
if redis.call('PEXPIREAT', KEYS[1], ARGV[1]) == 0 then return {0, false} end
redis.call('PEXPIREAT', KEYS[2], ARGV[1])
return {1, redis.call('GET', KEYS[2])}
";

/// KEYS = entry, its tag list. Returns `{entries deleted, previous tag list or nil}`.
const DELETE_LUA: &str = r"
local old = redis.call('GET', KEYS[2])
local n = redis.call('UNLINK', KEYS[1])
redis.call('DEL', KEYS[2])
return {n, old}
";

static SET: LazyLock<Script> = LazyLock::new(|| Script::new(SET_LUA));
static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND_LUA));
static EXPIRE_AT: LazyLock<Script> = LazyLock::new(|| Script::new(EXPIRE_AT_LUA));
static DELETE: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_LUA));

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
    /// [`Cache::delete_group`] / [`Cache::invalidate_tags`] on one of them deletes it, together with
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
    /// cache.delete_group("user:42").await?; // the cart is gone
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
        let bytes = encode::<T, T::Owned>(inner, value, crate::schema::tag_of::<T::Owned>(), 0)?;
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
    /// let existed = memo_redis::global().delete("motd").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
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
    /// Within a process, one call reads Redis and, on a miss, runs its `make`; the concurrent
    /// calls wait and decode its result (`T` needs no `Clone`). If that call is cancelled, one
    /// of the waiting calls takes over; if its `make` panics, every waiting call runs its own
    /// `make` at once (and the panic goes on to that call's caller). All of them share one
    /// Redis time budget per call (the operation timeout). The calls share this table with cached
    /// functions, so a function's call and a handle call on the function's key also coalesce.
    /// Across processes there is no lock: each process may compute once.
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

    /// Deletes every entry in the group `tag` — written with [`Cache::set_with_tags`] or by a
    /// cached function with `tags = [...]` — and the group itself; returns how many entries
    /// existed. Same as [`Cache::invalidate_tags`] with one tag (announced on the event channel).
    ///
    /// # Errors
    /// [`Error::Key`] when `tag` is empty; [`Error::Redis`], [`Error::Timeout`] or
    /// [`Error::BreakerOpen`] when Redis could not answer; [`Error::Config`] when the
    /// configuration is invalid.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// let n = memo_redis::global().delete_group("user:42").await?;
    /// println!("{n} entries of user 42 deleted");
    /// # Ok(()) }
    /// ```
    pub async fn delete_group(&self, tag: &str) -> Result<u64, Error> {
        self.ready()?;
        if tag.is_empty() {
            return Err(Error::Key("empty tag".into()));
        }
        self.invalidate_tags([tag]).await
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
    ///     .get_or_none("banner")
    ///     .await
    ///     .unwrap_or_else(|| "welcome".into());
    /// # }
    /// ```
    pub async fn get_or_none<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        match self.get(key).await {
            Ok(value) => value,
            Err(e) => {
                if is_redis_trouble(&e) {
                    tracing::debug!(key, error = %e, "memo-redis: get_or_none: no value");
                } else {
                    FAIL_OPEN_LOG.hit(|suppressed| {
                        tracing::warn!(key, error = %e, suppressed, "memo-redis: get_or_none could not read the entry");
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
    ///     .set_or_log("last-seen:42", &1_700_000_000u64, Some(Duration::from_secs(86_400)))
    ///     .await;
    /// # }
    /// ```
    pub async fn set_or_log<T: Storable + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> bool {
        match self.set(key, value, ttl).await {
            Ok(()) => true,
            Err(e) => {
                FAIL_OPEN_LOG.hit(|suppressed| {
                    tracing::warn!(key, error = %e, suppressed, "memo-redis: set_or_log did not store the value");
                });
                false
            }
        }
    }

    fn ready(&self) -> Result<&Arc<Inner>, Error> {
        self.inner().map_err(|e| Error::Config(e.clone()))
    }

    /// `get_or_set_with`'s flow: `Err` only for errors before `make` runs; `Ok(make's result)`.
    async fn fill<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        make: F,
    ) -> Result<Result<T, E>, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let inner = self.ready()?;
        let full = full_key_in(&inner.config.namespace, key)?;
        if inner.store.breaker.bypassing() {
            return Ok(make().await);
        }
        // One Redis time budget for the whole call: read, re-read and write together.
        let mut budget = Budget::new(inner.store.op_timeout());
        loop {
            match inner.flights.join(&full) {
                Role::Leader(lead) => {
                    match flight::catching(lead_fill(inner, &full, ttl, make, &mut budget)).await {
                        Ok((outcome, shared)) => {
                            lead.finish(shared);
                            return Ok(outcome);
                        }
                        Err(panic) => {
                            // `make` panicked: the waiting calls run their own `make` at once
                            // (a deterministic panic must not be retried by one caller after
                            // another), then the panic goes on to our caller.
                            lead.finish(Outcome::NotShared);
                            std::panic::resume_unwind(panic);
                        }
                    }
                }
                Role::Follower(rx) => match flight::wait(rx).await {
                    Wait::Shared(bytes) => {
                        if let Ok(Some(value)) = decode::<T>(&bytes, usize::MAX) {
                            return Ok(Ok(value));
                        }
                        return Ok(make().await);
                    }
                    // The leader's `make` failed (`Err` or panic): run ours, as without
                    // single-flight, concurrently with the other waiting calls.
                    Wait::NotShared => return Ok(make().await),
                    // The leader was cancelled or panicked: race to lead.
                    Wait::Abandoned => continue,
                },
            }
        }
    }
}

/// One read and, on a miss, one `make` and one write; returns what to share with followers.
async fn lead_fill<T, E, F, Fut>(
    inner: &Arc<Inner>,
    full: &str,
    ttl: Option<Duration>,
    make: F,
    budget: &mut Budget,
) -> (Result<T, E>, Outcome)
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let read = budget.run(|limit| inner.store.get(full, limit)).await;
    let readable = match read {
        Ok(Some(bytes)) => match decode::<T>(&bytes, inner.config.max_value_bytes) {
            Ok(Some(value)) => return (Ok(value), Outcome::Shared(Arc::from(bytes))),
            Ok(None) | Err(_) => true,
        },
        // A Redis list or hash under the key: SET replaces it.
        Ok(None) | Err(Error::WrongType) => true,
        Err(_) => false,
    };
    let started = Instant::now();
    let value = match make().await {
        Ok(value) => value,
        Err(e) => return (Err(e), Outcome::NotShared),
    };
    let compute_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    let bytes = match encode::<T, T>(inner, &value, crate::schema::tag_of::<T>(), compute_ms) {
        Ok(bytes) => bytes,
        Err(e) => {
            FAIL_OPEN_LOG.hit(|suppressed| {
                tracing::warn!(key = full, error = %e, suppressed, "memo-redis: get_or_set_with did not store the value");
            });
            return (Ok(value), Outcome::NotShared);
        }
    };
    if readable {
        if let Err(e) = write(inner, full, &bytes, resolve_ttl(inner, ttl), &[], budget).await {
            // Redis failures are logged (rate-limited) by the store; the value is served anyway.
            tracing::debug!(key = full, error = %e, "get_or_set_with: value not stored");
        }
    }
    (Ok(value), Outcome::Shared(Arc::from(bytes)))
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

/// Where an entry's tag list lives: `{namespace}:tags:{{S}}{entry key}`, where the hash tag `S`
/// is a short text in the entry's Redis Cluster slot ([`slot_tag`]). The entry and its list
/// then share a slot (on a cluster, a master), so every two-key script here runs atomically on a
/// cluster as on a single node, whatever the entry key looks like (even one with its own
/// `{hash tag}`). The namespace contains no `{`, so `{S}` is the list key's first hash tag.
fn tag_list_key(inner: &Inner, full: &str) -> String {
    tag_list_key_in(&inner.config.namespace, full)
}

fn tag_list_key_in(namespace: &str, full: &str) -> String {
    format!(
        "{namespace}:tags:{{{}}}{full}",
        slot_tag(slot_of(full.as_bytes()))
    )
}

/// Redis Cluster's hash slots.
const SLOTS: u16 = 16384;

/// CRC16/XMODEM lookup table, the checksum Redis Cluster hashes keys with.
const CRC16: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The cluster slot of `key`: CRC16 of its hash tag (the text between the first `{` and the
/// next `}`, if not empty) or else of the whole key, modulo 16384.
fn slot_of(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let len = rest.iter().position(|b| *b == b'}')?;
            (len > 0).then(|| &rest[..len])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// `n` as lowercase hex digits, least significant first (a slot tag's text).
fn tag_text(mut n: u32, buf: &mut [u8; 8]) -> &str {
    let mut len = 0;
    loop {
        buf[len] = b"0123456789abcdef"[(n & 15) as usize];
        len += 1;
        n >>= 4;
        if n == 0 || len == buf.len() {
            break;
        }
    }
    std::str::from_utf8(&buf[..len]).unwrap_or("0")
}

/// For every slot, the smallest `n` whose [`tag_text`] hashes to it: found by counting up once
/// per process (about 156,000 checksums of 5 bytes, under a millisecond in release builds; every
/// slot is covered by `n < 0x263de`, which the unit tests check).
static SLOT_TAGS: LazyLock<Vec<u32>> = LazyLock::new(|| {
    let mut table = vec![u32::MAX; usize::from(SLOTS)];
    let mut missing = table.len();
    let mut buf = [0u8; 8];
    let mut n = 0u32;
    while missing > 0 && n < 1 << 24 {
        let slot = usize::from(slot_of(tag_text(n, &mut buf).as_bytes()));
        if table[slot] == u32::MAX {
            table[slot] = n;
            missing -= 1;
        }
        n += 1;
    }
    table
});

/// A short hash tag text (no braces) that Redis Cluster hashes to `slot`.
fn slot_tag(slot: u16) -> String {
    let n = SLOT_TAGS
        .get(usize::from(slot))
        .copied()
        .unwrap_or(u32::MAX);
    let mut buf = [0u8; 8];
    tag_text(n, &mut buf).to_string()
}

fn tag_list(tags: &[&str]) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for &tag in tags {
        if tag.is_empty() {
            return Err(Error::Key("empty tag".into()));
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_string());
        }
    }
    Ok(out)
}

fn decode_tags(bytes: &[u8]) -> Vec<String> {
    Bincode::decode::<Vec<String>>(bytes).unwrap_or_else(|e| {
        tracing::debug!(error = %e, "unreadable tag list; ignoring it");
        Vec::new()
    })
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
    compute_ms: u32,
) -> Result<Vec<u8>, Error> {
    let bytes = crate::guard::encode::<V, O>(
        inner.config.codec,
        Some(value),
        shape,
        now_ms(),
        compute_ms,
        inner.config.compress_min_bytes,
        inner.config.max_value_bytes,
    )
    .map_err(|refused| Error::Codec(refused.to_string()))?;
    let payload = bytes.len().saturating_sub(envelope::HEADER_LEN);
    if payload > inner.config.max_value_bytes {
        return Err(Error::Codec(format!(
            "value of {payload} bytes exceeds max_value_bytes ({})",
            inner.config.max_value_bytes
        )));
    }
    Ok(bytes)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<Option<T>, Error> {
    let env = Envelope::parse(bytes, max_len).map_err(|e| Error::Codec(e.to_string()))?;
    if !env.shape_matches(crate::schema::tag_of::<T>()) {
        return Err(Error::Codec(format!(
            "entry written for a value type of another shape than `{}`",
            std::any::type_name::<T>()
        )));
    }
    if env.is_none() {
        return Ok(None);
    }
    let payload = env
        .decompressed(max_len)
        .map_err(|e| Error::Codec(e.to_string()))?;
    env.codec
        .decode::<T>(&payload)
        .map(Some)
        .map_err(Error::Codec)
}

/// Writes an entry and its tag list (one script), takes it out of the groups it leaves, and
/// records it in `tags`, all within `budget`. The membership is recorded after the write, with an
/// expiry taken after it, so the recorded expiry is never earlier than the entry's.
async fn write(
    inner: &Arc<Inner>,
    full: &str,
    bytes: &[u8],
    ttl_ms: Option<u64>,
    tags: &[String],
    budget: &mut Budget,
) -> Result<(), Error> {
    if ttl_ms.is_none() {
        inner.check_eviction_policy();
    }
    let mut list = Vec::new();
    if !tags.is_empty() {
        Bincode::encode(tags, &mut list).map_err(Error::Codec)?;
    }
    let mut invocation = SET.key(full);
    invocation.key(tag_list_key(inner, full)).arg(bytes);
    match ttl_ms {
        Some(ms) => invocation.arg(ms),
        None => invocation.arg(""),
    };
    invocation.arg(list);
    let invocation = &invocation;
    let old = budget
        .run(|limit| {
            inner
                .store
                .invoke_within::<Option<Vec<u8>>>(invocation, limit)
        })
        .await;
    // This process's near-cache copy goes at once (also when the reply was lost: the write may
    // have happened), not when Redis's invalidation push arrives.
    inner.forget_local(full);
    if let Some(old) = old? {
        leave_groups(inner, full, &decode_tags(&old), tags, budget).await?;
    }
    if !tags.is_empty() {
        let now = now_ms();
        let expiry = ttl_ms.map(|ms| now.saturating_add(ms));
        tags::record(inner, tags, full, expiry, now, budget).await?;
    }
    Ok(())
}

/// Removes `full` from the groups in `old` that are not in `keep`.
async fn leave_groups(
    inner: &Inner,
    full: &str,
    old: &[String],
    keep: &[String],
    budget: &mut Budget,
) -> Result<(), Error> {
    for tag in old.iter().filter(|t| !keep.contains(t)) {
        let cmd = redis::cmd("ZREM")
            .arg(tags::tag_key(inner, tag))
            .arg(full)
            .take();
        let cmd = &cmd;
        let _: u64 = budget
            .run(|limit| inner.store.query_within(cmd, limit))
            .await?;
    }
    Ok(())
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

    #[cfg(feature = "cluster")] // redis-rs's `Slot` comes with its cluster support
    #[test]
    fn slots_match_redis_rs() {
        use redis::cluster_routing::Slot;
        assert_eq!(crc16(b"123456789"), 0x31c3, "CRC16/XMODEM check value");
        for key in [
            "",
            "a",
            "memo:user:42",
            "t:x{user1}y",
            "t:{}x{y}",
            "t:{x",
            "t:}x{",
            "{a}{b}",
            "ns:é",
        ] {
            assert_eq!(
                Slot::new(slot_of(key.as_bytes())),
                Some(Slot::for_key(key)),
                "{key:?}"
            );
        }
        for n in 0..2000u32 {
            let key = format!("ns:k{n}:{{{}}}", n % 7);
            assert_eq!(
                Slot::new(slot_of(key.as_bytes())),
                Some(Slot::for_key(&key))
            );
        }
    }

    #[test]
    fn every_slot_has_a_tag_and_tag_lists_share_the_entry_slot() {
        assert!(
            SLOT_TAGS.iter().all(|n| *n < 0x263de),
            "a slot without a tag"
        );
        for slot in 0..SLOTS {
            let tag = slot_tag(slot);
            assert!(!tag.is_empty() && !tag.contains(['{', '}']));
            assert_eq!(slot_of(format!("ns:tags:{{{tag}}}rest").as_bytes()), slot);
        }
        for full in ["ns:a", "ns:{user1}:cart", "ns:x}y", "ns:{}z", "ns:{open"] {
            let list = tag_list_key_in("ns", full);
            assert!(
                list.starts_with("ns:tags:{") && list.ends_with(full),
                "{list}"
            );
            assert_eq!(slot_of(list.as_bytes()), slot_of(full.as_bytes()), "{full}");
        }
    }

    #[test]
    fn tag_lists_roundtrip_and_dedupe() {
        let tags = tag_list(&["a", "b", "a"]).unwrap();
        assert_eq!(tags, ["a", "b"]);
        let mut bytes = Vec::new();
        Bincode::encode(&tags, &mut bytes).unwrap();
        assert_eq!(decode_tags(&bytes), tags);
        assert!(decode_tags(b"\xff\xff").is_empty());
        assert!(tag_list(&[""]).is_err());
    }
}
