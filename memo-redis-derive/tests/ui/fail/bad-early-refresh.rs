use memo_redis::redis_cache;

#[redis_cache(ttl = 60, early_refresh = -1.0)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
