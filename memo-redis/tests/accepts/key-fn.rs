use memo_redis::redis_cache;

struct User {
    id: u64,
}

fn user_key(user: &User, tab: &str) -> String {
    format!("{}/{tab}", user.id)
}

mod keys {
    pub fn by_id(id: &u64) -> String {
        id.to_string()
    }
}

#[redis_cache(key_fn = user_key)]
async fn dashboard(user: User, tab: &str) -> String {
    format!("{}:{tab}", user.id)
}

#[redis_cache(key_fn = keys::by_id)]
async fn by_id(id: u64) -> u64 {
    id
}

async fn use_them() {
    let _: String = dashboard(User { id: 1 }, "home").await;
    let _: u64 = by_id(1).await;
    let _ = dashboard_key(&User { id: 1 }, "home");
    let _ = by_id_key(&1);
}

pub fn main() {
    drop(use_them());
}
