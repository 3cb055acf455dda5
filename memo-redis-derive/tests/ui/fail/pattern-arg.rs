use memo_redis::redis_cache;

#[redis_cache]
async fn area((w, h): (u32, u32)) -> u32 {
    w * h
}

fn main() {}
