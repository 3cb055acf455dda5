use std::sync::Arc;

use memo_redis::redis_cache;

struct Repo {
    calls: u64,
}

impl Repo {
    #[redis_cache]
    async fn by_ref(&self, id: u64) -> u64 {
        id + self.calls
    }

    #[redis_cache]
    async fn by_mut(&mut self, id: u64) -> u64 {
        self.calls += 1;
        id
    }

    #[redis_cache]
    async fn by_arc(self: Arc<Self>, id: u64) -> u64 {
        id + self.calls
    }

    #[redis_cache]
    async fn by_value(self, id: u64) -> u64 {
        id + self.calls
    }

    // Without `self`, it names `Self` so that the macro knows it is in an `impl`.
    #[redis_cache]
    async fn associated(id: u64) -> u64
    where
        Self: Sized,
    {
        id
    }

    #[redis_cache]
    pub async fn returns_self_type(&self, id: u64) -> Option<Vec<u64>> {
        Some(vec![id, self.calls])
    }
}

async fn use_them() {
    let mut repo = Repo { calls: 0 };
    let _: u64 = repo.by_ref(1).await;
    let _: u64 = repo.by_mut(2).await;
    let _: Option<Vec<u64>> = repo.returns_self_type(3).await;
    let _: u64 = Repo::associated(4).await;
    let shared = Arc::new(Repo { calls: 0 });
    let _: u64 = shared.clone().by_arc(5).await;
    let _: u64 = repo.by_value(6).await;
}

pub fn main() {
    drop(use_them());
}
