//! A worker that processes items in batches: one Redis round trip per batch, not per item.
//!
//! Orders arrive in batches of 20 from a queue (here: a channel fed by a producer task); each
//! order needs its customer's profile, an expensive lookup (pretend 50 ms of database time)
//! cached with `#[redis_cache]`. The worker asks for the whole batch's profiles at once with the
//! companion `customer_many`: one `MGET` for every customer of the batch, the lookups of the
//! misses run concurrently (at most 16 at a time), and their results written in one pipeline.
//! Repeated customers within a batch are looked up once. The database handle is a
//! `#[memo(skip)]` argument, passed once per batch.
//!
//! Run: `cargo run --example batch_worker` (starts a throwaway redis-server unless `REDIS_URL`
//! is set).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memo_redis::redis_cache;
use memo_redis_examples::DemoRedis;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const BATCHES: usize = 5;
const BATCH_SIZE: u64 = 20;
/// Distinct customers: later batches find most of theirs cached.
const CUSTOMERS: u64 = 40;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Customer {
    id: u64,
    name: String,
    tier: String,
}

/// Stands in for a database pool: counts the queries it serves.
struct Db {
    queries: AtomicU64,
}

impl Db {
    async fn load_customer(&self, id: u64) -> Customer {
        self.queries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Customer {
            id,
            name: format!("customer {id}"),
            tier: if id.is_multiple_of(3) {
                "gold"
            } else {
                "standard"
            }
            .into(),
        }
    }
}

#[redis_cache(ttl = "10m", prefix = "customers")]
async fn customer(id: u64, #[memo(skip)] db: &Db) -> Customer {
    db.load_customer(id).await
}

struct Order {
    id: u64,
    customer_id: u64,
    amount_cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _redis = DemoRedis::start_global("memo-redis batch worker")?;
    // Start cold even against a shared REDIS_URL.
    println!(
        "cleared {} cached customers",
        customer_invalidate_all().await?
    );
    let db = Db {
        queries: AtomicU64::new(0),
    };

    // The queue: a producer sends batches of orders; customers repeat across and within batches.
    let (tx, mut rx) = mpsc::channel::<Vec<Order>>(2);
    tokio::spawn(async move {
        let mut next = 0u64;
        for b in 0..BATCHES as u64 {
            let batch = (0..BATCH_SIZE)
                .map(|i| {
                    next += 1;
                    Order {
                        id: next,
                        customer_id: (b * 7 + i * i) % CUSTOMERS,
                        amount_cents: 1_000 + next * 37 % 5_000,
                    }
                })
                .collect();
            if tx.send(batch).await.is_err() {
                return;
            }
        }
    });

    let mut n = 0;
    while let Some(orders) = rx.recv().await {
        n += 1;
        let before = (customer_stats(), db.queries.load(Ordering::Relaxed));
        let started = Instant::now();
        // One call for the whole batch; results come back in the orders' order.
        let customers = customer_many(orders.iter().map(|o| o.customer_id), &db).await;
        let took = started.elapsed();
        let gold: u64 = orders
            .iter()
            .zip(&customers)
            .filter(|(_, c)| c.tier == "gold")
            .map(|(o, _)| o.amount_cents)
            .sum();
        let (stats, queries) = (customer_stats(), db.queries.load(Ordering::Relaxed));
        println!(
            "batch {n}: {} orders (first #{}), {:>2} hits, {:>2} db queries, {:>2} repeats shared, {:>4} ms; gold revenue {:.2}",
            orders.len(),
            orders[0].id,
            stats.hits - before.0.hits - (stats.coalesced - before.0.coalesced),
            queries - before.1,
            stats.coalesced - before.0.coalesced,
            took.as_millis(),
            gold as f64 / 100.0,
        );
        assert!(customers
            .iter()
            .zip(&orders)
            .all(|(c, o)| c.id == o.customer_id));
    }
    println!(
        "\n{} orders, {} database queries for {CUSTOMERS} customers",
        BATCHES as u64 * BATCH_SIZE,
        db.queries.load(Ordering::Relaxed)
    );
    memo_redis::shutdown().await;
    Ok(())
}
