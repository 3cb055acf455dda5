use memo_redis::redis_cache;

#[redis_cache]
async fn touch(id: u64) {
    let _ = id;
}

fn main() {}
