use memo_redis::redis_cache;

#[derive(Debug)]
struct ParseError;

impl From<std::num::ParseIntError> for ParseError {
    fn from(_: std::num::ParseIntError) -> Self {
        ParseError
    }
}

/// `?` converts through `From` as in the original function.
#[redis_cache]
async fn parse(input: String) -> Result<u64, ParseError> {
    let n: u64 = input.trim().parse()?;
    Ok(n * 2)
}

/// `?` on `Option`.
#[redis_cache]
async fn first_char(input: String) -> Option<char> {
    let c = input.chars().next()?;
    Some(c.to_ascii_uppercase())
}

/// An inner attribute moves to the top of the generated body.
#[redis_cache]
async fn with_inner_attribute(id: u64) -> u64 {
    #![allow(unused)]
    let unused = 5;
    id
}

/// An early `return` leaves only the body, not the generated wrapper.
#[redis_cache]
async fn early_return(id: u64) -> u64 {
    if id == 0 {
        return 1;
    }
    id
}

/// Mutable bindings work, and the body's own items cannot collide with the generated ones.
#[redis_cache]
async fn shadowing(mut id: u64) -> u64 {
    const __MEMO_REDIS_SPEC: u64 = 1;
    id += 1;
    id + __MEMO_REDIS_SPEC
}

/// Generated code names prelude types by absolute path.
mod shadowed {
    use memo_redis::redis_cache;

    #[allow(dead_code)]
    struct Option;
    #[allow(dead_code)]
    struct Result;
    #[allow(dead_code)]
    struct String;

    #[redis_cache]
    pub async fn still_works(id: u64) -> u64 {
        id
    }
}

async fn use_them() {
    let _: Result<u64, ParseError> = parse("21".into()).await;
    let _: Option<char> = first_char("x".into()).await;
    let _: u64 = with_inner_attribute(1).await;
    let _: u64 = early_return(0).await;
    let _: u64 = shadowing(1).await;
    let _: u64 = shadowed::still_works(1).await;
}

pub fn main() {
    drop(use_them());
}
