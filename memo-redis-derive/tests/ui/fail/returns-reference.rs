use memo_redis::redis_cache;

#[redis_cache]
async fn name(id: &'static str) -> &'static str {
    id
}

fn main() {}
