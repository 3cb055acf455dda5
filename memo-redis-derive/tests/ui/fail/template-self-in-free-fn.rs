use memo_redis::redis_cache;

#[redis_cache(key = "user:{self.org}:{id}")]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
