use memo_redis::redis_cache;

#[redis_cache(ttl = "5 minutes")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
