//! The typed commands of the store: reads (`GET`, `GET`+`PTTL`, `GETEX` with its fallback),
//! writes (`SET`, `DEL`), the compare-and-delete repair of a corrupt entry, and prepared scripts.

use std::time::Duration;

use redis::FromRedisValue;

use super::fault::{classify, Fault, REFUSAL_MEMORY};
use super::{Route, Store, Writing};
use crate::error::Error;

/// Deletes the entry only if it still holds the bytes we judged corrupt, or if it is not a
/// string at all (a list or hash planted under our key). A fresh value written meanwhile by
/// another caller survives.
pub(super) const REPAIR_LUA: &str = r"
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return 0 end
if t ~= 'string' then return redis.call('DEL', KEYS[1]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

impl Store {
    pub(crate) async fn get(&self, key: &str, limit: Duration) -> Result<Option<Vec<u8>>, Error> {
        self.read_within(redis::cmd("GET").arg(key), limit).await
    }

    /// `GET` and `PTTL` in one round trip (for a read whose result may be kept locally).
    pub(crate) async fn get_pttl(
        &self,
        key: &str,
        limit: Duration,
    ) -> Result<(Option<Vec<u8>>, i64), Error> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let pipe = &pipe;
        self.run_op(Route::Key(key.as_bytes()), limit, move |mut conn| async move {
            pipe.query_async::<(Option<Vec<u8>>, i64)>(&mut conn).await
        })
        .await
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        limit: Duration,
    ) -> Result<(), Error> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        let _writing = Writing {
            reads: &self.reads,
            key: Some(key),
        };
        self.read_within::<()>(&cmd, limit).await
    }

    pub(crate) async fn del(&self, key: &str) -> Result<bool, Error> {
        let _writing = Writing {
            reads: &self.reads,
            key: Some(key),
        };
        let n: u64 = self
            .read_within(redis::cmd("DEL").arg(key), self.op_timeout)
            .await?;
        Ok(n > 0)
    }

    /// Compare-and-delete of a corrupt entry (see [`REPAIR_LUA`]).
    pub(crate) async fn repair(
        &self,
        key: &str,
        seen: &[u8],
        limit: Duration,
    ) -> Result<bool, Error> {
        let _writing = Writing {
            reads: &self.reads,
            key: Some(key),
        };
        let script = &self.repair;
        let n: u64 = self
            .run_op(
                Route::Key(key.as_bytes()),
                limit,
                move |mut conn| async move {
                    script
                        .key(key)
                        .arg(seen)
                        .invoke_async::<u64>(&mut conn)
                        .await
                },
            )
            .await?;
        Ok(n > 0)
    }

    /// `GETEX key PX ttl`: a read that extends the entry's TTL in the same round trip.
    pub(crate) async fn get_ex(
        &self,
        key: &str,
        ttl: Duration,
        limit: Duration,
    ) -> Result<Option<Vec<u8>>, Error> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        if self
            .getex_refused
            .until_ms
            .load(std::sync::atomic::Ordering::Relaxed)
            > now
        {
            return self.get(key, limit).await;
        }
        let getex = redis::cmd("GETEX").arg(key).arg("PX").arg(ms).clone();
        let (getex, get) = (&getex, &redis::cmd("GET").arg(key).clone());
        let refusal = &self.getex_refused;
        self.run_op(
            Route::Key(key.as_bytes()),
            limit,
            move |mut conn| async move {
                match getex.query_async::<Option<Vec<u8>>>(&mut conn).await {
                    // A read-only replica (`READONLY`) or an ACL without `GETEX`: serve the read
                    // with a plain `GET` on the same connection and deadline; the TTL is not
                    // extended. Remembered, so the next reads go straight to `GET`.
                    Err(e) if classify(&e) == Fault::Refused => {
                        self.refused(&e);
                        // On a cluster `READONLY` means a stale slot map during a failover (the
                        // connection is rebuilt), not a replica we are stuck with: not remembered.
                        if !(self.is_cluster() && e.code() == Some("READONLY")) {
                            let until = now.saturating_add(
                                u64::try_from(REFUSAL_MEMORY.as_millis()).unwrap_or(u64::MAX),
                            );
                            refusal
                                .until_ms
                                .store(until, std::sync::atomic::Ordering::Relaxed);
                        }
                        get.query_async::<Option<Vec<u8>>>(&mut conn).await
                    }
                    other => other,
                }
            },
        )
        .await
    }
}

impl Store {
    /// Runs a prepared script invocation under the breaker and the operation timeout.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        self.invoke_within(invocation, self.op_timeout).await
    }

    /// [`Store::invoke`], waiting at most `limit`.
    pub(crate) async fn invoke_within<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        limit: Duration,
    ) -> Result<T, Error> {
        // A script may write any key: reads in flight take no new followers after it.
        let _writing = Writing {
            reads: &self.reads,
            key: None,
        };
        self.run_op(Route::Any, limit, move |mut conn| async move {
            invocation.invoke_async::<T>(&mut conn).await
        })
        .await
    }
}

impl Store {
    /// `MGET` of `keys` in one round trip, in order: `None` for a key without a string value
    /// (absent, or another Redis type). On a cluster every key must hash to one slot (the batch
    /// path groups them).
    pub(crate) async fn mget(
        &self,
        keys: &[&str],
        limit: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(*key);
        }
        self.read_within(&cmd, limit).await
    }

    /// `SET key value [PX ms]` for every entry, in one pipeline (one round trip). On a cluster
    /// every key must hash to one slot. A refused command (`OOM`) fails the whole call.
    pub(crate) async fn set_many(
        &self,
        entries: &[(&str, &[u8], Option<Duration>)],
        limit: Duration,
    ) -> Result<(), Error> {
        let mut pipe = redis::pipe();
        for (key, value, ttl) in entries {
            pipe.cmd("SET").arg(*key).arg(*value);
            if let Some(ttl) = ttl {
                pipe.arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            }
            pipe.ignore();
        }
        let pipe = &pipe;
        let _writing: Vec<Writing<'_>> = entries
            .iter()
            .map(|(key, _, _)| Writing {
                reads: &self.reads,
                key: Some(key),
            })
            .collect();
        // One slot on a cluster: the breaker of the master owning the first key's.
        let route = entries
            .first()
            .map_or(Route::Any, |(key, _, _)| Route::Key(key.as_bytes()));
        self.run_op(route, limit, move |mut conn| async move {
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }
}
