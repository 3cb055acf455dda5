use memo_redis::redis_cache;

#[redis_cache(ttl = 60, local = true)]
async fn whole_ttl(id: u64) -> u64 {
    id
}

#[redis_cache(ttl = 60, local = "5s")]
async fn capped(id: u64) -> Option<String> {
    Some(id.to_string())
}

#[redis_cache(ttl = 60, local = 5, stale = "10s")]
async fn capped_secs(id: u64) -> u64 {
    id
}

#[redis_cache(ttl = 60, local = false)]
async fn off(id: u64) -> u64 {
    id
}

pub fn main() {
    let _ = (whole_ttl(1), capped(1), capped_secs(1), off(1));
}
