// `%` cannot separate placeholders: escaped values contain `%`.
use memo_redis::redis_cache;

#[redis_cache(key = "{a}%{b}")]
async fn pct(a: String, b: String) -> String {
    a + &b
}

fn main() {}
