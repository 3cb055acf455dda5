mod users {
    use memo_redis::redis_cache;

    #[redis_cache]
    pub async fn public(id: u64) -> u64 {
        id
    }

    #[redis_cache]
    pub(crate) async fn crate_visible(id: u64) -> u64 {
        id
    }

    pub mod inner {
        use memo_redis::redis_cache;

        #[redis_cache]
        pub(super) async fn parent_visible(id: u64) -> u64 {
            id
        }

        #[redis_cache]
        pub(in crate::visibility::users) async fn path_visible(id: u64) -> u64 {
            id
        }
    }

    pub async fn from_inside() -> u64 {
        inner::parent_visible(1).await
            + inner::path_visible(2).await
            + inner::parent_visible_key(&1).map_or(0, |k| k.len() as u64)
            + inner::path_visible_key(&2).map_or(0, |k| k.len() as u64)
    }
}

async fn from_outside() -> u64 {
    // The companions have the function's visibility.
    users::public(1).await
        + users::crate_visible(2).await
        + users::from_inside().await
        + users::public_key(&1).map_or(0, |k| k.len() as u64)
        + users::crate_visible_key(&2).map_or(0, |k| k.len() as u64)
}

pub fn main() {
    drop(from_outside());
}
