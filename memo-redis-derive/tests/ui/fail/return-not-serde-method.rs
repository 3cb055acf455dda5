// A method returning `Result` of a type without serde, with a key template and tags.
use memo_redis::redis_cache;

struct Report {
    total: u64,
}

struct Service;

impl Service {
    #[redis_cache(key = "report:{id}", tags = ["report"])]
    async fn report(&self, id: u64) -> Result<Report, String> {
        Ok(Report { total: id })
    }
}

fn main() {}
