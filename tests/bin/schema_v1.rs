//! Build 1 of tests/bin/schema_app.rs: the types before the deploy.

mod types {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Score {
        pub user: u64,
        pub delta: i32,
        pub label: String,
    }
    pub fn score(id: u64) -> Score {
        Score {
            user: id,
            delta: -3,
            label: "v1".into(),
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Pair {
        pub a: u32,
        pub b: u32,
    }
    pub fn pair(_: u64) -> Pair {
        Pair { a: 1, b: 2 }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Added {
        pub a: u32,
    }
    pub fn added(_: u64) -> Added {
        Added { a: 1 }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Removed {
        pub a: u32,
        pub b: u32,
    }
    pub fn removed(_: u64) -> Removed {
        Removed { a: 1, b: 2 }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub enum Status {
        Active,
        Off,
    }
    pub fn status(_: u64) -> Status {
        Status::Off
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Inner {
        pub x: u16,
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

    /// Cents.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Money {
        #[serde(rename = "amount")]
        pub value: u64,
    }
    pub fn money(_: u64) -> Money {
        Money { value: 100 }
    }
}

include!("schema_app.rs");
