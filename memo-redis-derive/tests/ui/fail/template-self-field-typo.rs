use memo_redis::redis_cache;

struct Service {
    org: String,
}

impl Service {
    #[redis_cache(key = "{self.orgg}:{id}")]
    async fn member(&self, id: u64) -> u64 {
        id + self.org.len() as u64
    }
}

fn main() {}
