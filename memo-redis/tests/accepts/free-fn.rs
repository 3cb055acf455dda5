use memo_redis::redis_cache;

#[redis_cache]
async fn square(x: u64) -> u64 {
    x * x
}

#[redis_cache(ttl = 300)]
async fn no_args() -> String {
    "constant".to_string()
}

#[redis_cache(ttl = "1h30m", prefix = "greetings")]
async fn greet(name: String, times: u8) -> String {
    name.repeat(usize::from(times))
}

async fn use_them() {
    let _: u64 = square(3).await;
    let _: String = no_args().await;
    let _: String = greet("hi".to_string(), 2).await;
}

pub fn main() {
    drop(use_them());
}
