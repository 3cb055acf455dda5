//! Instructions per call of the hit paths, measured with callgrind (repeatable on a loaded
//! machine, unlike wall-clock figures):
//!
//! ```sh
//! cargo bench -p memo-redis-tests --bench hitcost --no-run     # prints the binary's path
//! valgrind --tool=callgrind --toggle-collect='*hitcost*measure*' BINARY --bench MODE N
//! ```
//!
//! `MODE` is `hit` (a `#[redis_cache]` Redis hit), `near` (a near-cache hit), `raw` (a redis-rs
//! `GET` of the same entry through a `ConnectionManager`), `bypass` (breaker open on a dead
//! server), `near-arc` (a near-cache hit of a function returning `Arc<Profile>`: the hit clones
//! a pointer, not the record), `miss` (a `#[redis_cache]` miss: a new id per call, so `GET` nil,
//! the body, the guarded encode and `SET`) or `raw-miss` (redis-rs `GET` of a new key, nil, then
//! `SET … PX` of an entry of the same bytes); `N` calls run sequentially on a current-thread runtime inside `measure`, after a
//! warm-up, so the collected instructions over `N` are the cost of one call (client side only:
//! redis-server is another process). Without `--bench` (e.g. `cargo test --benches`) it runs a
//! few calls of each mode as a smoke test.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use memo_redis::{redis_cache, Cache, Config};
use memo_redis_tests::{free_port_url, RedisServer};
use redis::aio::ConnectionManager;

mod common;
use common::{profile, Profile};

static HOT: Cache = Cache::from_env();
static NEAR: Cache = Cache::from_env();
static DEAD: Cache = Cache::from_env();
static MISS: Cache = Cache::from_env();
static NEAR_ARC: Cache = Cache::from_env();

#[redis_cache(cache = HOT, ttl = 300)]
async fn hit_profile(id: u64) -> Profile {
    profile(id)
}

#[redis_cache(cache = NEAR, ttl = 300, local = "60s")]
async fn near_profile(id: u64) -> Profile {
    profile(id)
}

#[redis_cache(cache = DEAD, ttl = 300)]
async fn dead_profile(id: u64) -> u64 {
    black_box(id).rotate_left(7)
}

/// The miss modes: every call a new id (and so a new key), never read before.
#[redis_cache(cache = MISS, ttl = 300)]
async fn miss_profile(id: u64) -> Profile {
    profile(id)
}

/// The next id of `miss` and `raw-miss` (shared: no key is ever used twice in a run).
static NEXT_MISS: AtomicU64 = AtomicU64::new(1 << 40);

/// `raw-miss`: its key prefix (+ 32 hex digits: as long as `miss_profile`'s keys) and the
/// entry it writes (the envelope memo-redis writes for such a value).
static RAW_MISS: OnceLock<(String, Vec<u8>)> = OnceLock::new();

/// `raw-miss`: `GET` of a new key (nil) then `SET … PX` of the entry, as the throughput
/// bench's raw miss does; the number of `GET`s that found a value (0 when every call missed).
async fn raw_miss(raw: &mut ConnectionManager) -> u64 {
    let Some((prefix, bytes)) = RAW_MISS.get() else {
        return 1;
    };
    let id = NEXT_MISS.fetch_add(1, Ordering::Relaxed);
    let key = format!("{prefix}{id:032x}");
    let old: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query_async(raw)
        .await
        .unwrap_or_default();
    let set: redis::RedisResult<()> = redis::cmd("SET")
        .arg(&key)
        .arg(&bytes[..])
        .arg("PX")
        .arg(300_000u64)
        .query_async(raw)
        .await;
    u64::from(old.is_some()) + u64::from(set.is_err())
}

/// `near-arc`: what a function returning `std::sync::Arc<Profile>` gets. The tests crate does not
/// enable serde's `rc` feature (it would rebuild the workspace's serde users), so the value is a
/// newtype around the `Arc` whose serde impls are the ones `rc` gives `Arc<T>` (the record's);
/// its `Clone`, all a local hit does with it, is the `Arc`'s.
#[derive(Debug, Clone, PartialEq)]
struct SharedProfile(Arc<Profile>);

impl serde::Serialize for SharedProfile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Profile::serialize(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for SharedProfile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Profile::deserialize(d).map(|p| SharedProfile(Arc::new(p)))
    }
}

#[redis_cache(cache = NEAR_ARC, ttl = 300, local = "60s")]
async fn near_arc_profile(id: u64) -> SharedProfile {
    SharedProfile(Arc::new(profile(id)))
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Hit,
    Near,
    Raw,
    Bypass,
    Miss,
    RawMiss,
    NearArc,
}

