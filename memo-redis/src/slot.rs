//! Redis Cluster slot maths: the CRC16 of a key's hash tag, and a short hash tag for every slot
//! (so that a key derived from another can be placed in the same slot).

use std::sync::LazyLock;

/// Redis Cluster's hash slots.
pub(crate) const SLOTS: u16 = 16384;

/// CRC16/XMODEM lookup table, the checksum Redis Cluster hashes keys with.
const CRC16: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The cluster slot of `key`: CRC16 of its hash tag (the text between the first `{` and the
/// next `}`, if not empty) or else of the whole key, modulo 16384.
pub(crate) fn slot_of(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let len = rest.iter().position(|b| *b == b'}')?;
            (len > 0).then(|| &rest[..len])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// `n` as lowercase hex digits, least significant first (a slot tag's text).
fn tag_text(mut n: u32, buf: &mut [u8; 8]) -> &str {
    let mut len = 0;
    loop {
        buf[len] = b"0123456789abcdef"[(n & 15) as usize];
        len += 1;
        n >>= 4;
        if n == 0 || len == buf.len() {
            break;
        }
    }
    std::str::from_utf8(&buf[..len]).unwrap_or("0")
}

/// For every slot, the smallest `n` whose [`tag_text`] hashes to it: found by counting up once
/// per process (about 156,000 checksums of 5 bytes, under a millisecond in release builds; every
/// slot is covered by `n < 0x263de`, which the unit tests check).
static SLOT_TAGS: LazyLock<Vec<u32>> = LazyLock::new(|| {
    let mut table = vec![u32::MAX; usize::from(SLOTS)];
    let mut missing = table.len();
    let mut buf = [0u8; 8];
    let mut n = 0u32;
    while missing > 0 && n < 1 << 24 {
        let slot = usize::from(slot_of(tag_text(n, &mut buf).as_bytes()));
        if table[slot] == u32::MAX {
            table[slot] = n;
            missing -= 1;
        }
        n += 1;
    }
    table
});

/// A short hash tag text (no braces) that Redis Cluster hashes to `slot`.
pub(crate) fn slot_tag(slot: u16) -> String {
    let n = SLOT_TAGS
        .get(usize::from(slot))
        .copied()
        .unwrap_or(u32::MAX);
    let mut buf = [0u8; 8];
    tag_text(n, &mut buf).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "cluster")] // redis-rs's `Slot` comes with its cluster support
    #[test]
    fn slots_match_redis_rs() {
        use redis::cluster_routing::Slot;
        assert_eq!(crc16(b"123456789"), 0x31c3, "CRC16/XMODEM check value");
        for key in [
            "",
            "a",
            "memo:user:42",
            "t:x{user1}y",
            "t:{}x{y}",
            "t:{x",
            "t:}x{",
            "{a}{b}",
            "ns:é",
            "user:1",
            "{user1}.following",
            "foo{}{bar}",
            "foo{{bar}}zap",
        ] {
            assert_eq!(
                Slot::new(slot_of(key.as_bytes())),
                Some(Slot::for_key(key)),
                "{key:?}"
            );
        }
        for n in 0..2000u32 {
            let key = format!("ns:k{n}:{{{}}}", n % 7);
            assert_eq!(
                Slot::new(slot_of(key.as_bytes())),
                Some(Slot::for_key(&key))
            );
        }
    }

    #[test]
    fn every_slot_has_a_tag() {
        assert!(
            SLOT_TAGS.iter().all(|n| *n < 0x263de),
            "a slot without a tag"
        );
        for slot in 0..SLOTS {
            let tag = slot_tag(slot);
            assert!(!tag.is_empty() && !tag.contains(['{', '}']));
            assert_eq!(slot_of(format!("ns:tags:{{{tag}}}rest").as_bytes()), slot);
        }
    }
}
