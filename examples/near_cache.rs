//! The near cache: a hot key served from process memory (`local = "30s"`), and dropped the
//! moment another connection changes it in Redis (server-assisted `CLIENT TRACKING`).
//!
//! Run: `cargo run --example near_cache`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memo_redis::redis_cache;
use memo_redis_examples::DemoRedis;

static RUNS: AtomicU32 = AtomicU32::new(0);

#[redis_cache(ttl = "5m", prefix = "near-demo", local = "30s")]
async fn price(sku: u32) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    u64::from(sku) * 100
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis = DemoRedis::start_global("memo-redis near cache")?;
    price_evict(&7).await?;

    println!("first call (miss, stored in Redis): {}", price(7).await);
    // The tracking connection starts with the first `local` call; wait until it is live.
    let started = Instant::now();
    while !memo_redis::global().near_cache().is_some_and(|n| n.live) {
        if started.elapsed() > Duration::from_secs(5) {
            return Err("near cache did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("second call (Redis hit, kept locally): {}", price(7).await);

    let n = 100_000;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(price(7).await);
    }
    let took = started.elapsed();
    let stats = price_stats(); // the `f_stats()` companion: this function's counters
    println!(
        "{n} more calls in {took:?} ({:.0} ns each); local hits so far: {}, body runs: {}",
        took.as_nanos() as f64 / f64::from(n),
        stats.local_hits,
        RUNS.load(Ordering::SeqCst)
    );

    // Another client changes the entry in Redis: here a raw DEL from a second connection.
    let key = price_key(&7)?;
    let client = redis::Client::open(redis.url.as_str())?;
    let mut other = client.get_multiplexed_async_connection().await?;
    let _: u64 = redis::cmd("DEL").arg(&key).query_async(&mut other).await?;
    let deleted = Instant::now();
    let runs = RUNS.load(Ordering::SeqCst);
    while RUNS.load(Ordering::SeqCst) == runs {
        price(7).await;
        if deleted.elapsed() > Duration::from_secs(2) {
            return Err("the local copy outlived the DEL".into());
        }
    }
    println!(
        "another connection deleted the key; this process recomputed after {:?}",
        deleted.elapsed()
    );
    if let Some(state) = memo_redis::global().near_cache() {
        println!("near cache: {state:?}");
    }
    memo_redis::shutdown().await;
    Ok(())
}
