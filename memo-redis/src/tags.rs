//! Tags (eviction groups): every entry stored with tags is recorded in one sorted set per tag,
//! `{namespace}:tag:{tag}`, whose members are entry keys scored by their expiry time (ms since
//! the epoch, `+inf` for none).
//!
//! A tag is its text as written: `tags = ["region:{region}"]` renders argument values with
//! `Display` and does not escape them, so `invalidate_tags(["region:eu-west"])` names the group
//! `region = "eu-west"` put its entries in, whatever the characters. Every path from a tag to its
//! set's key goes through [`tag_key`]. Tag sets are single keys, touched one at a time on a
//! cluster, so a `{..}` inside a tag (a Redis Cluster hash tag) only decides which slot that set
//! lives in.
//!
//! Bookkeeping stays bounded: every write first drops the members whose score (expiry) has
//! passed, and the tag set itself expires exactly when its newest member does.

use std::sync::LazyLock;

use redis::Script;
use sha2::{Digest, Sha256};

use crate::cache::{Cache, Inner};
use crate::error::Error;
use crate::events::Event;
use crate::key::{push_hex, TemplateWriter, MAX_TEMPLATE_LEN};
use crate::spec::key::Key;
use crate::store::Budget;

/// KEYS = tag sets; ARGV = member, expiry (ms or `+inf`), now (ms).
const RECORD_LUA: &str = r"
for _, tag in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', tag, '-inf', '(' .. ARGV[3])
  redis.call('ZADD', tag, ARGV[2], ARGV[1])
  local top = redis.call('ZRANGE', tag, -1, -1, 'WITHSCORES')
  if top[2] == 'inf' then
    redis.call('PERSIST', tag)
  else
    redis.call('PEXPIREAT', tag, top[2])
  end
end
return #KEYS
";

/// [`RECORD_LUA`] for a write pipelined with it: ARGV[2] is the entry's TTL in ms (or `+inf`),
/// and the expiry is taken from the server's clock when the script runs, right after the
/// entry's `SET` in the same pipeline, so it is never earlier than the entry's.
const RECORD_PX_LUA: &str = r"
local expiry = ARGV[2]
if expiry ~= '+inf' then
  local t = redis.call('TIME')
  expiry = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2]))
end
for _, tag in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', tag, '-inf', '(' .. ARGV[3])
  redis.call('ZADD', tag, expiry, ARGV[1])
  local top = redis.call('ZRANGE', tag, -1, -1, 'WITHSCORES')
  if top[2] == 'inf' then
    redis.call('PERSIST', tag)
  else
    redis.call('PEXPIREAT', tag, top[2])
  end
end
return #KEYS
";

/// KEYS[1] = one tag set; deletes up to ARGV[1] of its members (and the set once empty), so a
/// huge tag never blocks Redis in one script; returns {entries deleted, members left}.
const DELETE_LUA: &str = r"
local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
local deleted = 0
for i = 1, #popped, 2 do
  deleted = deleted + redis.call('UNLINK', popped[i])
end
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then redis.call('UNLINK', KEYS[1]) end
return {deleted, left}
";

/// Members deleted per script call.
const DELETE_BATCH: u32 = 500;

static RECORD: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_LUA));
static RECORD_PX: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_PX_LUA));
static DELETE: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_LUA));

/// The tags of one call, rendered by generated code (`tags = [...]`).
#[derive(Debug, Default)]
pub struct TagList {
    pub(crate) tags: Vec<String>,
}

