use memo_redis::redis_cache;

static MY_STATIC_CACHE: memo_redis::Cache = memo_redis::Cache::from_env();

mod caches {
    pub static REPORTS: memo_redis::Cache = memo_redis::Cache::from_env();
}

#[redis_cache(ttl = "never")]
async fn forever(id: u64) -> u64 {
    id
}

#[redis_cache(ttl = "1500ms")]
async fn millis(id: u64) -> u64 {
    id
}

#[redis_cache(codec = bincode)]
async fn bincoded(id: u64) -> Vec<u64> {
    vec![id]
}

#[redis_cache(cache = MY_STATIC_CACHE)]
async fn own_cache(id: u64) -> u64 {
    id
}

#[redis_cache(cache = caches::REPORTS)]
async fn path_cache(id: u64) -> u64 {
    id
}

#[redis_cache(name = "users.lookup", version = 3)]
async fn renamed(id: u64) -> u64 {
    id
}

#[redis_cache(
    ttl = 60,
    prefix = "all-options",
    version = 1,
    codec = bincode,
    cache = MY_STATIC_CACHE,
    name = "everything",
    cache_none = false,
)]
async fn everything(id: u64) -> Option<u64> {
    Some(id)
}

async fn use_them() {
    let _: u64 = forever(1).await;
    let _: u64 = millis(1).await;
    let _: Vec<u64> = bincoded(1).await;
    let _: u64 = own_cache(1).await;
    let _: u64 = path_cache(1).await;
    let _: u64 = renamed(1).await;
    let _: Option<u64> = everything(1).await;
}

pub fn main() {
    drop(use_them());
}
