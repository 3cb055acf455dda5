use memo_redis::redis_cache;

#[redis_cache]
async fn count_into(id: u64, #[memo(skip)] log: &mut Vec<u64>) -> u64 {
    log.push(id);
    id
}

fn main() {}
