use memo_redis::redis_cache;
use serde::Serialize;

#[derive(Serialize)]
struct Query {
    term: String,
    limit: u32,
}

#[redis_cache]
async fn by_str(name: &str) -> usize {
    name.len()
}

#[redis_cache]
async fn by_ref(query: &Query, page: &u32) -> Vec<String> {
    vec![format!("{}:{}:{page}", query.term, query.limit)]
}

#[redis_cache]
async fn by_slice(ids: &[u64]) -> u64 {
    ids.iter().sum()
}

async fn use_them() {
    let q = Query {
        term: "rust".into(),
        limit: 10,
    };
    let _: usize = by_str("ada").await;
    let _: Vec<String> = by_ref(&q, &1).await;
    let _: u64 = by_slice(&[1, 2, 3]).await;
    // Companions take the reference as declared.
    let _ = by_str_key("ada");
    let _ = by_ref_key(&q, &1);
    let _ = by_slice_key(&[1, 2, 3]);
}

pub fn main() {
    drop(use_them());
}
