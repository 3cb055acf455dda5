// After an attribute error the function is still emitted (without the `#[memo]` markers), so
// its callers compile and only the attribute error is reported.
use memo_redis::redis_cache;

struct Db;

#[redis_cache(ttl = 0)]
async fn lookup(id: u64, #[memo(skip)] db: &Db) -> u64 {
    let _ = db;
    id
}

fn main() {
    let db = Db;
    let fut = lookup(7, &db);
    drop(fut);
}
