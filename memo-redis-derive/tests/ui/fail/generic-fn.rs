use memo_redis::redis_cache;

#[redis_cache]
async fn lookup<T: serde::Serialize>(id: T) -> u64 {
    let _ = id;
    0
}

fn main() {}
