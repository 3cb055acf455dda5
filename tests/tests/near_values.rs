//! The near cache keeps values decoded (issue 17): a local hit is a lookup and a clone of the
//! kept value, never a decode of bytes; a kept value of another type under the same key is a
//! miss, never a wrong value or a panic.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use common::{wait_near_live, warm_local_by};
use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::RedisServer;
use serde::{Deserialize, Deserializer, Serialize};

fn config(server: &RedisServer) -> Config {
    Config::builder()
        .url(server.url())
        .namespace("values")
        .op_timeout(Duration::from_millis(500))
        .build()
        .expect("valid config")
}

static DECODES: AtomicU64 = AtomicU64::new(0);
static CLONES: AtomicU64 = AtomicU64::new(0);

/// Counts its decodes and its clones.
#[derive(Debug, PartialEq, Serialize)]
struct Tracked {
    id: u64,
    name: String,
}

impl<'de> Deserialize<'de> for Tracked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Tracked {
            id: u64,
            name: String,
        }
        let t = Tracked::deserialize(d)?;
        DECODES.fetch_add(1, SeqCst);
        Ok(self::Tracked {
            id: t.id,
            name: t.name,
        })
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, SeqCst);
        Tracked {
            id: self.id,
            name: self.name.clone(),
        }
    }
}

static KEPT: Cache = Cache::from_env();

#[redis_cache(cache = KEPT, ttl = 300, local = "60s")]
async fn tracked(id: u64) -> Tracked {
    Tracked {
        id,
        name: format!("n{id}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_hit_clones_the_kept_value_and_decodes_nothing() {
    let server = RedisServer::start();
    KEPT.install(config(&server)).unwrap();
    let want = Tracked {
        id: 1,
        name: "n1".into(),
    };
    assert_eq!(tracked(1).await, want);
    wait_near_live(&KEPT, Duration::from_secs(5)).await;
    warm_local_by("tracked", tracked_stats, || tracked(1)).await;

    let (decodes, clones, local) = (
        DECODES.load(SeqCst),
        CLONES.load(SeqCst),
        tracked_stats().local_hits,
    );
    for _ in 0..100 {
        assert_eq!(tracked(1).await, want);
    }
    assert_eq!(tracked_stats().local_hits - local, 100);
    assert_eq!(
        DECODES.load(SeqCst) - decodes,
        0,
        "a local hit decoded the entry"
    );
    assert_eq!(CLONES.load(SeqCst) - clones, 100, "one clone per local hit");
}

// Two functions whose keys are equal (same identity, signature text and serde shape) but whose
// value types are two Rust types: each finds the other's kept value under its key.
mod first {
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Rec {
        pub x: u64,
    }

    #[memo_redis::redis_cache(cache = super::SHARED, name = "values::rec", ttl = 300, local = "60s")]
    pub async fn rec(id: u64) -> Rec {
        Rec { x: id }
    }
}

mod second {
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Rec {
        pub x: u64,
    }

    #[memo_redis::redis_cache(cache = super::SHARED, name = "values::rec", ttl = 300, local = "60s")]
    pub async fn rec(id: u64) -> Rec {
        Rec { x: id }
    }
}

static SHARED: Cache = Cache::from_env();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_value_of_another_type_under_the_key_is_a_miss_not_a_wrong_value() {
    let server = RedisServer::start();
    SHARED.install(config(&server)).unwrap();
    assert_eq!(
        first::rec_key(&7).unwrap(),
        second::rec_key(&7).unwrap(),
        "the scenario needs one key for both"
    );
    assert_eq!(first::rec(7).await, first::Rec { x: 7 });
    wait_near_live(&SHARED, Duration::from_secs(5)).await;
    warm_local_by("first::rec", first::rec_stats, || first::rec(7)).await;

    // The tier holds a `first::Rec` under the key: `second` cannot take it (the downcast fails),
    // so it reads Redis (the entry decodes as its own type) and returns its own value.
    let before = second::rec_stats();
    assert_eq!(second::rec(7).await, second::Rec { x: 7 });
    let after = second::rec_stats();
    assert_eq!(after.hits - before.hits, 1, "{after:?}");
    assert_eq!(
        after.local_hits, before.local_hits,
        "not served the other type"
    );
    assert_eq!(after.misses, before.misses, "the Redis entry served it");
}

static PACKED: Cache = Cache::from_env();

#[redis_cache(cache = PACKED, ttl = 300, local = "60s")]
async fn packed(n: u64) -> String {
    "w".repeat(n as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_entry_weighs_what_it_decodes_to() {
    // Kept decoded, a compressed entry takes its decompressed size in memory: the byte bound
    // counts that, not the few bytes Redis stores.
    let server = RedisServer::start();
    let config = Config::builder()
        .url(server.url())
        .namespace("values-packed")
        .compress_min_bytes(64)
        .build()
        .expect("valid config");
    PACKED.install(config).unwrap();
    assert_eq!(packed(5000).await.len(), 5000);
    wait_near_live(&PACKED, Duration::from_secs(5)).await;
    // A late invalidation of our own first write may drop the first copy (allowed: it only
    // costs a read); warm again until one is held.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let state = loop {
        warm_local_by("packed", packed_stats, || packed(5000)).await;
        match PACKED.near_cache() {
            Some(state) if state.entries == 1 => break state,
            _ => assert!(std::time::Instant::now() < deadline, "no copy held"),
        }
    };

    let key = packed_key(&5000).unwrap();
    let stored = common::raw_get(&server, &key).await.expect("stored");
    assert!(stored.len() < 1000, "compressed: {} bytes", stored.len());
    assert!(
        state.bytes >= (key.len() + 5000 + 180) as u64,
        "weighed {} bytes for a 5000-byte value",
        state.bytes
    );
}