#[inline(never)]
async fn measure(mode: Mode, n: u64, raw: &mut ConnectionManager, raw_key: &str) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        let id = i % 64;
        sum = sum.wrapping_add(match mode {
            Mode::Hit => hit_profile(id).await.id,
            Mode::Near => near_profile(id).await.id,
            Mode::Raw => {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(raw_key)
                    .query_async(raw)
                    .await
                    .unwrap_or_default();
                v.map_or(0, |v| v.len() as u64)
            }
            Mode::Bypass => dead_profile(id).await,
            Mode::Miss => {
                miss_profile(NEXT_MISS.fetch_add(1, Ordering::Relaxed))
                    .await
                    .id
            }
            Mode::RawMiss => raw_miss(raw).await,
            Mode::NearArc => near_arc_profile(id).await.0.id,
        });
    }
    sum
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let rest: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let modes: Vec<Mode> = match rest.first().map(|s| s.as_str()) {
        Some("hit") => vec![Mode::Hit],
        Some("near") => vec![Mode::Near],
        Some("raw") => vec![Mode::Raw],
        Some("bypass") => vec![Mode::Bypass],
        Some("miss") => vec![Mode::Miss],
        Some("raw-miss") => vec![Mode::RawMiss],
        Some("near-arc") => vec![Mode::NearArc],
        _ => vec![
            Mode::Hit,
            Mode::Near,
            Mode::Raw,
            Mode::Bypass,
            Mode::Miss,
            Mode::RawMiss,
            Mode::NearArc,
        ],
    };
    let n: u64 = match (bench, rest.get(1)) {
        (true, Some(n)) => n.parse().expect("N"),
        (true, None) => 10_000,
        (false, _) => 10,
    };
    let server = RedisServer::start();
    HOT.install(Config::builder().url(server.url()).build().expect("config"))
        .expect("install HOT");
    NEAR.install(
        Config::builder()
            .url(server.url())
            .namespace("near")
            .build()
            .expect("config"),
    )
    .expect("install NEAR");
    DEAD.install(
        Config::builder()
            .url(free_port_url())
            .breaker_cooldown(Duration::from_secs(3600))
            .build()
            .expect("config"),
    )
    .expect("install DEAD");
    MISS.install(
        Config::builder()
            .url(server.url())
            .namespace("miss")
            .build()
            .expect("config"),
    )
    .expect("install MISS");
    NEAR_ARC
        .install(
            Config::builder()
                .url(server.url())
                .namespace("near-arc")
                .build()
                .expect("config"),
        )
        .expect("install NEAR_ARC");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = redis::Client::open(server.url()).expect("client");
        let mut raw = ConnectionManager::new(client).await.expect("raw");
        let raw_key = hit_profile_key(&0).expect("key");
        let miss_key = miss_profile_key(&u64::MAX).expect("key");
        let prefix = format!("{}raw-", "x".repeat(miss_key.len().saturating_sub(32 + 4)));
        let entry = memo_redis::envelope::encode(
            memo_redis::CodecKind::Bincode,
            Some(&profile(1 << 40)),
            1_764_000_000_000,
            0,
        )
        .expect("encode");
        RAW_MISS.get_or_init(|| (prefix, entry));
        for id in 0..64 {
            assert_eq!(hit_profile(id).await, profile(id));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for id in 0..64 {
                assert_eq!(near_profile(id).await, profile(id));
            }
            if NEAR.near_cache().is_some_and(|s| s.live && s.entries >= 64) {
                break;
            }
            assert!(Instant::now() < deadline, "near cache did not fill");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for id in 0..64 {
                assert_eq!(near_arc_profile(id).await.0, Arc::new(profile(id)));
            }
            if NEAR_ARC
                .near_cache()
                .is_some_and(|s| s.live && s.entries >= 64)
            {
                break;
            }
            assert!(Instant::now() < deadline, "near cache (Arc) did not fill");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        while !DEAD.breaker_open() {
            dead_profile(1).await;
        }
        for &mode in &modes {
            // Warm-up, then the measured calls.
            black_box(measure(mode, 64, &mut raw, &raw_key).await);
            let before = (
                hit_profile_stats(),
                near_profile_stats(),
                dead_profile_stats(),
            );
            let miss_before = miss_profile_stats();
            let arc_before = near_arc_profile_stats();
            let t = Instant::now();
            let sum = black_box(measure(mode, n, &mut raw, &raw_key).await);
            let took = t.elapsed();
            let after = (
                hit_profile_stats(),
                near_profile_stats(),
                dead_profile_stats(),
            );
            match mode {
                Mode::Hit => assert_eq!(after.0.hits - before.0.hits, n, "all hits"),
                Mode::Near => assert_eq!(after.1.local_hits - before.1.local_hits, n, "all local"),
                Mode::Bypass => assert_eq!(after.2.bypass - before.2.bypass, n, "all bypass"),
                Mode::Raw => {}
                Mode::Miss => {
                    let after = miss_profile_stats();
                    assert_eq!(after.misses - miss_before.misses, n, "all misses");
                    assert_eq!(after.calls() - miss_before.calls(), n, "only misses");
                    let skipped = |s: memo_redis::Stats| {
                        s.skipped_too_large + s.skipped_too_deep + s.skipped_not_roundtrip
                    };
                    assert_eq!(skipped(after), skipped(miss_before), "every miss stored");
                }
                Mode::RawMiss => assert_eq!(sum, 0, "every raw GET nil, every SET ok"),
                Mode::NearArc => assert_eq!(
                    near_arc_profile_stats().local_hits - arc_before.local_hits,
                    n,
                    "all local"
                ),
            }
            println!(
                "{}: {n} calls, {:.0} ns/call (wall, not meaningful under callgrind)",
                match mode {
                    Mode::Hit => "hit",
                    Mode::Near => "near",
                    Mode::Raw => "raw",
                    Mode::Bypass => "bypass",
                    Mode::Miss => "miss",
                    Mode::RawMiss => "raw-miss",
                    Mode::NearArc => "near-arc",
                },
                took.as_nanos() as f64 / n as f64
            );
        }
    });
}
