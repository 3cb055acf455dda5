// One program, built twice (schema_v1.rs and schema_v2.rs each define `mod types` and include
// this file): the two builds of a rolling deploy, run side by side against one Redis by
// tests/tests/schema_evolution.rs.
//
// Protocol: one request per stdin line, `<case> <id>`; one reply per stdout line,
// `<case> ok=<bool> hits=<n> misses=<n> value=<Debug>`, where `ok` says the call returned exactly
// what this build's body returns (a value read from the other build's entry would not).
// Redis comes from `REDIS_URL` / `REDIS_PREFIX` (the global cache).

use std::io::{BufRead, Write};

use memo_redis::{redis_cache, Stats};

// `name` gives both builds the identity one crate has across deploys (the binaries' crate names
// differ, so their module paths would too).
#[redis_cache(name = "schema_app::type_change", ttl = "10m")]
async fn type_change(id: u64) -> types::Score {
    types::score(id)
}

#[redis_cache(name = "schema_app::reorder", ttl = "10m")]
async fn reorder(id: u64) -> types::Pair {
    types::pair(id)
}

#[redis_cache(name = "schema_app::field_added", ttl = "10m")]
async fn field_added(id: u64) -> types::Added {
    types::added(id)
}

#[redis_cache(name = "schema_app::field_removed", ttl = "10m")]
async fn field_removed(id: u64) -> types::Removed {
    types::removed(id)
}

#[redis_cache(name = "schema_app::variant_added", ttl = "10m")]
async fn variant_added(id: u64) -> types::Status {
    types::status(id)
}

#[redis_cache(name = "schema_app::nested", ttl = "10m")]
async fn nested(id: u64) -> Option<types::Outer> {
    Some(types::outer(id))
}

#[redis_cache(name = "schema_app::renamed", ttl = "10m")]
async fn renamed(id: u64) -> types::Money {
    types::money(id)
}

async fn call(case: &str, id: u64) -> Option<(bool, Stats, String)> {
    fn row<T: std::fmt::Debug + PartialEq>(got: T, want: T, stats: Stats) -> (bool, Stats, String) {
        (got == want, stats, format!("{got:?}"))
    }
    Some(match case {
        "type_change" => row(type_change(id).await, types::score(id), type_change_stats()),
        "reorder" => row(reorder(id).await, types::pair(id), reorder_stats()),
        "field_added" => row(field_added(id).await, types::added(id), field_added_stats()),
        "field_removed" => row(field_removed(id).await, types::removed(id), field_removed_stats()),
        "variant_added" => row(variant_added(id).await, types::status(id), variant_added_stats()),
        "nested" => row(nested(id).await, Some(types::outer(id)), nested_stats()),
        "renamed" => row(renamed(id).await, types::money(id), renamed_stats()),
        // The typed handle, on one key both builds share.
        "handle" => {
            let got = memo_redis::global()
                .get_or_set_with(&format!("handle:{id}"), None, || async { types::score(id) })
                .await
                .ok()?;
            row(got, types::score(id), Stats::default())
        }
        // What `Cache::get` makes of the entry: `None` for an error (an entry of another shape).
        "handle_get" => {
            let got: Option<types::Score> = memo_redis::global()
                .get(&format!("handle:{id}"))
                .await
                .ok()
                .flatten();
            let ok = got.as_ref().is_none_or(|v| *v == types::score(id));
            (ok, Stats::default(), format!("{got:?}"))
        }
        _ => return None,
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let stdin = std::io::stdin();
        let mut out = std::io::stdout().lock();
        for line in stdin.lock().lines() {
            let line = line.expect("stdin");
            let mut parts = line.split_whitespace();
            let (Some(case), Some(id)) = (parts.next(), parts.next()) else {
                continue;
            };
            let id: u64 = id.parse().expect("id");
            let reply = match call(case, id).await {
                Some((ok, s, value)) => format!(
                    "{case} ok={ok} hits={} misses={} value={value}",
                    s.hits, s.misses
                ),
                None => format!("{case} unknown"),
            };
            writeln!(out, "{reply}").expect("stdout");
            out.flush().expect("stdout");
        }
    });
}
