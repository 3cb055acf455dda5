// With several key arguments, still one error, at the one that cannot be hashed.
use memo_redis::redis_cache;

struct Filter {
    min: u32,
}

#[redis_cache]
async fn count(region: String, filter: Filter) -> u64 {
    region.len() as u64 + u64::from(filter.min)
}

fn main() {}
