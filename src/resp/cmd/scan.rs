//! SCAN, SSCAN, HSCAN, ZSCAN and RANDOMKEY.
//!
//! SCAN walks the keyspace in cursor order (see `Store::scan`): a key
//! present for the whole walk comes back at least once. MATCH and TYPE
//! filter each step's keys after they are taken, as in Redis, so a step
//! may return none and a non-zero cursor. The collection scans return
//! every element in one step (cursor 0), as Redis does for its small
//! encodings.

use super::collections::random_below;
use super::zsets::fmt_score;
use super::{arg, parse_i64, write_wrongtype, Cx, E_SYNTAX};
use crate::codec::resp::{write_array_header, write_bulk, write_error, write_null};
use crate::resp::glob::glob_match;

const E_CURSOR: &str = "ERR invalid cursor";

/// The options after a cursor: MATCH, COUNT and (SCAN only) TYPE.
struct ScanOpts<'a> {
    pattern: Option<&'a [u8]>,
    count: usize,
    kind: Option<Vec<u8>>,
}

fn parse_opts<'a, A: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    opts: &'a [A],
    allow_type: bool,
) -> Option<ScanOpts<'a>> {
    let mut o = ScanOpts {
        pattern: None,
        count: 10,
        kind: None,
    };
    let mut i = 0;
    while i < opts.len() {
        let Some(val) = opts.get(i + 1).map(AsRef::as_ref) else {
            write_error(out, E_SYNTAX);
            return None;
        };
        let name = opts[i].as_ref();
        if name.eq_ignore_ascii_case(b"match") {
            o.pattern = (val != b"*").then_some(val);
        } else if name.eq_ignore_ascii_case(b"count") {
            match parse_i64(val) {
                Some(n) if n >= 1 => o.count = n as usize,
                Some(_) => {
                    write_error(out, E_SYNTAX);
                    return None;
                }
                None => {
                    write_error(out, super::E_NOT_INT);
                    return None;
                }
            }
        } else if allow_type && name.eq_ignore_ascii_case(b"type") {
            o.kind = Some(val.to_ascii_lowercase());
        } else {
            write_error(out, E_SYNTAX);
            return None;
        }
        i += 2;
    }
    Some(o)
}

fn parse_cursor(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// The two-element SCAN reply header: the next cursor, then the array of
/// `n` items that follows.
fn write_head(out: &mut Vec<u8>, cursor: u64, n: usize) {
    write_array_header(out, 2);
    write_bulk(out, cursor.to_string().as_bytes());
    write_array_header(out, n);
}

pub(super) fn scan<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(cursor) = parse_cursor(arg(args, 1)) else {
        return write_error(cx.out, E_CURSOR);
    };
    let Some(o) = parse_opts(cx.out, &args[2..], true) else {
        return;
    };
    let (keys, next) = cx.store.scan(cursor, o.count);
    let keep: Vec<&Vec<u8>> = keys
        .iter()
        .filter(|(k, kind)| {
            o.pattern.is_none_or(|p| glob_match(p, k, false))
                && o.kind
                    .as_ref()
                    .is_none_or(|t| t.as_slice() == kind.name().as_bytes())
        })
        .map(|(k, _)| k)
        .collect();
    write_head(cx.out, next, keep.len());
    for k in keep {
        write_bulk(cx.out, k);
    }
}

/// A collection element in a scan reply: the member (or field), and the
/// value or score that follows it, if any.
type Item = (Vec<u8>, Option<Vec<u8>>);

/// SSCAN, HSCAN, ZSCAN: the whole collection in one step.
fn scan_collection<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], kind: &str) {
    if parse_cursor(arg(args, 2)).is_none() {
        return write_error(cx.out, E_CURSOR);
    }
    let Some(o) = parse_opts(cx.out, &args[3..], false) else {
        return;
    };
    let pat = |m: &[u8]| o.pattern.is_none_or(|p| glob_match(p, m, false));
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        // (member, optional second element) pairs, filtered by MATCH on the
        // member (the field for hashes).
        let items: Result<Vec<Item>, _> = match kind {
            "set" => slot.set_members().map(|s| {
                s.into_iter()
                    .flat_map(|s| s.iter())
                    .filter(|m| pat(m))
                    .map(|m| (m.into_owned(), None))
                    .collect()
            }),
            "hash" => slot.hash().map(|h| {
                h.into_iter()
                    .flat_map(|h| h.iter())
                    .filter(|(f, _)| pat(f))
                    .map(|(f, v)| (f.to_vec(), Some(v.to_vec())))
                    .collect()
            }),
            _ => slot.zset().map(|z| {
                z.into_iter()
                    .flat_map(|z| z.iter())
                    .filter(|(m, _)| pat(m))
                    .map(|(m, s)| (m.to_vec(), Some(fmt_score(s).into_bytes())))
                    .collect()
            }),
        };
        match items {
            Ok(items) => {
                let n: usize = items
                    .iter()
                    .map(|(_, v)| 1 + usize::from(v.is_some()))
                    .sum();
                write_head(out, 0, n);
                for (m, v) in &items {
                    write_bulk(out, m);
                    if let Some(v) = v {
                        write_bulk(out, v);
                    }
                }
            }
            Err(e) => write_wrongtype(out, e),
        }
    })
}

variants! {
    sscan => scan_collection("set");
    hscan => scan_collection("hash");
    zscan => scan_collection("zset");
}

pub(super) fn randomkey<A: AsRef<[u8]>>(cx: &mut Cx<'_>, _args: &[A]) {
    match cx.store.random_key(random_below) {
        Some(k) => write_bulk(cx.out, &k),
        None => write_null(cx.out),
    }
}
