use memo_redis::redis_cache;

struct Report {
    total: u64,
}

#[redis_cache]
async fn report(id: u64) -> Option<Vec<Report>> {
    Some(vec![Report { total: id }])
}

fn main() {}
