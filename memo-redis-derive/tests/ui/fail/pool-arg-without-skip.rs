// A connection pool is not part of the key: it needs `#[memo(skip)]`.
use memo_redis::redis_cache;

struct PgPool {
    size: u32,
}

#[redis_cache(ttl = 60)]
async fn user_name(pool: &PgPool, id: u64) -> String {
    format!("{}:{id}", pool.size)
}

fn main() {}
