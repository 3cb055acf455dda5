use memo_redis::redis_cache;

struct Service;

impl Service {
    #[redis_cache(ttl = 60, early_refresh = true)]
    async fn lookup(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
