//! A scheduled job: every 250 ms it prices a basket in five currencies through a cached
//! exchange-rate lookup with a short `ttl` and `jitter`, and reports, tick by tick, which lookups
//! were served from Redis and which went to the (slow, pretend) rate provider.
//!
//! `jitter = 0.3` spreads each entry's lifetime uniformly over 0.7–1.3 s, so the five rates,
//! fetched together on the first tick, usually expire on different ticks: the refetches spread
//! out instead of hitting the provider all at once (the draw is random, so runs differ).
//!
//! Run: `cargo run --example scheduled_job` (starts a throwaway redis-server unless `REDIS_URL` is
//! set).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use memo_redis::{redis_cache, Config, StatsTable};
use memo_redis_examples::{init_logging, DemoRedis};
use serde::{Deserialize, Serialize};

const TICKS: u32 = 12;
const PERIOD: Duration = Duration::from_millis(250);
const CURRENCIES: [&str; 5] = ["USD", "GBP", "JPY", "CHF", "SEK"];

static PROVIDER_CALLS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Rate {
    currency: String,
    per_eur: f64,
}

/// The rate provider is slow (60 ms) and rate-limited: cache its answers for about a second.
#[redis_cache(ttl = "1s", jitter = 0.3, prefix = "fx")]
async fn exchange_rate(currency: String) -> Option<Rate> {
    PROVIDER_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let per_eur = match currency.as_str() {
        "USD" => 1.08,
        "GBP" => 0.86,
        "JPY" => 162.4,
        "CHF" => 0.94,
        "SEK" => 11.5,
        _ => return None,
    };
    Some(Rate { currency, per_eur })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let redis = DemoRedis::start();
    println!("memo-redis scheduled job — redis: {}", redis.describe());
    println!(
        "{TICKS} ticks every {} ms; rates cached for 1 s ± 30 %\n",
        PERIOD.as_millis()
    );
    memo_redis::init(
        Config::builder()
            .url(redis.url.clone())
            .namespace("memo-scheduled")
            .build()?,
    )?;
    // Start cold even against a shared REDIS_URL.
    for c in CURRENCIES {
        exchange_rate_evict(&c.to_string()).await?;
    }

    let start = Instant::now();
    let mut interval = tokio::time::interval(PERIOD);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 1..=TICKS {
        interval.tick().await;
        let mut line = format!("tick {tick:>2} (+{:>4} ms):", start.elapsed().as_millis());
        let mut basket = 0.0;
        for c in CURRENCIES {
            // Calls run one after the other, so the change in the counters is this call's outcome.
            let before = exchange_rate_stats();
            let rate = exchange_rate(c.to_string()).await;
            let after = exchange_rate_stats();
            let outcome = if after.hits > before.hits {
                "hit "
            } else if after.misses > before.misses {
                "MISS"
            } else {
                "other"
            };
            line.push_str(&format!("  {c} {outcome}"));
            basket += 100.0 / rate.map(|r| r.per_eur).unwrap_or(f64::NAN);
        }
        println!("{line}   basket = {basket:>7.2} EUR");
    }

    let lookups = TICKS as usize * CURRENCIES.len();
    println!(
        "\n{lookups} lookups, {} calls to the rate provider\n",
        PROVIDER_CALLS.load(Ordering::SeqCst)
    );
    print!("{}", StatsTable(memo_redis::stats()));
    memo_redis::shutdown().await;
    Ok(())
}