impl TagList {
    /// Renders one tag template.
    pub fn tag(&mut self, render: impl FnOnce(&mut TemplateWriter<'_>)) {
        let mut s = String::new();
        render(&mut TemplateWriter::verbatim(&mut s));
        self.tags.push(s);
    }
}

/// Attaches the rendered tags of a call to its key.
pub fn with_tags(key: Result<Key, Error>, render: impl FnOnce(&mut TagList)) -> Result<Key, Error> {
    let mut key = key?;
    let mut list = TagList::default();
    render(&mut list);
    key.tags = list.tags;
    Ok(key)
}

/// The key of `tag`'s set, used alike where entries join a group (cached functions,
/// `set_with_tags`, sliding reads) and where groups are deleted (`invalidate_tags`):
/// `{namespace}:tag:{tag}`, the tag verbatim. A tag longer than
/// [`MAX_TEMPLATE_LEN`] bytes is named by `#` and a 128-bit digest of it instead, so a hostile
/// argument cannot grow keys without bound (and the same long tag still finds its set).
pub(crate) fn tag_key(inner: &Inner, tag: &str) -> String {
    tag_key_in(&inner.config.namespace, tag)
}

fn tag_key_in(namespace: &str, tag: &str) -> String {
    if tag.len() > MAX_TEMPLATE_LEN {
        let mut name = String::with_capacity(33);
        name.push('#');
        push_hex(&mut name, &Sha256::digest(tag.as_bytes())[..16]);
        return format!("{namespace}:tag:{name}");
    }
    format!("{namespace}:tag:{tag}")
}

/// Records `member` (a full entry key) under `tags`, expiring at `expiry_ms` (`None`: never),
/// within what is left of the call's `budget` (on a cluster, one script call per tag, all
/// within it).
pub(crate) async fn record(
    inner: &Inner,
    tags: &[String],
    member: &str,
    expiry_ms: Option<u64>,
    now_ms: u64,
    budget: &mut Budget,
) -> Result<(), Error> {
    if tags.is_empty() {
        return Ok(());
    }
    if inner.store.is_cluster() {
        // Tag sets live in different slots: one single-key script call per tag, each routed to
        // the master of its tag key.
        for t in tags {
            let mut invocation = RECORD.prepare_invoke();
            invocation.key(tag_key(inner, t)).arg(member);
            match expiry_ms {
                Some(ms) => invocation.arg(ms),
                None => invocation.arg("+inf"),
            };
            invocation.arg(now_ms);
            let invocation = &invocation;
            budget
                .run(|limit| inner.store.invoke_within::<u64>(invocation, limit))
                .await?;
        }
        return Ok(());
    }
    let mut invocation = RECORD.prepare_invoke();
    for t in tags {
        invocation.key(tag_key(inner, t));
    }
    invocation.arg(member);
    match expiry_ms {
        Some(ms) => invocation.arg(ms),
        None => invocation.arg("+inf"),
    };
    invocation.arg(now_ms);
    let invocation = &invocation;
    budget
        .run(|limit| inner.store.invoke_within::<u64>(invocation, limit))
        .await
        .map(|_| ())
}

/// [`record`] as one `EVALSHA` (single node: every tag set in one call) to pipeline right
/// behind the entry's `SET`: the expiry is the server's clock plus `ttl_ms` when the script runs
/// ([`RECORD_PX_LUA`]). With the script, to load it if the server does not know it.
pub(crate) fn record_cmd(
    inner: &Inner,
    tags: &[String],
    member: &str,
    ttl_ms: Option<u64>,
    now_ms: u64,
) -> (&'static Script, redis::Cmd) {
    let keys: Vec<String> = tags.iter().map(|t| tag_key(inner, t)).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut cmd = crate::store::evalsha(&RECORD_PX, &keys);
    cmd.arg(member);
    match ttl_ms {
        Some(ms) => cmd.arg(ms),
        None => cmd.arg("+inf"),
    };
    cmd.arg(now_ms);
    (&*RECORD_PX, cmd)
}

impl Cache {
    /// Deletes every entry stored with any of `tags` (by any function or the typed handle) and
    /// the tag sets themselves; returns how many entries existed. Announced on the event channel.
    ///
    /// Cost: one round trip per 500 tagged entries; Redis work proportional to the tagged entries.
    ///
    /// # Errors
    /// The configuration is invalid, or Redis failed or timed out.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), memo_redis::Error> {
    /// let n = memo_redis::global().invalidate_tags(["user:42"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_tags<I, S>(&self, tags: I) -> Result<u64, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let inner = self.ready()?;
        let tags: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        if tags.is_empty() {
            return Ok(0);
        }
        let mut deleted = 0u64;
        if inner.store.is_cluster() {
            for t in &tags {
                deleted += delete_tag_cluster(inner, &tag_key(inner, t)).await?;
            }
            inner.announce(Event::Tags(tags)).await;
            return Ok(deleted);
        }
        for t in &tags {
            let mut invocation = DELETE.prepare_invoke();
            invocation.key(tag_key(inner, t)).arg(DELETE_BATCH);
            loop {
                let (n, left): (u64, u64) = inner.store.invoke(&invocation).await?;
                deleted += n;
                if left == 0 {
                    break;
                }
            }
        }
        inner.announce(Event::Tags(tags)).await;
        Ok(deleted)
    }
}

/// Redis Cluster version of [`DELETE_LUA`]: the members live in other slots than the tag set, so
/// they are popped with a single-key command and unlinked from the client (the cluster
/// connection splits each `UNLINK` per slot). Returns the entries deleted.
async fn delete_tag_cluster(inner: &Inner, tag: &str) -> Result<u64, Error> {
    let mut deleted = 0u64;
    loop {
        let popped: Vec<(String, f64)> = inner
            .store
            .query(redis::cmd("ZPOPMIN").arg(tag).arg(DELETE_BATCH))
            .await?;
        if !popped.is_empty() {
            let members: Vec<&str> = popped.iter().map(|(m, _)| m.as_str()).collect();
            let n: u64 = inner
                .store
                .query(redis::cmd("UNLINK").arg(&members))
                .await?;
            deleted += n;
        }
        let left: u64 = inner.store.query(redis::cmd("ZCARD").arg(tag)).await?;
        if left == 0 {
            let _: u64 = inner.store.query(redis::cmd("UNLINK").arg(tag)).await?;
            return Ok(deleted);
        }
    }
}

/// [`Cache::invalidate_tags`] on the global cache.
///
/// # Errors
/// See [`Cache::invalidate_tags`].
///
/// ```no_run
/// # async fn run() -> Result<(), memo_redis::Error> {
/// memo_redis::invalidate_tags(["user:42", "users"]).await?;
/// # Ok(()) }
/// ```
pub async fn invalidate_tags<I, S>(tags: I) -> Result<u64, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    crate::global().invalidate_tags(tags).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_keep_the_tag_as_written() {
        for tag in ["region:eu-west", "50% off", "a b", "日本", "{x}y", "%2D"] {
            assert_eq!(tag_key_in("ns", tag), format!("ns:tag:{tag}"));
        }
        let long = "t".repeat(MAX_TEMPLATE_LEN + 1);
        let k = tag_key_in("ns", &long);
        assert_eq!(k.len(), "ns:tag:#".len() + 32, "{k}");
        assert_eq!(k, tag_key_in("ns", &long), "stable");
        assert_ne!(k, tag_key_in("ns", &"u".repeat(MAX_TEMPLATE_LEN + 1)));
    }

    #[test]
    fn tag_templates_render_values_verbatim() {
        let mut list = TagList::default();
        list.tag(|w| {
            w.lit("region:");
            w.arg("eu-west");
        });
        list.tag(|w| w.arg("a:b 50% {c}"));
        assert_eq!(list.tags, ["region:eu-west", "a:b 50% {c}"]);
    }
}
