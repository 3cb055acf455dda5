use memo_redis::redis_cache;

fn user_key(id: &u64) -> String {
    id.to_string()
}

#[redis_cache(key = "user:{id}", key_fn = user_key)]
async fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
