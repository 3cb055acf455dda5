use memo_redis::redis_cache;

#[redis_cache(key = "user:{user_id}")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
