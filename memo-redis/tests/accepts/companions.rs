use memo_redis::redis_cache;

struct Service {
    region: String,
}

#[redis_cache]
async fn lookup(id: u64, name: String) -> Option<String> {
    Some(format!("{id}:{name}"))
}

impl Service {
    #[redis_cache]
    async fn method(&self, id: u64) -> u64 {
        id + self.region.len() as u64
    }

    // An associated function without `self` names `Self` (here in a bound), so that the macro
    // knows it is in an `impl` (see docs/design-decisions.md, "What the macro emits").
    #[redis_cache]
    async fn associated(id: u64) -> u64
    where
        Self: Sized,
    {
        id
    }

    async fn use_inside(&self) {
        // Method companions are associated functions of the same type.
        let _: Result<String, memo_redis::Error> = Self::method_key(self, &1);
        let _: Result<String, memo_redis::Error> = self.method_key(&1);
        let _: Result<bool, memo_redis::Error> = self.method_evict(&1).await;
        let _: Result<Option<u64>, memo_redis::Error> = self.method_peek(&1).await;
        let _: u64 = self.method_refresh(1).await;
        let _: Result<String, memo_redis::Error> = Self::associated_key(&1);
        let _: u64 = Self::associated_refresh(1).await;
    }
}

async fn use_them() {
    let id = 1u64;
    let name = String::from("ada");
    // Free-function companions sit next to the function.
    let _: Result<String, memo_redis::Error> = lookup_key(&id, &name);
    let _: Result<bool, memo_redis::Error> = lookup_evict(&id, &name).await;
    let _: Result<Option<Option<String>>, memo_redis::Error> = lookup_peek(&id, &name).await;
    let _: Option<String> = lookup_refresh(id, name.clone()).await;
    let _: Option<String> = lookup(id, name).await;

    let s = Service {
        region: "eu".into(),
    };
    let _: Result<String, memo_redis::Error> = s.method_key(&1);
    let _: Result<String, memo_redis::Error> = Service::method_key(&s, &1);
    let _: Result<bool, memo_redis::Error> = s.method_evict(&1).await;
    let _: Result<Option<u64>, memo_redis::Error> = s.method_peek(&1).await;
    let _: u64 = s.method_refresh(1).await;
    let _: Result<bool, memo_redis::Error> = Service::associated_evict(&1).await;
    s.use_inside().await;
}

pub fn main() {
    drop(use_them());
}
