use memo_redis::redis_cache;

#[redis_cache(ttl = 60, stale = "30s")]
async fn lookup(name: &str) -> u64 {
    name.len() as u64
}

fn main() {}
