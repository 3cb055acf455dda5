// `-` cannot separate placeholders: values keep `-` as is.
use memo_redis::redis_cache;

#[redis_cache(key = "day:{year}-{month}")]
async fn day(year: u32, month: String) -> String {
    format!("{year}{month}")
}

fn main() {}
