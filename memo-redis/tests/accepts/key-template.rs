use memo_redis::redis_cache;

struct Org {
    id: u64,
}

struct Tenant {
    org: Org,
    name: String,
}

struct User {
    id: u64,
    region: String,
}

impl Tenant {
    #[redis_cache(key = "tenant:{self.name}:{self.org.id}:user:{user.id}")]
    async fn profile(&self, user: &User) -> String {
        format!("{}:{}", self.name, user.id)
    }

    #[redis_cache(key = "org:{self.org.id}:{page}")]
    async fn page(&self, page: u32) -> Vec<u64> {
        vec![self.org.id, u64::from(page)]
    }
}

#[redis_cache(key = "user:{user.id}:{user.region}")]
async fn by_user(user: User) -> u64 {
    user.id
}

#[redis_cache(key = "pair:{pair.0}:{pair.1}")]
async fn by_tuple(pair: (u32, String)) -> String {
    pair.1.repeat(pair.0 as usize)
}

#[redis_cache(key = "greeting/{lang}/{name}")]
async fn greeting(name: &str, lang: String) -> String {
    format!("{lang}:{name}")
}

async fn use_them() {
    let t = Tenant {
        org: Org { id: 1 },
        name: "acme".into(),
    };
    let u = User {
        id: 7,
        region: "eu".into(),
    };
    let _: String = t.profile(&u).await;
    let _: Vec<u64> = t.page(2).await;
    let _ = t.profile_key(&u);
    let _ = t.page_key(&2);
    let _ = by_user_key(&u);
    let _: u64 = by_user(u).await;
    let _: String = by_tuple((2, "x".into())).await;
    let _: String = greeting("ada", "en".into()).await;
}

pub fn main() {
    drop(use_them());
}
