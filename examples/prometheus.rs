//! memo-redis metrics in Prometheus format: install a recorder, make cached calls (misses, hits,
//! then, with the throwaway server stopped, errors and breaker bypasses), and print the
//! `memo_redis_*` series a scrape would return.
//!
//! The recorder comes from `metrics-exporter-prometheus` without its HTTP listener: the example
//! prints `PrometheusHandle::render()`; a service would return that text from its `/metrics`
//! route (or enable the exporter's `http-listener` feature).
//!
//! Run: `cargo run --example prometheus` (starts a throwaway redis-server unless `REDIS_URL` is
//! set).

use std::time::Duration;

use memo_redis::{redis_cache, Config};
use memo_redis_examples::{init_logging, DemoRedis};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Price {
    sku: u32,
    cents: u64,
}

/// A pretend catalogue query: 20 ms.
#[redis_cache(ttl = "5m", prefix = "prices")]
async fn price(sku: u32) -> Result<Price, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(Price {
        sku,
        cents: 999 + u64::from(sku) * 100,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    // First, before any cached call: each function resolves its metric handles on its first
    // call, against whatever recorder is installed at that moment.
    let metrics = PrometheusBuilder::new().install_recorder()?;

    let redis = DemoRedis::start();
    println!("memo-redis prometheus — redis: {}\n", redis.describe());
    memo_redis::init(
        Config::builder()
            .url(redis.url.clone())
            .namespace("memo-prometheus")
            .op_timeout(Duration::from_millis(100))
            .breaker_threshold(2)
            .build()?,
    )?;
    for sku in 1..=3 {
        price_evict(&sku).await?; // start cold even against a shared REDIS_URL
    }

    // 3 misses, then 4 hits.
    for sku in [1, 2, 3, 1, 2, 3, 1] {
        price(sku).await?;
    }
    println!("7 calls: 3 misses, 4 hits");

    match redis.server.as_ref() {
        Some(server) => {
            server.stop();
            // Two failed reads open the breaker (threshold 2); the next calls bypass Redis.
            for sku in [1, 2, 3, 4] {
                price(sku).await?;
            }
            println!("redis-server stopped, 4 more calls: 2 errors, then the breaker bypasses");
        }
        None => println!("(REDIS_URL set: not stopping a server this example did not start)"),
    }

    println!("\nthe memo_redis_* lines of a scrape:\n");
    for line in metrics.render().lines() {
        if line.contains("memo_redis_") {
            println!("{line}");
        }
    }
    memo_redis::shutdown().await;
    Ok(())
}
