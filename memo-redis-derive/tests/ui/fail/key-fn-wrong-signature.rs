use memo_redis::redis_cache;

fn user_key(id: &str) -> String {
    id.to_string()
}

#[redis_cache(key_fn = user_key)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
