//! Entries and their tag lists: the scripts that write, extend, expire and delete an entry
//! together with its list (`{namespace}:tags:{S}{entry key}`, in the entry's cluster slot), and
//! the group bookkeeping around them.

use std::sync::{Arc, LazyLock};

use redis::Script;

use crate::cache::Inner;
use crate::clock::now_ms;
use crate::codec::{Bincode, Codec};
use crate::error::Error;
use crate::slot::{slot_of, slot_tag};
use crate::store::Budget;
use crate::tags;

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

pub(super) static SET: LazyLock<Script> = LazyLock::new(|| Script::new(SET_LUA));
pub(super) static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND_LUA));
pub(super) static EXPIRE_AT: LazyLock<Script> = LazyLock::new(|| Script::new(EXPIRE_AT_LUA));
pub(super) static DELETE: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_LUA));

/// Where an entry's tag list lives: `{namespace}:tags:{{S}}{entry key}`, where the hash tag `S`
/// is a short text in the entry's Redis Cluster slot ([`slot_tag`](crate::slot::slot_tag)). The entry and its list
/// then share a slot (on a cluster, a master), so every two-key script here runs atomically on a
/// cluster as on a single node, whatever the entry key looks like (even one with its own
/// `{hash tag}`). The namespace contains no `{`, so `{S}` is the list key's first hash tag.
pub(super) fn tag_list_key(inner: &Inner, full: &str) -> String {
    tag_list_key_in(&inner.config.namespace, full)
}

pub(super) fn tag_list_key_in(namespace: &str, full: &str) -> String {
    format!(
        "{namespace}:tags:{{{}}}{full}",
        slot_tag(slot_of(full.as_bytes()))
    )
}

pub(super) fn tag_list(tags: &[&str]) -> Result<Vec<String>, Error> {
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

pub(super) fn decode_tags(bytes: &[u8]) -> Vec<String> {
    Bincode::decode::<Vec<String>>(bytes).unwrap_or_else(|e| {
        tracing::debug!(error = %e, "unreadable tag list; ignoring it");
        Vec::new()
    })
}

/// Writes an entry and its tag list (one script), takes it out of the groups it leaves, and
/// records it in `tags`, all within `budget`. The membership is recorded after the write, with an
/// expiry taken after it, so the recorded expiry is never earlier than the entry's.
pub(super) async fn write(
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
pub(super) async fn leave_groups(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lists_share_the_entry_slot() {
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
