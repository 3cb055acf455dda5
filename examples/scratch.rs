use memo_redis::redis_cache;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};

static RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct User {
    id: u64,
    name: String,
}

#[redis_cache(ttl = 60, prefix = "users")]
async fn get_user(id: u64, #[memo(skip)] _db: &str) -> Option<User> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Some(User {
        id,
        name: format!("u{id}"),
    })
}

#[redis_cache(key = "t:{a}:{b}", ttl = "5m")]
async fn templ(a: &str, b: u32) -> Result<String, std::io::Error> {
    Ok(format!("{a}{b}"))
}

struct Svc {
    org: String,
}
impl Svc {
    #[redis_cache(key = "svc:{self.org}:{x}")]
    async fn m(&self, x: u32) -> u64 {
        x as u64 * 2
    }
}

#[tokio::main]
async fn main() {
    println!("{:?}", get_user(1, "db").await);
    println!("{:?}", get_user(1, "db").await);
    println!("runs={}", RUNS.load(Ordering::SeqCst));
    println!("{:?}", get_user_key(&1));
    println!("{:?}", get_user_peek(&1).await);
    println!("{:?}", get_user_evict(&1).await);
    println!("{:?}", get_user_peek(&1).await);
    println!("{:?}", templ("x:y", 3).await.ok());
    println!("{:?}", templ_key("x:y", &3));
    let s = Svc { org: "acme".into() };
    println!("{} {:?}", s.m(4).await, s.m_key(&4));
    println!("{:?}", get_user_refresh(1, "db").await);
    println!("runs={}", RUNS.load(Ordering::SeqCst));
}
