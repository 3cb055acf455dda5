//! The typed commands of the store: reads (`GET`, `GET`+`PTTL`, `GETEX` with its fallback),
//! writes (`SET`, `DEL`), the compare-and-delete repair of a corrupt entry, and prepared scripts.

use std::cell::Cell;
use std::time::Duration;

use redis::FromRedisValue;

use super::fault::{classify, Fault, REFUSAL_MEMORY};
use super::{query_cmd, Op, Route, Store, Writing};
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

/// `SET key value [PX ms]`, its buffers sized once (growing them argument by argument cost
/// a few reallocations and copies of the value per write).
fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    // "SET" + key + value + "PX" + at most 20 digits.
    let mut cmd = redis::Cmd::with_capacity(5, key.len() + value.len() + 25);
    cmd.arg("SET").arg(key).arg(value);
    if let Some(ttl) = ttl {
        cmd.arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
    }
    cmd
}

/// `EVALSHA` of `script` with `keys` and `args`, for a pipeline (redis-rs pipelines take no
/// script invocations); pair it with the script, to load it on `NOSCRIPT`.
pub(crate) fn evalsha(script: &redis::Script, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

thread_local! {
    /// The buffers of the thread's last `GET` (see [`Reused`]).
    static SPARE_GET: Cell<Option<redis::Cmd>> = const { Cell::new(None) };
}

/// A `GET key` built in the buffers of an earlier one: a hit's command costs two copies instead
/// of two allocations, a reallocation and their frees. The buffers go back to the thread that
/// drops the command (one spare per thread; a command dropped where one is kept already, or
/// while the thread exits, is freed).
struct Reused(redis::Cmd, bool);

impl Reused {
    /// Buffers of a key longer than this are not kept.
    const KEEP_UP_TO: usize = 512;

    fn get(key: &str) -> Reused {
        let mut cmd = SPARE_GET
            .try_with(Cell::take)
            .ok()
            .flatten()
            .unwrap_or_else(|| redis::Cmd::with_capacity(2, 3 + key.len()));
        cmd.arg("GET").arg(key);
        Reused(cmd, key.len() <= Self::KEEP_UP_TO)
    }
}

impl std::ops::Deref for Reused {
    type Target = redis::Cmd;
    fn deref(&self) -> &redis::Cmd {
        &self.0
    }
}

impl Drop for Reused {
    fn drop(&mut self) {
        if !self.1 {
            return;
        }
        let mut cmd = std::mem::take(&mut self.0);
        cmd.clear();
        let _ = SPARE_GET.try_with(|spare| match spare.take() {
            Some(kept) => spare.set(Some(kept)),
            None => spare.set(Some(cmd)),
        });
    }
}

/// How a write with bookkeeping failed.
#[derive(Debug)]
pub(crate) enum WriteFailed {
    /// Nothing was written (or the reply was lost).
    NotWritten(Error),
    /// The entry was written, its bookkeeping failed.
    Written(Error),
}

impl Store {
    pub(crate) async fn get(&self, key: &str, limit: Duration) -> Result<Option<Vec<u8>>, Error> {
        let get = Reused::get(key);
        self.read_within(&get, limit).await
    }

    /// `GET` on the master of the key's slot even when the cache reads from replicas: for a
    /// read that must see another caller's write of a moment ago (see `Budget::read_master`).
    pub(crate) async fn get_master(
        &self,
        key: &str,
        limit: Duration,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.query_master(redis::cmd("GET").arg(key), key.as_bytes(), limit)
            .await
    }

    /// `GET` and `PTTL` in one round trip (for a read whose result may be kept locally). Always
    /// on the master, also when the cache reads from replicas: a near cache is invalidated by
    /// the masters, and a replica lagging behind an invalidation it already delivered would
    /// fill the local copy with the old value, kept until its local life ends.
    pub(crate) async fn get_pttl(
        &self,
        key: &str,
        limit: Duration,
    ) -> Result<(Option<Vec<u8>>, i64), Error> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let pipe = &pipe;
        let key = key.as_bytes();
        let master = self.replica_reads;
        self.run(
            Route::Key(key),
            limit,
            Op::Pipe(pipe, master.then_some(key)),
        )
        .await
    }

    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        limit: Duration,
    ) -> Result<(), Error> {
        let _writing = Writing {
            reads: &self.reads,
            key: Some(key),
        };
        self.read_within::<()>(&set_cmd(key, value, ttl), limit)
            .await
    }

    /// `SET key value [PX ms]` and a script call (`EVALSHA`, built by the caller) in one
    /// pipeline: one round trip for a write and its bookkeeping. The script is loaded and called
    /// again when the server does not know it (`NOSCRIPT`: first use, restart, `SCRIPT FLUSH`).
    /// Single node only (on a cluster the script's keys live in other slots).
    ///
    /// `Err(Written(e))` when the `SET` succeeded but the script failed (the caller undoes the
    /// write); `Err(NotWritten(e))` when the `SET` failed or the reply was lost.
    pub(crate) async fn set_then_eval(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        script: &redis::Script,
        eval: &redis::Cmd,
        limit: Duration,
    ) -> Result<(), WriteFailed> {
        // Reads of the key sent before this write take no new followers once it is done.
        let _writing = Writing {
            reads: &self.reads,
            key: Some(key),
        };
        let mut pipe = redis::pipe();
        pipe.add_command(set_cmd(key, value, ttl))
            .add_command(eval.clone())
            .ignore_errors();
        let pipe = &pipe;
        // The SET's outcome travels inside the `Ok`, so a refused SET is told from a refused
        // script; connection failures and timeouts are the store's as for any operation.
        let replies = self
            .run_op(
                Route::Key(key.as_bytes()),
                limit,
                move |mut conn| async move {
                    let (set, evald): (redis::RedisResult<()>, redis::RedisResult<redis::Value>) =
                        pipe.query_async(&mut conn).await?;
                    let evald = match evald {
                        Err(e) if e.code() == Some("NOSCRIPT") => {
                            script.load_async(&mut conn).await?;
                            eval.query_async::<redis::Value>(&mut conn).await
                        }
                        other => other,
                    };
                    Ok((set, evald))
                },
            )
            .await;
        match replies {
            Err(e) => Err(WriteFailed::NotWritten(e)),
            Ok((Err(e), _)) => {
                self.refused(&e);
                Err(WriteFailed::NotWritten(Error::from(e)))
            }
            Ok((Ok(()), Err(e))) => {
                self.refused(&e);
                Err(WriteFailed::Written(Error::from(e)))
            }
            Ok((Ok(()), Ok(_))) => Ok(()),
        }
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
        let mut invocation = self.repair.key(key);
        invocation.arg(seen);
        let n: u64 = self
            .run(Route::Key(key.as_bytes()), limit, Op::Invoke(&invocation))
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
                match query_cmd::<Option<Vec<u8>>>(&mut conn, getex, None).await {
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
                        query_cmd::<Option<Vec<u8>>>(&mut conn, get, None).await
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
        self.run(Route::Any, limit, Op::Invoke(invocation)).await
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

    /// [`Store::mget`] on the master of the keys' slot even when the cache reads from replicas
    /// (see `Budget::read_master`).
    pub(crate) async fn mget_master(
        &self,
        keys: &[&str],
        limit: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(*key);
        }
        self.query_master(&cmd, first.as_bytes(), limit).await
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
        self.run(route, limit, Op::Pipe(pipe, None)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_is_sent_as_set_key_value_px() {
        let packed = |ttl| set_cmd("k:1", b"\x01entry", ttl).get_packed_command();
        assert_eq!(
            packed(Some(Duration::from_millis(1500))),
            b"*5\r\n$3\r\nSET\r\n$3\r\nk:1\r\n$6\r\n\x01entry\r\n$2\r\nPX\r\n$4\r\n1500\r\n"
        );
        assert_eq!(
            packed(None),
            b"*3\r\n$3\r\nSET\r\n$3\r\nk:1\r\n$6\r\n\x01entry\r\n"
        );
        // A TTL under a millisecond is sent as 1 ms (PX 0 is an error).
        assert!(packed(Some(Duration::from_micros(10))).ends_with(b"$2\r\nPX\r\n$1\r\n1\r\n"));
    }

    #[test]
    fn a_reused_get_is_the_command_of_its_own_key() {
        let long = "k".repeat(Reused::KEEP_UP_TO + 1);
        // Longer, then shorter, then empty, then past the kept size: each time exactly
        // `GET key`, whatever the buffers held before.
        for key in [
            "memo:app:0123456789ab:key-one",
            "k2",
            "",
            &long,
            "after-long",
        ] {
            let reused = Reused::get(key);
            assert_eq!(
                reused.get_packed_command(),
                redis::cmd("GET").arg(key).get_packed_command(),
                "{key}"
            );
        }
        let held = Reused::get("held");
        let other = Reused::get("other");
        assert_eq!(
            other.get_packed_command(),
            redis::cmd("GET").arg("other").get_packed_command()
        );
        drop((held, other));
    }
}
