use memo_redis::redis_cache;

#[redis_cache(key = "user:{org}{id}")]
async fn lookup(org: String, id: u64) -> String {
    format!("{org}:{id}")
}

fn main() {}
