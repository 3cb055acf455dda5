use memo_redis::redis_cache;

struct Filter {
    min: u32,
}

#[redis_cache]
async fn count(filter: Filter) -> u64 {
    u64::from(filter.min)
}

fn main() {}
