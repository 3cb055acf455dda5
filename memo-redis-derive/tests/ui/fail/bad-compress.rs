use memo_redis::redis_cache;

#[redis_cache(compress = "4KB")]
async fn report(id: u64) -> String {
    id.to_string()
}

#[redis_cache(compress = 4096)]
async fn export(id: u64) -> String {
    id.to_string()
}

fn main() {}
