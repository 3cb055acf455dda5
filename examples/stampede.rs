//! Stampede protection: 500 concurrent calls on a cold key run the body once (single-flight,
//! on by default); with `single_flight = false` they all run it.
//!
//! Run: `cargo run --example stampede`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memo_redis::redis_cache;
use memo_redis_examples::DemoRedis;

static PROTECTED_RUNS: AtomicU32 = AtomicU32::new(0);
static UNPROTECTED_RUNS: AtomicU32 = AtomicU32::new(0);

#[redis_cache(ttl = 60, prefix = "stampede", lock = "5s")]
async fn protected(id: u64) -> u64 {
    PROTECTED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    id * 2
}

#[redis_cache(ttl = 60, prefix = "stampede", single_flight = false)]
async fn unprotected(id: u64) -> u64 {
    UNPROTECTED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    id * 2
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _redis = DemoRedis::start_global("memo-redis stampede")?;
    protected_evict(&7).await?;
    unprotected_evict(&7).await?;

    let start = Instant::now();
    let calls: Vec<_> = (0..500).map(|_| tokio::spawn(protected(7))).collect();
    for c in calls {
        assert_eq!(c.await?, 14);
    }
    println!(
        "500 concurrent calls, single-flight + lock: body ran {} time(s) in {:?}",
        PROTECTED_RUNS.load(Ordering::SeqCst),
        start.elapsed()
    );

    let start = Instant::now();
    let calls: Vec<_> = (0..500).map(|_| tokio::spawn(unprotected(7))).collect();
    for c in calls {
        assert_eq!(c.await?, 14);
    }
    println!(
        "500 concurrent calls, single_flight = false: body ran {} time(s) in {:?}",
        UNPROTECTED_RUNS.load(Ordering::SeqCst),
        start.elapsed()
    );
    memo_redis::shutdown().await;
    Ok(())
}
