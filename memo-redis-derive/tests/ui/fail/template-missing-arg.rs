use memo_redis::redis_cache;

#[redis_cache(key = "user:{id}")]
async fn lookup(id: u64, locale: String) -> String {
    format!("{id}:{locale}")
}

fn main() {}
