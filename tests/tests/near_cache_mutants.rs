//! Near-cache sync promises that the mutation run of `near.rs` (docs/mutation-testing.md) found
//! untested, against real redis-server processes:
//!
//! - the dataset's epoch token lives under the namespace, at `{namespace}:near-epoch`
//!   (docs/near-cache.md), written once and read back by the heartbeat;
//! - a user whose ACL denies the epoch key still gets a live tier (the heartbeat pings; only a
//!   `SWAPDB` goes unnoticed), and then `FLUSHALL` — announced to tracking clients as a `null`
//!   invalidation — is the only thing that can drop the local copies: it must drop them;
//! - a server that refuses `CLIENT TRACKING` is retried with a doubling backoff (up to 2 s), not
//!   in a loop of new connections;
//! - many calls share one tracking task and connection; `shutdown` empties and darkens the tier
//!   before it returns, and a later call starts tracking again.

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::{wait_near_live, warm_local};
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::RedisServer;

static E: Cache = Cache::from_env();

#[redis_cache(cache = E, ttl = 300, local = "60s")]
async fn epoch_fn(id: u32) -> u32 {
    id
}

/// The token the heartbeat compares is `{namespace}:near-epoch`, 32 hex digits, no expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_epoch_token_is_written_under_the_namespace() {
    let server = RedisServer::start();
    E.install(
        Config::builder()
            .url(server.url())
            .namespace("ep")
            .build()
            .expect("valid config"),
    )
    .expect("installed once");
    assert_eq!(epoch_fn(1).await, 1);
    wait_near_live(&E, Duration::from_secs(10)).await;

    let mut admin = server.conn().await;
    let token: Option<String> = redis::cmd("GET")
        .arg("ep:near-epoch")
        .query_async(&mut admin)
        .await
        .expect("GET");
    let token = token.expect("the epoch token is written at ep:near-epoch");
    assert_eq!(token.len(), 32, "{token:?}");
    assert!(
        token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token:?} is hex"
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg("ep:near-epoch")
        .query_async(&mut admin)
        .await
        .expect("PTTL");
    assert_eq!(pttl, -1, "the token has no expiry");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*near-epoch*")
        .query_async(&mut admin)
        .await
        .expect("KEYS");
    assert_eq!(keys, ["ep:near-epoch"], "one token, under the namespace");
}

static D: Cache = Cache::from_env();
static VERSION: AtomicU32 = AtomicU32::new(1);

// Named so that its keys (`acl:acl…`) are allowed by the ACL below and the epoch key
// (`acl:near-epoch`) is not.
#[redis_cache(cache = D, name = "acl::denied", ttl = 300, local = "60s")]
async fn denied(id: u32) -> String {
    format!("{id}-v{}", VERSION.load(SeqCst))
}

