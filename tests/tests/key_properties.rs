//! Key rendering is injective over argument tuples, for digest and template keys.
//!
//! Keys are computed without talking to Redis, so these properties run many cases quickly.

use std::collections::HashMap;

use memo_redis::{redis_cache, Cache, Config};
use proptest::prelude::*;

static CACHE: Cache = Cache::lazy(|| Config::builder().namespace("props").build());

#[redis_cache(cache = CACHE, ttl = 60)]
async fn digest(a: String, b: String, n: u32) -> u32 {
    n
}

#[redis_cache(cache = CACHE, ttl = 60, key = "{a}:{b}:{n}")]
async fn template(a: String, b: String, n: u32) -> u32 {
    n
}

#[redis_cache(cache = CACHE, ttl = 60, key = "{a}-{b}")]
async fn dashed(a: String, b: String) -> u32 {
    0
}

/// Strings over a small alphabet rich in separators and escape characters, so collisions would
/// be found if rendering were ambiguous.
fn tricky() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a:%\\-_.{}*é ]{0,6}").expect("valid regex")
}

/// Any text, newlines included (`(?s)`: a plain `.` never produces `\n`), or a dense mix of glob,
/// whitespace and control characters.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex("(?s).{0,40}").expect("valid regex"),
        proptest::string::string_regex("[*?\\[\\] \n\r\t\x00\x7f\u{85}\u{2028}a:]{0,12}")
            .expect("valid regex"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn digest_keys_are_injective(x in (tricky(), tricky(), 0u32..3), y in (tricky(), tricky(), 0u32..3)) {
        let kx = digest_key(&x.0, &x.1, &x.2).unwrap();
        let ky = digest_key(&y.0, &y.1, &y.2).unwrap();
        prop_assert_eq!(kx == ky, x == y, "{:?} {:?} -> {} {}", x, y, kx, ky);
    }

    #[test]
    fn template_keys_are_injective(x in (tricky(), tricky(), 0u32..3), y in (tricky(), tricky(), 0u32..3)) {
        let kx = template_key(&x.0, &x.1, &x.2).unwrap();
        let ky = template_key(&y.0, &y.1, &y.2).unwrap();
        prop_assert_eq!(kx == ky, x == y, "{:?} {:?} -> {} {}", x, y, kx, ky);
        let kx = dashed_key(&x.0, &x.1).unwrap();
        let ky = dashed_key(&y.0, &y.1).unwrap();
        prop_assert_eq!(kx == ky, (&x.0, &x.1) == (&y.0, &y.1));
    }

    #[test]
    fn keys_have_four_fields_and_stay_in_namespace(a in hostile(), b in hostile()) {
        for key in [digest_key(&a, &b, &1).unwrap(), template_key(&a, &b, &1).unwrap()] {
            let fields: Vec<&str> = key.splitn(4, ':').collect();
            prop_assert_eq!(fields.len(), 4);
            prop_assert_eq!(fields[0], "props");
            // No glob characters, whitespace or control characters from arguments reach the key.
            prop_assert!(
                !fields[3].contains(['*', '?', '[', ']']),
                "{:?}", key
            );
            prop_assert!(
                !fields[3].chars().any(|c| c.is_whitespace() || c.is_control()),
                "{:?}", key
            );
        }
    }
}

/// Exhaustive check on all splits of one string around a `:`: the classic collision.
#[test]
fn every_split_of_a_colon_string_renders_differently() {
    let s = "a:b:c:d";
    let mut seen = HashMap::new();
    for i in 0..=s.len() {
        let (a, b) = s.split_at(i);
        let k = template_key(&a.to_string(), &b.to_string(), &0).unwrap();
        assert!(
            seen.insert(k.clone(), i).is_none(),
            "collision at split {i}: {k}"
        );
        let k = digest_key(&a.to_string(), &b.to_string(), &0).unwrap();
        assert!(
            seen.insert(k.clone(), i).is_none(),
            "collision at split {i}: {k}"
        );
    }
}

#[test]
fn long_template_values_fall_back_to_a_bounded_digest() {
    let long = "x".repeat(10_000);
    let k = template_key(&long, &"b".to_string(), &0).unwrap();
    assert!(k.len() < 100, "{} bytes", k.len());
    let k2 = template_key(&format!("{long}y"), &"b".to_string(), &0).unwrap();
    assert_ne!(k, k2);
}
