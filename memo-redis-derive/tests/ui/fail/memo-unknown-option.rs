use memo_redis::redis_cache;

struct Db;

#[redis_cache]
async fn lookup(id: u64, #[memo(skipp)] db: &Db) -> u64 {
    let _ = db;
    id
}

fn main() {}
