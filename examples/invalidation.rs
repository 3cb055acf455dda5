//! Invalidation: tags across functions, whole-function invalidation and events.
//!
//! Run: `cargo run --example invalidation`

use std::sync::{Arc, Mutex};

use memo_redis::{redis_cache, Event};
use memo_redis_examples::DemoRedis;

#[redis_cache(ttl = "10m", prefix = "profiles", tags = ["user:{id}"])]
async fn profile(id: u64) -> String {
    format!("profile of {id}")
}

#[redis_cache(ttl = "1m", prefix = "orders", key = "{user}:{page}", tags = ["user:{user}"])]
async fn orders(user: u64, page: u32) -> Vec<String> {
    vec![format!("order {page}-1 of {user}")]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _redis = DemoRedis::start_global("memo-redis invalidation")?;

    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&events);
    memo_redis::global()
        .subscribe(move |e| sink.lock().map(|mut v| v.push(e.clone())).unwrap_or(()))
        .await?;

    for user in [42, 43] {
        profile(user).await;
        orders(user, 1).await;
        orders(user, 2).await;
    }
    println!("cached: profile + 2 order pages for users 42 and 43");
    let n = memo_redis::invalidate_tags(["user:42"]).await?;
    println!("invalidate_tags([\"user:42\"])  -> {n} entries deleted (user 43 untouched)");
    println!(
        "profile_peek(&43) still cached: {}",
        profile_peek(&43).await?.is_some()
    );
    let n = orders_invalidate_all().await?;
    println!("orders_invalidate_all()        -> {n} entries deleted");
    let n = memo_redis::invalidate_pattern("profiles:*").await?;
    println!("invalidate_pattern(\"profiles:*\") -> {n} entries deleted");

    // Events arrive asynchronously on the subscriber connection.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    for e in events.lock().map(|v| v.clone()).unwrap_or_default() {
        println!("event received: {e:?}");
    }
    memo_redis::shutdown().await;
    Ok(())
}
