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

pub fn main() {
    drop(profile(1, "eu"));
    let s = Service { org: "acme".into() };
    drop(s.member(1));
    drop(profile_invalidate_all());
    drop(s.member_invalidate_all());
}
