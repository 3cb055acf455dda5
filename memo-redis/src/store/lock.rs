//! The cross-process lock's commands: `SET NX PX` to take it, a compare-and-delete script to
//! release it.

use std::time::Duration;

use super::{Op, Route, Store};
use crate::error::Error;

/// Releases a lock only if it still holds our token (the lease may have expired and another
/// process may hold it now).
pub(super) const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

impl Store {
    /// `SET lock token NX PX lease`: true if we now hold the lock.
    ///
    /// A lock that already holds our token is ours too: when the reply to an earlier attempt
    /// was lost (the connection dropped after the server executed the `SET`, and the operation
    /// was retried), the `SET NX` finds our own lock. A `GET` pipelined behind the `SET` tells
    /// (one round trip; plain commands, so Redis 6.2 and a cluster, where both hit the lock's
    /// slot, work alike).
    pub(crate) async fn try_lock(
        &self,
        lock: &str,
        token: &str,
        lease: Duration,
        limit: Duration,
    ) -> Result<bool, Error> {
        let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(lock)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .cmd("GET")
            .arg(lock);
        let pipe = &pipe;
        let (set, holder): (Option<String>, Option<String>) = self
            .run(Route::Key(lock.as_bytes()), limit, Op::Pipe(pipe, None))
            .await?;
        Ok(set.is_some() || holder.as_deref() == Some(token))
    }

    /// [`Store::try_lock`] and a `GET` of the entry it guards, in one pipeline (single node:
    /// on a cluster the entry lives in another slot). The `GET` runs after the `SET NX` on the
    /// server, so it sees a value a previous holder stored before releasing.
    pub(crate) async fn try_lock_get(
        &self,
        lock: &str,
        token: &str,
        lease: Duration,
        key: &str,
        limit: Duration,
    ) -> Result<(bool, Option<Vec<u8>>), Error> {
        let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(lock)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .cmd("GET")
            .arg(lock)
            .cmd("GET")
            .arg(key);
        let pipe = &pipe;
        let (set, holder, value): (Option<String>, Option<String>, Option<Vec<u8>>) = self
            .run(Route::Key(lock.as_bytes()), limit, Op::PipeAsIs(pipe))
            .await?;
        Ok((set.is_some() || holder.as_deref() == Some(token), value))
    }

    /// Compare-and-delete release of a lock.
    pub(crate) async fn unlock(
        &self,
        lock: &str,
        token: &str,
        limit: Duration,
    ) -> Result<bool, Error> {
        let mut invocation = self.release.key(lock);
        invocation.arg(token);
        let n: u64 = self
            .run(Route::Key(lock.as_bytes()), limit, Op::Invoke(&invocation))
            .await?;
        Ok(n > 0)
    }
}
