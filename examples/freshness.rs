//! Freshness: stale-while-revalidate serves an expired value at once while one background
//! refresh runs; sliding expiry keeps a key alive while it is read.
//!
//! Run: `cargo run --example freshness`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memo_redis::redis_cache;
use memo_redis_examples::DemoRedis;

static VERSION: AtomicU32 = AtomicU32::new(0);

/// A slow price lookup (400 ms) that may be up to 10 s stale.
#[redis_cache(ttl = "1s", stale = "10s", prefix = "prices")]
async fn price(item: String) -> (String, u32) {
    tokio::time::sleep(Duration::from_millis(400)).await;
    (item, VERSION.fetch_add(1, Ordering::SeqCst) + 1)
}

#[redis_cache(ttl = "1s", sliding = true, prefix = "sessions")]
async fn session(id: u64) -> String {
    format!("session-{id}")
}

async fn timed(label: &str) {
    let start = Instant::now();
    let (_, version) = price("apple".into()).await;
    println!(
        "{label:<38} version {version}  {:>8.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _redis = DemoRedis::start_global("memo-redis freshness")?;
    price_evict(&"apple".to_string()).await?;

    timed("first call (miss: waits for body)").await;
    timed("second call (fresh hit)").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    timed("after the ttl (stale: served at once)").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    timed("later (the background refresh landed)").await;

    session(1).await;
    let key = session_key(&1)?;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        session(1).await;
    }
    println!(
        "\nsliding: read every 400 ms for 2.4 s with ttl = 1s -> {key} still cached: {}",
        session_peek(&1).await?.is_some()
    );
    memo_redis::shutdown().await;
    Ok(())
}
