use memo_redis::redis_cache;

#[redis_cache(cache_none = true)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
