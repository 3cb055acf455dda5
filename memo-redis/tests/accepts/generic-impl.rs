use std::fmt::Display;

use memo_redis::redis_cache;
use serde::{Deserialize, Serialize};

/// A generic type: its methods can be cached (the function itself has no type parameters).
struct Labelled<T> {
    label: T,
}

impl<T: Display + Sync> Labelled<T> {
    #[redis_cache(key = "label:{self.label}:{id}")]
    async fn describe(&self, id: u64) -> String {
        format!("{}#{id}", self.label)
    }

    #[redis_cache]
    async fn len(&self, id: u64) -> usize
    where
        T: Send,
    {
        self.label.to_string().len() + id as usize
    }
}

#[derive(Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

impl Point {
    /// `Self` in the return type.
    #[redis_cache]
    async fn origin(scale: i32) -> Option<Self> {
        Some(Point { x: 0, y: scale })
    }
}

#[cfg(any())]
#[redis_cache]
async fn compiled_out(id: u64) -> u64 {
    id
}

#[cfg(test)]
#[redis_cache]
async fn compiled_in(id: u64) -> u64 {
    id
}

async fn use_them() {
    let l = Labelled { label: "a" };
    let _: String = l.describe(1).await;
    let _: usize = l.len(1).await;
    let _ = l.describe_key(&1);
    let n = Labelled { label: 7u8 };
    let _: String = n.describe(1).await;
    let _: Option<Point> = Point::origin(1).await;
    let _ = Point::origin_key(&1);
    let _: u64 = compiled_in(1).await;
    let _ = compiled_in_key(&1);
}

pub fn main() {
    drop(use_them());
}
