use memo_redis::redis_cache;

struct Service {
    org: String,
}

#[redis_cache(ttl = 60, tags = ["user:{id}", "users"])]
async fn profile(id: u64, #[memo(skip)] region: &str) -> String {
    format!("{id}@{region}")
}

impl Service {
    #[redis_cache(ttl = 60, key = "{id}", tags = ["org:{self.org}", "user:{id}"])]
    async fn member(&self, id: u64) -> u64 {
        id
    }
}

fn main() {
    let _ = profile(1, "eu");
    let s = Service { org: "acme".into() };
    let _ = s.member(1);
    let _ = profile_invalidate_all();
    let _ = s.member_invalidate_all();
}
