//! Build 2 of tests/bin/schema_app.rs: each type changed inside, names unchanged.

mod types {
    use serde::{Deserialize, Serialize};

    /// `delta` changed from `i32` to `u32`.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Score {
        pub user: u64,
        pub delta: u32,
        pub label: String,
    }
    pub fn score(id: u64) -> Score {
        Score {
            user: id,
            delta: 3000,
            label: "v2".into(),
        }
    }

    /// Fields reordered.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Pair {
        pub b: u32,
        pub a: u32,
    }
    pub fn pair(_: u64) -> Pair {
        Pair { a: 1, b: 2 }
    }

    /// A field added.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Added {
        pub a: u32,
        pub b: u32,
    }
    pub fn added(_: u64) -> Added {
        Added { a: 1, b: 2 }
    }

    /// A field removed.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Removed {
        pub a: u32,
    }
    pub fn removed(_: u64) -> Removed {
        Removed { a: 1 }
    }

    /// A variant added before `Off`.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub enum Status {
        Active,
        Paused,
        Off,
    }
    pub fn status(_: u64) -> Status {
        Status::Off
    }

    /// The nested type changed (`u16` → `i16`), the outer one did not.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Inner {
        pub x: i16,
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Outer {
        pub id: u64,
        pub inner: Vec<Inner>,
    }
    pub fn outer(id: u64) -> Outer {
        Outer {
            id,
            inner: vec![Inner { x: 5 }],
        }
    }

    /// Renamed, and now whole units rather than cents.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Money {
        #[serde(rename = "total")]
        pub value: u64,
    }
    pub fn money(_: u64) -> Money {
        Money { value: 1 }
    }
}

include!("schema_app.rs");
