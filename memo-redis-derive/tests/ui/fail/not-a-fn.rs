use memo_redis::redis_cache;

#[redis_cache]
pub struct User {
    pub id: u64,
}

fn main() {}
