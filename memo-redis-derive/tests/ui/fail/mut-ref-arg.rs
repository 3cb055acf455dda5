use memo_redis::redis_cache;

#[redis_cache]
async fn append_and_count(v: &mut Vec<u32>) -> usize {
    v.push(1);
    v.len()
}

fn main() {}
