//! Key rendering is injective over argument tuples, for digest and template keys.
//!
//! Keys are computed without talking to Redis, so these properties run many cases quickly.
//! Templates themselves are generated too: the macro's own template parser and separator rule
//! (included from the derive crate's source) decide which are accepted, and the runtime's own
//! escaping renders them.

use std::collections::{BTreeMap, HashMap};

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

#[redis_cache(cache = CACHE, ttl = 60, key = "{a}/{b}")]
async fn slashed(a: String, b: String) -> u32 {
    0
}

/// The `#[redis_cache]` template parser and separator rule, as the macro runs them.
#[path = "../../memo-redis-derive/src/template.rs"]
mod template;
use template::Segment;

/// Strings over a small alphabet rich in separators, escape characters and hex digits, so
/// collisions would be found if rendering were ambiguous.
fn tricky() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a:%\\-_.~/{}*é 2-5A-F]{0,6}").expect("valid regex")
}

/// Values built from pieces that escaping produces or that look like escapes (`3A` is how `:`
/// renders, `25` follows the `%` of an escaped `%`), so a value can end where a separator starts.
fn value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("3A"),
        Just("25"),
        Just("2D"),
        Just("%"),
        Just(":"),
        Just("-"),
        Just("~"),
        Just("a"),
        Just("é"),
    ];
    proptest::collection::vec(piece, 0..4).prop_map(|p| p.concat())
}

/// Key templates over placeholders `{a}`, `{b}`, `{c}` and short literal text rich in separator
/// candidates; `None` when the macro would refuse the template.
fn key_template() -> impl Strategy<Value = (String, Option<Vec<Segment>>)> {
    let piece = prop_oneof![
        Just("{a}".to_string()),
        Just("{b}".to_string()),
        Just("{c}".to_string()),
        proptest::string::string_regex("[:/%.\\-~a3A]{1,2}").expect("valid regex"),
    ];
    proptest::collection::vec(piece, 1..6).prop_map(|pieces| {
        let t = pieces.concat();
        let accepted = template::parse(&t)
            .and_then(|s| template::check_key_separators(&s).map(|()| s))
            .ok();
        (t, accepted)
    })
}

fn render(segments: &[Segment], values: &BTreeMap<String, String>) -> String {
    memo_redis::key::render(|w| {
        for seg in segments {
            match seg {
                Segment::Lit(s) => w.lit(s),
                Segment::Arg { root, .. } => w.arg(&values[root]),
            }
        }
    })
}

/// The string a rendered value came from, if `piece` is what the escaping makes of some string.
fn unrender(piece: &str) -> Option<String> {
    let bytes = piece.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = piece.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let value = String::from_utf8(out).ok()?;
    (memo_redis::key::render(|w| w.arg(&value)) == piece).then_some(value)
}

/// Every assignment of values to placeholders that renders as `key` (stops after two).
fn readings(
    segments: &[Segment],
    key: &str,
    values: &mut BTreeMap<String, String>,
    found: &mut Vec<BTreeMap<String, String>>,
) {
    if found.len() > 1 {
        return;
    }
    match segments.split_first() {
        None if key.is_empty() => found.push(values.clone()),
        None => {}
        Some((Segment::Lit(s), rest)) => {
            if let Some(tail) = key.strip_prefix(s.as_str()) {
                readings(rest, tail, values, found);
            }
        }
        Some((Segment::Arg { root, .. }, rest)) => {
            for end in (0..=key.len()).filter(|&e| key.is_char_boundary(e)) {
                let Some(v) = unrender(&key[..end]) else {
                    continue;
                };
                match values.get(root) {
                    Some(bound) if *bound != v => continue,
                    Some(_) => readings(rest, &key[end..], values, found),
                    None => {
                        values.insert(root.clone(), v);
                        readings(rest, &key[end..], values, found);
                        values.remove(root);
                    }
                }
            }
        }
    }
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
        let kx = slashed_key(&x.0, &x.1).unwrap();
        let ky = slashed_key(&y.0, &y.1).unwrap();
        prop_assert_eq!(kx == ky, (&x.0, &x.1) == (&y.0, &y.1));
    }

    /// Regression (issue 12, point 3): `key = "{a}%{b}"` was accepted and rendered
    /// `("x", "3A%z")` and `("x:", "25z")` alike. Every template the macro accepts reads back
    /// as exactly one assignment of values, so distinct tuples never share a key.
    #[test]
    fn accepted_templates_render_distinct_tuples_as_distinct_keys(
        (t, accepted) in key_template(),
        x in (value(), value(), value()),
        y in (value(), value(), value()),
    ) {
        let Some(segments) = accepted else { return Ok(()) };
        let tuple = |v: &(String, String, String)| -> BTreeMap<String, String> {
            [("a", &v.0), ("b", &v.1), ("c", &v.2)]
                .into_iter()
                .filter(|(n, _)| t.contains(&format!("{{{n}}}")))
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect()
        };
        let (vx, vy) = (tuple(&x), tuple(&y));
        let kx = render(&segments, &vx);
        prop_assert!(!kx.starts_with('#'), "{}", kx);
        let mut found = Vec::new();
        readings(&segments, &kx, &mut BTreeMap::new(), &mut found);
        prop_assert_eq!(&found, &vec![vx.clone()], "template {:?} renders {:?} ambiguously", t, kx);
        let ky = render(&segments, &vy);
        prop_assert_eq!(kx == ky, vx == vy, "template {:?}: {:?} {:?}", t, vx, vy);
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

/// The separator rule's copy of the escaped-value alphabet matches the runtime's escaping: a
/// single character separates two placeholders exactly when no rendered value can contain it.
#[test]
fn separator_rule_matches_the_escaping() {
    let rendered: String = (1u8..0x80)
        .map(char::from)
        .chain(['é', '日'])
        .map(|c| memo_redis::key::render(|w| w.arg(&c)))
        .collect();
    for c in (0x20u8..0x7f).map(char::from).chain(['é', '日']) {
        if matches!(c, '{' | '}') {
            continue;
        }
        let t = format!("{{a}}{c}{{b}}");
        let accepted = template::parse(&t)
            .and_then(|s| template::check_key_separators(&s))
            .is_ok();
        assert_eq!(accepted, !rendered.contains(c), "separator {c:?}");
    }
}

/// The example, and the readable rendering of common characters.
#[test]
fn percent_cannot_separate_and_common_characters_stay_readable() {
    assert!(template::parse("{a}%{b}")
        .and_then(|s| template::check_key_separators(&s))
        .is_err());
    let k = |a: &str, b: &str| template_key(&a.into(), &b.into(), &0).unwrap();
    assert_ne!(k("x", "3A%z"), k("x:", "25z"));
    assert!(
        k("eu-west", "2026-11-25").ends_with(":eu-west:2026-11-25:0"),
        "{}",
        k("eu-west", "2026-11-25")
    );
}
