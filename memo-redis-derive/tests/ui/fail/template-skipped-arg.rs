use memo_redis::redis_cache;

struct Db;

#[redis_cache(key = "user:{id}:{db}")]
async fn lookup(id: u64, #[memo(skip)] db: &Db) -> u64 {
    let _ = db;
    id
}

fn main() {}
