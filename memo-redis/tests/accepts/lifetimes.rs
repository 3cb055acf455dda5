use memo_redis::redis_cache;

struct Catalog<'a> {
    name: &'a str,
}

#[redis_cache]
async fn explicit<'a>(x: &'a str) -> String {
    x.to_uppercase()
}

#[redis_cache]
async fn two<'a, 'b: 'a>(x: &'a str, y: &'b str) -> usize {
    x.len() + y.len()
}

#[redis_cache]
async fn where_clause<'a, 'b>(x: &'a str, y: &'b [u8]) -> usize
where
    'b: 'a,
{
    x.len() + y.len()
}

impl<'a> Catalog<'a> {
    #[redis_cache(key = "catalog:{self.name}:{item}")]
    async fn item<'s>(&'s self, item: &'s str) -> String {
        format!("{}/{item}", self.name)
    }
}

async fn use_them() {
    let _: String = explicit("a").await;
    let _: usize = two("a", "b").await;
    let _: usize = where_clause("a", b"b").await;
    let c = Catalog { name: "books" };
    let _: String = c.item("dune").await;
    let _ = explicit_key("a");
    let _ = two_key("a", "b");
}

pub fn main() {
    drop(use_them());
}
