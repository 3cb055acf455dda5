use memo_redis::redis_cache;

#[redis_cache(ttl = "5m", stale = "30s", jitter = 0.1)]
async fn stale_while_revalidate(id: u64, name: String) -> Vec<String> {
    vec![name; id as usize]
}

#[redis_cache(ttl = 60, early_refresh = true)]
async fn xfetch(id: u64) -> u64 {
    id
}

#[redis_cache(ttl = 60, early_refresh = 2.5, lock = "5s")]
async fn xfetch_beta(id: u64) -> Result<u64, std::io::Error> {
    Ok(id)
}

#[redis_cache(ttl = "10m", sliding = true, lock = true)]
async fn sliding(id: u64) -> u64 {
    id
}

#[redis_cache(ttl = 60, cache_none = true, none_ttl = "5s", single_flight = false)]
async fn none_ttl(id: u64) -> Option<u64> {
    (id > 0).then_some(id)
}

#[redis_cache(ttl = 60, stale = 30)]
async fn stale_secs(mut id: u64) -> u64 {
    id += 1;
    id
}

pub fn main() {
    drop(stale_while_revalidate(1, String::new()));
    drop(xfetch(1));
    drop(xfetch_beta(1));
    drop(sliding(1));
    drop(none_ttl(1));
    drop(stale_secs(1));
}