/// ACL `~acl:[^n]*`: every key of the namespace but `acl:near-epoch`. Setting and reading the
/// token are refused: the tier goes live all the same (the heartbeat pings instead), and a
/// `FLUSHALL` by another client drops the local copy — with the epoch unreadable, its `null`
/// invalidation is the only signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_denying_the_epoch_key_leaves_the_tier_live_and_flushall_drops_it() {
    let server = RedisServer::start();
    let mut admin = server.conn().await;
    let () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                "app",
                "on",
                ">app-pass",
                "~acl:[^n]*",
                "&*",
                "+@all",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .expect("ACL SETUSER");
    D.install(
        Config::builder()
            .url(format!("redis://app:app-pass@127.0.0.1:{}/", server.port()))
            .namespace("acl")
            .op_timeout(Duration::from_millis(500))
            .build()
            .expect("valid config"),
    )
    .expect("installed once");

    assert_eq!(denied(1).await, "1-v1");
    wait_near_live(&D, Duration::from_secs(10)).await;
    warm_local("denied", || denied(1)).await;
    let token: Option<String> = redis::cmd("GET")
        .arg("acl:near-epoch")
        .query_async(&mut admin)
        .await
        .expect("GET");
    assert_eq!(token, None, "the user could not write the token");

    VERSION.store(2, SeqCst);
    assert_eq!(denied(1).await, "1-v1", "served locally before the flush");
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .expect("FLUSHALL");
    // The push arrives within milliseconds; without it the copy would be served for the 60 s
    // `local` cap (the epoch check cannot see the flush here).
    let deadline = Instant::now() + Duration::from_secs(5);
    while denied(1).await != "1-v2" {
        assert!(
            Instant::now() < deadline,
            "the local copy survived FLUSHALL"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(D.near_cache().expect("a near cache").live, "still live");
}

static R: Cache = Cache::from_env();

#[redis_cache(cache = R, ttl = 300, local = "60s")]
async fn refused(id: u32) -> u32 {
    id
}

async fn connections_received(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(admin)
        .await
        .expect("INFO stats");
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_connections_received in INFO stats")
}

/// Tracking refused (an ACL without `CLIENT`): the tracking task reconnects after 50, 100, 200,
/// 400, 800, 1600, 2000… ms, so a 2 s window sees at most 6 attempts (one connection each)
/// plus the cache's own connections; a backoff that shrank instead would open thousands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tracking_is_retried_with_a_growing_backoff() {
    let server = RedisServer::start();
    let mut admin = server.conn().await;
    let () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                "app",
                "on",
                ">app-pass",
                "~*",
                "&*",
                "+@all",
                "-client",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .expect("ACL SETUSER");
    R.install(
        Config::builder()
            .url(format!("redis://app:app-pass@127.0.0.1:{}/", server.port()))
            .namespace("refused")
            .build()
            .expect("valid config"),
    )
    .expect("installed once");
    let before = connections_received(&mut admin).await;
    assert_eq!(refused(1).await, 1);
    // A measurement window, not a synchronisation: attempts are counted over it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let opened = connections_received(&mut admin).await - before;
    assert!(
        opened <= 12,
        "{opened} connections in 2 s: tracking retried without backoff"
    );
    assert!(!R.near_cache().expect("a near cache").live);
}

static S: Cache = Cache::from_env();
static S_VERSION: AtomicU32 = AtomicU32::new(1);

#[redis_cache(cache = S, ttl = 300, local = "60s")]
async fn stopped(id: u32) -> String {
    format!("{id}-v{}", S_VERSION.load(SeqCst))
}

/// Clients of `server` with client-side caching on (`t` in their `CLIENT LIST` flags).
async fn tracking_clients(server: &RedisServer) -> usize {
    let mut admin = server.conn().await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("flags="))
                .is_some_and(|flags| flags.contains('t'))
        })
        .count()
}

/// Many calls, one tracking task (and connection); `shutdown` empties the tier and darkens it
/// before it returns, and later calls start tracking again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tracking_connection_and_shutdown_darkens_the_tier_until_the_next_call() {
    let server = RedisServer::start();
    S.install(
        Config::builder()
            .url(server.url())
            .namespace("stop")
            .build()
            .expect("valid config"),
    )
    .expect("installed once");
    for _ in 0..20 {
        assert_eq!(stopped(1).await, "1-v1");
    }
    wait_near_live(&S, Duration::from_secs(10)).await;
    warm_local("stopped", || stopped(1)).await;
    for _ in 0..20 {
        assert_eq!(stopped(1).await, "1-v1");
    }
    assert_eq!(
        tracking_clients(&server).await,
        1,
        "one tracking connection"
    );

    assert!(S.shutdown(Duration::from_secs(5)).await);
    let near = S.near_cache().expect("a near cache");
    assert!(!near.live, "dark after shutdown");
    assert_eq!(near.entries, 0, "emptied by shutdown");

    // Later calls start tracking again. Not necessarily the first: `stop` aborts the tracking
    // task, and until the runtime has dropped it (`Running::drop`) a call sees it as running.
    warm_local("stopped", || stopped(1)).await;
}
