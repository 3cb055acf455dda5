use memo_redis::redis_cache;

/// No serde: only usable as a skipped argument.
struct Db {
    rows: u64,
}

#[redis_cache]
async fn count(table: String, #[memo(skip)] db: &Db) -> u64 {
    db.rows + table.len() as u64
}

#[redis_cache]
async fn owned_skip(id: u64, #[memo(skip)] db: Db) -> u64 {
    db.rows + id
}

#[redis_cache]
async fn with_callback(id: u64, #[memo(skip)] on_miss: impl Fn(u64)) -> u64 {
    on_miss(id);
    id
}

#[redis_cache(key = "count:{table}")]
async fn templated(table: String, #[memo(skip)] db: &Db) -> u64 {
    db.rows + table.len() as u64
}

async fn use_them() {
    let db = Db { rows: 1 };
    let _: u64 = count("users".into(), &db).await;
    let _: u64 = owned_skip(1, Db { rows: 2 }).await;
    let _: u64 = with_callback(3, |_| {}).await;
    let _: u64 = templated("users".into(), &db).await;
    // Skipped arguments are not part of the key: the companions leave them out...
    let _ = count_key(&"users".to_string());
    let _ = count_evict(&"users".to_string()).await;
    let _ = with_callback_peek(&3).await;
    // ...except `_refresh`, which runs the body.
    let _: u64 = count_refresh("users".into(), &db).await;
}

pub fn main() {
    drop(use_them());
}
