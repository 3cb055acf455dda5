use memo_redis::redis_cache;

#[redis_cache(ttl = 60, none_ttl = "5s")]
async fn lookup(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
