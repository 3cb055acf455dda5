use memo_redis::redis_cache;

#[redis_cache(ttl = 60, sliding = true, stale = "30s")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
