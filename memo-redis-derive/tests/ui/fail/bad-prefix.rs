use memo_redis::redis_cache;

#[redis_cache(prefix = "users:v2")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
