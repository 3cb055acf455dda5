use memo_redis::redis_cache;

#[derive(serde::Serialize, serde::Deserialize)]
struct Report {
    total: u64,
}

// The near tier keeps values decoded and serves clones: the value type must be `Clone`.
#[redis_cache(ttl = 60, local = "5s")]
async fn report(id: u64) -> Option<Report> {
    Some(Report { total: id })
}

fn main() {}
