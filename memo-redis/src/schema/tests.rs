use std::collections::BTreeMap;
use std::num::NonZeroU32;

use serde::Deserialize;

use super::*;

#[allow(dead_code)]
mod v1 {
    #[derive(serde::Deserialize)]
    pub struct Score {
        pub user: u64,
        pub delta: i32,
        pub label: String,
    }
}
#[allow(dead_code)]
mod v2 {
    #[derive(serde::Deserialize)]
    pub struct Score {
        pub user: u64,
        pub delta: u32,
        pub label: String,
    }
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Ab {
    a: u32,
    b: u32,
}
#[derive(Deserialize)]
#[allow(dead_code)]
struct Ba {
    b: u32,
    a: u32,
}

#[derive(Deserialize)]
#[allow(dead_code)]
enum Kind {
    A,
    B(u8),
    C { x: Option<String> },
    D(u8, Vec<Kind>),
}

/// The recursive variant comes first: completing a value must pick another.
#[derive(Deserialize)]
#[allow(dead_code)]
enum Expr {
    Add(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Lit(i64),
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Node {
    value: u32,
    next: Option<Box<Node>>,
    children: Vec<Node>,
    by_name: BTreeMap<String, Node>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Checked {
    n: NonZeroU32,
    #[serde(deserialize_with = "parse_date")]
    when: String,
}

fn parse_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() == 20 && s.ends_with('Z') {
        Ok(s)
    } else {
        Err(serde::de::Error::custom("not a date"))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum Untagged {
    A(u8),
    B(String),
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Flat {
    #[serde(flatten)]
    inner: Ab,
}

#[derive(Deserialize)]
#[serde(tag = "t")]
#[allow(dead_code)]
enum Internally {
    A { x: u8 },
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Renamed {
    #[serde(rename = "b")]
    a: u32,
    #[serde(skip)]
    cache: u64,
}

#[test]
fn primitives_and_containers() {
    assert_eq!(describe::<u32>().unwrap(), "u32");
    assert_eq!(
        describe::<Option<Vec<(u8, String)>>>().unwrap(),
        "?[(u8,str)]"
    );
    assert_eq!(
        describe::<BTreeMap<String, Option<bool>>>().unwrap(),
        "{str=>?bool}"
    );
    assert_eq!(
        describe::<Box<str>>().unwrap(),
        describe::<String>().unwrap()
    );
    assert_eq!(describe::<[u16; 2]>().unwrap(), "(u16,u16)");
}

#[test]
fn a_field_type_change_or_reorder_changes_the_description() {
    assert_ne!(describe::<v1::Score>(), describe::<v2::Score>());
    assert_eq!(
        describe::<v1::Score>().unwrap(),
        "S5:Score.s{4:user:u64,5:delta:i32,5:label:str}"
    );
    assert_ne!(describe::<Ab>(), describe::<Ba>());
    assert_eq!(describe::<Renamed>().unwrap(), "S7:Renamed.s{1:b:u32}");
}

#[test]
fn every_enum_variant_is_described() {
    assert_eq!(
        describe::<Kind>().unwrap(),
        "E4:Kind<1:Au|1:Bn(u8)|1:Cs{1:x:?str}|1:Dt(u8,[#0])>"
    );
    assert_eq!(
        describe::<Expr>().unwrap(),
        "E4:Expr<3:Addt(#0,#0)|3:Negn(#0)|3:Litn(i64)>"
    );
}

#[test]
fn recursive_types_refer_back() {
    assert_eq!(
        describe::<Node>().unwrap(),
        "S4:Node.s{5:value:u32,4:next:?#0,8:children:[#0],7:by_name:{str=>#0}}"
    );
}

#[test]
fn rejected_samples_are_replaced() {
    assert_eq!(
        describe::<Checked>().unwrap(),
        "S7:Checked.s{1:n:u32,4:when:str}"
    );
}

#[test]
fn self_describing_types_are_untraceable() {
    assert!(describe::<Untagged>().is_err());
    assert!(describe::<Flat>().is_err());
    assert!(describe::<Internally>().is_err());
    let e = describe::<Untagged>().unwrap_err();
    assert!(e.type_name.ends_with("Untagged"), "{e}");
}

#[test]
fn shapes_are_cached_and_tagged() {
    let a = shape_of::<v1::Score>();
    assert!(std::ptr::eq(a, shape_of::<v1::Score>()));
    assert_ne!(a.tag, shape_of::<v2::Score>().tag);
    assert!(a.digest.is_some());
    let u = shape_of::<Untagged>();
    assert!(u.digest.is_none() && u.error.is_some() && u.tag != 0);
}

/// The hash is SHA-256 over a fixed prefix and the description: the same on every build and
/// platform. Pinned, so a change of the scheme (which orphans every entry) is deliberate.
#[test]
fn the_shape_hash_is_pinned() {
    let d = shape_of::<v1::Score>().digest.expect("traced");
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "db2b6de64409074d4f38c9470d1deeca1b848f38466891a9d42af28cdf1d8de7"
    );
}
