use memo_redis::redis_cache;

#[redis_cache]
async fn numbers(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

fn main() {}
