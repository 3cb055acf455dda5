use memo_redis::redis_cache;

struct Report {
    total: u64,
}

#[redis_cache]
async fn report(id: u64) -> Report {
    Report { total: id }
}

fn main() {}
