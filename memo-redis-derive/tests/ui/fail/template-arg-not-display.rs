use memo_redis::redis_cache;

struct Region {
    code: u32,
}

#[redis_cache(key = "region:{region}")]
async fn lookup(region: Region) -> u32 {
    region.code
}

fn main() {}
