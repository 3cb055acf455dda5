use memo_redis::redis_cache;

#[redis_cache]
async fn lookup(id: impl Into<u64>) -> u64 {
    id.into()
}

fn main() {}
