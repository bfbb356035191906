//! Lists, hashes and sets: Redis's commands over them, with its replies and
//! error texts (WRONGTYPE when a key holds another type). Every command
//! works on one key under that key's shard lock, so it is atomic with
//! respect to other clients; a collection emptied by a command is deleted,
//! as Redis never keeps an empty one. LMPOP and BLMPOP try their keys one
//! at a time, in order, as Redis does.

use std::borrow::Cow;

use crate::resp::compact::List;

use super::{arg, parse_i64, write_wrongtype, Cx, E_NOT_INT, E_OVERFLOW, E_SYNTAX};
use crate::codec::resp::{
    write_array_header, write_bulk, write_error, write_int, write_null, write_null_array,
    EMPTY_ARRAY, OK,
};

const E_NO_KEY: &str = "ERR no such key";
const E_INDEX: &str = "ERR index out of range";
const E_POSITIVE: &str = "ERR value is out of range, must be positive";
const E_HASH_INT: &str = "ERR hash value is not an integer";

/// Run `$body` on the key's `$access` collection, or reply WRONGTYPE.
macro_rules! on_key {
    ($cx:expr, $key:expr, |$slot:ident, $out:ident| $body:expr) => {{
        let $out = &mut *$cx.out;
        $cx.store.with_key($key, |$slot| $body)
    }};
}

/// A list index as Redis reads it (negative counts from the end), clamped
/// into `0..=len` for ranges.
fn clamp_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

/// One list index (negative from the end), if inside the list.
fn index(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

// ---------------------------------------------------------------------------
// Lists

fn push<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], left: bool, create: bool) {
    let pushed = on_key!(cx, arg(args, 1), |slot, out| match slot.list_mut(create) {
        Ok(Some(list)) => {
            for v in &args[2..] {
                let v = v.as_ref();
                if left {
                    list.push_front(v);
                } else {
                    list.push_back(v);
                }
            }
            write_int(out, list.len() as i64);
            args.len() - 2
        }
        Ok(None) => {
            write_int(out, 0);
            0
        }
        Err(e) => {
            write_wrongtype(out, e);
            0
        }
    });
    if pushed > 0 {
        cx.store.signal(arg(args, 1));
    }
}

/// A blocking command's timeout argument (seconds, fractions allowed; 0:
/// for ever).
pub(super) fn parse_timeout(out: &mut Vec<u8>, raw: &[u8]) -> Option<Option<std::time::Duration>> {
    let t = std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|t| t.is_finite());
    match t {
        None => {
            write_error(out, "ERR timeout is not a float or out of range");
            None
        }
        Some(t) if t < 0.0 => {
            write_error(out, "ERR timeout is negative");
            None
        }
        Some(0.0) => Some(None),
        Some(t) => Some(Some(std::time::Duration::from_secs_f64(t.min(1e9)))),
    }
}

/// BLPOP/BRPOP key [key ...] timeout: the first non-empty list's head (or
/// tail) with its key; if all are empty, block (or, inside EXEC, nil).
fn bpop<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], left: bool) {
    let Some(timeout) = parse_timeout(cx.out, arg(args, args.len() - 1)) else {
        return;
    };
    let keys = &args[1..args.len() - 1];
    let retrying = cx.retrying;
    for k in keys {
        let k = k.as_ref();
        let done = on_key!(cx, k, |slot, out| {
            let v = match slot.list_mut(false) {
                Ok(Some(l)) => match left {
                    true => l.pop_front(),
                    false => l.pop_back(),
                },
                Ok(None) => None,
                Err(_) if retrying => None,
                Err(e) => {
                    write_wrongtype(out, e);
                    return true;
                }
            };
            let Some(v) = v else { return false };
            slot.drop_if_empty();
            write_array_header(out, 2);
            write_bulk(out, k);
            write_bulk(out, &v);
            true
        });
        if done {
            return;
        }
    }
    block_on(cx, keys, timeout);
}

/// A blocking command found nothing to take: wait on `keys` (retried when
/// one is written to), or inside EXEC, where no command may wait, answer
/// as if timed out (a nil array).
pub(super) fn block_on<A: AsRef<[u8]>>(
    cx: &mut Cx<'_>,
    keys: &[A],
    timeout: Option<std::time::Duration>,
) {
    if cx.may_block {
        cx.block = Some((keys.iter().map(|k| k.as_ref().to_vec()).collect(), timeout));
    } else {
        write_null_array(cx.out);
    }
}

variants! {
    blpop => bpop(true);
    brpop => bpop(false);
}

/// The `numkeys key [key ...] <where> [COUNT count]` of LMPOP, ZMPOP and
/// their blocking forms, from `args[at]` on, `side` reading the <where>
/// word: the keys, the side and the count (1 if not given), or `None`
/// after replying with Redis's error.
pub(super) fn parse_mpop<'a, A: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    args: &'a [A],
    at: usize,
    side: impl Fn(&[u8]) -> Option<bool>,
) -> Option<(&'a [A], bool, usize)> {
    let n = match parse_i64(arg(args, at)) {
        Some(n) if n > 0 => n as usize,
        _ => {
            write_error(out, "ERR numkeys should be greater than 0");
            return None;
        }
    };
    let where_at = at.saturating_add(n).saturating_add(1);
    let Some(side) = args.get(where_at).and_then(|w| side(w.as_ref())) else {
        write_error(out, E_SYNTAX);
        return None;
    };
    let mut count = None;
    let mut i = where_at + 1;
    while i < args.len() {
        if count.is_none() && i + 1 < args.len() && arg(args, i).eq_ignore_ascii_case(b"count") {
            match parse_i64(arg(args, i + 1)) {
                Some(c) if c > 0 => count = Some(c as usize),
                _ => {
                    write_error(out, "ERR count should be greater than 0");
                    return None;
                }
            }
            i += 2;
        } else {
            write_error(out, E_SYNTAX);
            return None;
        }
    }
    Some((&args[at + 1..where_at], side, count.unwrap_or(1)))
}

/// Pop up to `count` elements from the first non-empty list of `keys`,
/// answering `[key, [element ...]]`; false, with nothing written, if all
/// are empty (WRONGTYPE for a key of another type met before).
fn lpop_first<A: AsRef<[u8]>>(cx: &mut Cx<'_>, keys: &[A], left: bool, count: usize) -> bool {
    let retrying = cx.retrying;
    keys.iter().any(|k| {
        let k = k.as_ref();
        on_key!(cx, k, |slot, out| {
            match slot.list() {
                Ok(Some(_)) => {}
                Ok(None) => return false,
                Err(_) if retrying => return false,
                Err(e) => {
                    write_wrongtype(out, e);
                    return true;
                }
            }
            let list = slot.list_mut(false).expect("checked").expect("present");
            let n = count.min(list.len());
            write_array_header(out, 2);
            write_bulk(out, k);
            write_array_header(out, n);
            for _ in 0..n {
                let v = match left {
                    true => list.pop_front(),
                    false => list.pop_back(),
                };
                write_bulk(out, &v.expect("counted"));
            }
            slot.drop_if_empty();
            true
        })
    })
}

/// A keyword out of two (any case): true for `yes`, false for `no`.
pub(super) fn either_word(word: &[u8], yes: &[u8], no: &[u8]) -> Option<bool> {
    if word.eq_ignore_ascii_case(yes) {
        Some(true)
    } else if word.eq_ignore_ascii_case(no) {
        Some(false)
    } else {
        None
    }
}

/// LEFT or RIGHT: true for LEFT.
pub(super) fn left_right(word: &[u8]) -> Option<bool> {
    either_word(word, b"left", b"right")
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: nil if every list
/// is empty.
pub(super) fn lmpop<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some((keys, left, count)) = parse_mpop(cx.out, args, 1, left_right) else {
        return;
    };
    if !lpop_first(cx, keys, left, count) {
        write_null_array(cx.out);
    }
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]: LMPOP,
/// waiting for one of the lists to get elements.
pub(super) fn blmpop<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some((keys, left, count)) = parse_mpop(cx.out, args, 2, left_right) else {
        return;
    };
    let Some(timeout) = parse_timeout(cx.out, arg(args, 1)) else {
        return;
    };
    if !lpop_first(cx, keys, left, count) {
        block_on(cx, keys, timeout);
    }
}

variants! {
    lpush => push(true, true);
    rpush => push(false, true);
    lpushx => push(true, false);
    rpushx => push(false, false);
}

/// The optional count of a pop (LPOP, SPOP, ZPOPMIN... `key [count]`):
/// `Some(None)` without one; `None` after replying with the error.
pub(super) fn pop_count<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) -> Option<Option<usize>> {
    match args.len() {
        2 => Some(None),
        3 => match parse_i64(arg(args, 2)) {
            Some(n) if n >= 0 => Some(Some(n as usize)),
            _ => {
                write_error(out, E_POSITIVE);
                None
            }
        },
        _ => {
            write_error(out, E_SYNTAX);
            None
        }
    }
}

/// LPOP/RPOP key [count]: one element (or nil), or with a count an array
/// (nil array for a missing key).
fn pop<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], left: bool) {
    // LPOP's extra arguments are an arity error in Redis (SPOP's and
    // ZPOPMIN's a syntax error).
    if args.len() > 3 {
        return super::err_arity(cx.out, if left { "lpop" } else { "rpop" });
    }
    let Some(count) = pop_count(cx.out, args) else {
        return;
    };
    on_key!(cx, arg(args, 1), |slot, out| {
        let list = match slot.list_mut(false) {
            Ok(Some(l)) => l,
            Ok(None) if count.is_some() => return write_null_array(out),
            Ok(None) => return write_null(out),
            Err(e) => return write_wrongtype(out, e),
        };
        let take = |list: &mut List| match left {
            true => list.pop_front(),
            false => list.pop_back(),
        };
        match count {
            None => match take(list) {
                Some(v) => write_bulk(out, &v),
                None => write_null(out),
            },
            Some(n) => {
                let n = n.min(list.len());
                write_array_header(out, n);
                for _ in 0..n {
                    if let Some(v) = take(list) {
                        write_bulk(out, &v);
                    }
                }
            }
        }
        slot.drop_if_empty();
    })
}

variants! {
    lpop => pop(true);
    rpop => pop(false);
}

pub(super) fn llen<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    on_key!(cx, arg(args, 1), |slot, out| match slot.list() {
        Ok(l) => write_int(out, l.map_or(0, |l| l.len()) as i64),
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn lrange<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (Some(start), Some(stop)) = (parse_i64(arg(args, 2)), parse_i64(arg(args, 3))) else {
        return write_error(cx.out, E_NOT_INT);
    };
    on_key!(cx, arg(args, 1), |slot, out| match slot.list() {
        Ok(Some(l)) => match clamp_range(start, stop, l.len()) {
            Some((a, b)) => {
                write_array_header(out, b - a + 1);
                for v in l.iter_from(a).take(b - a + 1) {
                    write_bulk(out, v);
                }
            }
            None => out.extend_from_slice(EMPTY_ARRAY),
        },
        Ok(None) => out.extend_from_slice(EMPTY_ARRAY),
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn lindex<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(i) = parse_i64(arg(args, 2)) else {
        return write_error(cx.out, E_NOT_INT);
    };
    on_key!(cx, arg(args, 1), |slot, out| match slot.list() {
        Ok(Some(l)) => match index(i, l.len()).and_then(|i| l.get(i)) {
            Some(v) => write_bulk(out, v),
            None => write_null(out),
        },
        Ok(None) => write_null(out),
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn lset<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(i) = parse_i64(arg(args, 2)) else {
        return write_error(cx.out, E_NOT_INT);
    };
    let value = arg(args, 3);
    on_key!(cx, arg(args, 1), |slot, out| match slot.list_mut(false) {
        Ok(Some(l)) => match index(i, l.len()) {
            Some(i) => {
                l.set(i, value);
                out.extend_from_slice(OK);
            }
            None => write_error(out, E_INDEX),
        },
        Ok(None) => write_error(out, E_NO_KEY),
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn ltrim<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (Some(start), Some(stop)) = (parse_i64(arg(args, 2)), parse_i64(arg(args, 3))) else {
        return write_error(cx.out, E_NOT_INT);
    };
    on_key!(cx, arg(args, 1), |slot, out| {
        match slot.list_mut(false) {
            Ok(Some(l)) => match clamp_range(start, stop, l.len()) {
                Some((a, b)) => l.trim(a, b),
                None => l.clear(),
            },
            Ok(None) => {}
            Err(e) => return write_wrongtype(out, e),
        }
        slot.drop_if_empty();
        out.extend_from_slice(OK);
    })
}

/// LREM key count element: count > 0 from the head, < 0 from the tail,
/// 0 all.
pub(super) fn lrem<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(count) = parse_i64(arg(args, 2)) else {
        return write_error(cx.out, E_NOT_INT);
    };
    let elem = arg(args, 3);
    on_key!(cx, arg(args, 1), |slot, out| {
        let removed = match slot.list_mut(false) {
            Ok(Some(l)) => {
                let limit = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                l.remove_matching(elem, limit, count < 0)
            }
            Ok(None) => 0,
            Err(e) => return write_wrongtype(out, e),
        };
        slot.drop_if_empty();
        write_int(out, removed as i64);
    })
}

// ---------------------------------------------------------------------------
// Hashes

/// HSET key field value [field value ...]: fields added. HMSET: OK.
fn hset_generic<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], name: &str, reply_ok: bool) {
    if !args.len().is_multiple_of(2) {
        return super::err_arity(cx.out, name);
    }
    on_key!(cx, arg(args, 1), |slot, out| {
        // The first pair checks the type: nothing is written to a key of
        // another type.
        let mut added = 0;
        for p in args[2..].chunks_exact(2) {
            match slot.hash_set(p[0].as_ref(), p[1].as_ref()) {
                Ok(new) => added += i64::from(new),
                Err(e) => return write_wrongtype(out, e),
            }
        }
        if reply_ok {
            out.extend_from_slice(OK);
        } else {
            write_int(out, added);
        }
    })
}

variants! {
    hset => hset_generic("hset", false);
    hmset => hset_generic("hmset", true);
}

pub(super) fn hsetnx<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (field, value) = (arg(args, 2), arg(args, 3));
    on_key!(cx, arg(args, 1), |slot, out| {
        let exists = match slot.hash() {
            Ok(h) => h.is_some_and(|h| h.contains_key(field)),
            Err(e) => return write_wrongtype(out, e),
        };
        if !exists {
            slot.hash_set(field, value).expect("a hash or nothing");
        }
        write_int(out, i64::from(!exists));
    })
}

pub(super) fn hget<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let field = arg(args, 2);
    on_key!(cx, arg(args, 1), |slot, out| match slot.hash() {
        Ok(h) => match h.and_then(|h| h.get(field)) {
            Some(v) => write_bulk(out, v),
            None => write_null(out),
        },
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn hmget<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    on_key!(cx, arg(args, 1), |slot, out| match slot.hash() {
        Ok(h) => {
            write_array_header(out, args.len() - 2);
            for f in &args[2..] {
                match h.and_then(|h| h.get(f.as_ref())) {
                    Some(v) => write_bulk(out, v),
                    None => write_null(out),
                }
            }
        }
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn hdel<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    on_key!(cx, arg(args, 1), |slot, out| {
        let n = match slot.hash_mut(false) {
            Ok(Some(h)) => args[2..].iter().filter(|f| h.remove(f.as_ref())).count(),
            Ok(None) => 0,
            Err(e) => return write_wrongtype(out, e),
        };
        slot.drop_if_empty();
        write_int(out, n as i64);
    })
}

pub(super) fn hlen<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    on_key!(cx, arg(args, 1), |slot, out| match slot.hash() {
        Ok(h) => write_int(out, h.map_or(0, |h| h.len()) as i64),
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn hexists<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let field = arg(args, 2);
    on_key!(cx, arg(args, 1), |slot, out| match slot.hash() {
        Ok(h) => write_int(out, i64::from(h.is_some_and(|h| h.contains_key(field)))),
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn hstrlen<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let field = arg(args, 2);
    on_key!(cx, arg(args, 1), |slot, out| match slot.hash() {
        Ok(h) => write_int(
            out,
            h.and_then(|h| h.get(field)).map_or(0, <[u8]>::len) as i64
        ),
        Err(e) => write_wrongtype(out, e),
    })
}

/// HGETALL, HKEYS, HVALS: the fields and/or values.
fn hwalk<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], keys: bool, vals: bool) {
    on_key!(cx, arg(args, 1), |slot, out| match slot.hash() {
        Ok(None) => out.extend_from_slice(EMPTY_ARRAY),
        Ok(Some(h)) => {
            write_array_header(out, h.len() * (usize::from(keys) + usize::from(vals)));
            for (k, v) in h.iter() {
                if keys {
                    write_bulk(out, k);
                }
                if vals {
                    write_bulk(out, v);
                }
            }
        }
        Err(e) => write_wrongtype(out, e),
    })
}

variants! {
    hgetall => hwalk(true, true);
    hkeys => hwalk(true, false);
    hvals => hwalk(false, true);
}

pub(super) fn hincrby<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(delta) = parse_i64(arg(args, 3)) else {
        return write_error(cx.out, E_NOT_INT);
    };
    let field = arg(args, 2);
    on_key!(cx, arg(args, 1), |slot, out| {
        let current = match slot.hash() {
            Ok(h) => match h.and_then(|h| h.get(field)) {
                None => Ok(0),
                Some(v) => parse_i64(v).ok_or(E_HASH_INT),
            },
            Err(e) => return write_wrongtype(out, e),
        };
        let r = current
            .and_then(|c| c.checked_add(delta).ok_or(E_OVERFLOW))
            .inspect(|new| {
                slot.hash_set(field, new.to_string().as_bytes())
                    .expect("a hash or nothing");
            });
        // A refused increment of a new key leaves no empty hash behind.
        slot.drop_if_empty();
        match r {
            Ok(n) => write_int(out, n),
            Err(msg) => write_error(out, msg),
        }
    })
}

// ---------------------------------------------------------------------------
// Sets

pub(super) fn sadd<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    on_key!(cx, arg(args, 1), |slot, out| match slot.set_mut(true) {
        Ok(Some(s)) => {
            let added = args[2..].iter().filter(|m| s.insert(m.as_ref())).count();
            write_int(out, added as i64);
        }
        Ok(None) => unreachable!("created"),
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn srem<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    on_key!(cx, arg(args, 1), |slot, out| {
        let n = match slot.set_mut(false) {
            Ok(Some(s)) => args[2..].iter().filter(|m| s.remove(m.as_ref())).count(),
            Ok(None) => 0,
            Err(e) => return write_wrongtype(out, e),
        };
        slot.drop_if_empty();
        write_int(out, n as i64);
    })
}

pub(super) fn sismember<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let m = arg(args, 2);
    on_key!(cx, arg(args, 1), |slot, out| match slot.set_members() {
        Ok(s) => write_int(out, i64::from(s.is_some_and(|s| s.contains(m)))),
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn smismember<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    on_key!(cx, arg(args, 1), |slot, out| match slot.set_members() {
        Ok(s) => {
            write_array_header(out, args.len() - 2);
            for m in &args[2..] {
                write_int(out, i64::from(s.is_some_and(|s| s.contains(m.as_ref()))));
            }
        }
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn scard<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    on_key!(cx, arg(args, 1), |slot, out| match slot.set_members() {
        Ok(s) => write_int(out, s.map_or(0, |s| s.len()) as i64),
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn smembers<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    on_key!(cx, arg(args, 1), |slot, out| match slot.set_members() {
        Ok(None) => out.extend_from_slice(EMPTY_ARRAY),
        Ok(Some(s)) => {
            write_array_header(out, s.len());
            for m in s.iter() {
                write_bulk(out, &m);
            }
        }
        Err(e) => write_wrongtype(out, e),
    })
}

/// SPOP key [count]: members removed in the set's own (unspecified) order,
/// which a randomly keyed hash makes unpredictable to clients.
pub(super) fn spop<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(count) = pop_count(cx.out, args) else {
        return;
    };
    on_key!(cx, arg(args, 1), |slot, out| {
        let set = match slot.set_mut(false) {
            Ok(Some(s)) => s,
            Ok(None) if count.is_some() => return out.extend_from_slice(EMPTY_ARRAY),
            Ok(None) => return write_null(out),
            Err(e) => return write_wrongtype(out, e),
        };
        let n = count.unwrap_or(1).min(set.len());
        let picked: Vec<Vec<u8>> = set.iter().take(n).map(|m| m.into_owned()).collect();
        for m in &picked {
            set.remove(m);
        }
        match count {
            None => match picked.first() {
                Some(m) => write_bulk(out, m),
                None => write_null(out),
            },
            Some(_) => {
                write_array_header(out, picked.len());
                for m in &picked {
                    write_bulk(out, m);
                }
            }
        }
        slot.drop_if_empty();
    })
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, -1 without the
/// pivot, 0 without the key.
pub(super) fn linsert<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let where_ = arg(args, 2);
    let before = if where_.eq_ignore_ascii_case(b"before") {
        true
    } else if where_.eq_ignore_ascii_case(b"after") {
        false
    } else {
        return write_error(cx.out, E_SYNTAX);
    };
    let (pivot, elem) = (arg(args, 3), arg(args, 4));
    on_key!(cx, arg(args, 1), |slot, out| match slot.list_mut(false) {
        Ok(Some(l)) => {
            let at = l.iter().position(|v| v == pivot);
            match at {
                Some(i) => {
                    l.insert(if before { i } else { i + 1 }, elem);
                    write_int(out, l.len() as i64);
                }
                None => write_int(out, -1),
            }
        }
        Ok(None) => write_int(out, 0),
        Err(e) => write_wrongtype(out, e),
    })
}

/// LPOS key element [RANK rank] [COUNT num] [MAXLEN len].
pub(super) fn lpos<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<usize>, 0usize);
    let mut i = 3;
    while i < args.len() {
        let (opt, val) = (arg(args, i), args.get(i + 1).map(AsRef::as_ref));
        let Some(v) = val.and_then(parse_i64) else {
            return write_error(cx.out, if val.is_none() { E_SYNTAX } else { E_NOT_INT });
        };
        if opt.eq_ignore_ascii_case(b"rank") {
            if v == 0 || v == i64::MIN {
                return write_error(
                    cx.out,
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                );
            }
            rank = v;
        } else if opt.eq_ignore_ascii_case(b"count") {
            if v < 0 {
                return write_error(cx.out, "ERR COUNT can't be negative");
            }
            count = Some(v as usize);
        } else if opt.eq_ignore_ascii_case(b"maxlen") {
            if v < 0 {
                return write_error(cx.out, "ERR MAXLEN can't be negative");
            }
            maxlen = v as usize;
        } else {
            return write_error(cx.out, E_SYNTAX);
        }
        i += 2;
    }
    let elem = arg(args, 2);
    on_key!(cx, arg(args, 1), |slot, out| {
        let list = match slot.list() {
            Ok(l) => l,
            Err(e) => return write_wrongtype(out, e),
        };
        let mut found = Vec::new();
        if let Some(l) = list {
            let want = match count {
                Some(0) => usize::MAX,
                Some(c) => c,
                None => 1,
            };
            let scan = if maxlen == 0 {
                l.len()
            } else {
                maxlen.min(l.len())
            };
            let mut skip = rank.unsigned_abs() as usize - 1;
            let mut check = |idx: usize, v: &[u8]| {
                if v == elem {
                    if skip > 0 {
                        skip -= 1;
                    } else {
                        found.push(idx);
                    }
                }
                found.len() < want
            };
            if rank > 0 {
                for (idx, v) in l.iter().enumerate().take(scan) {
                    if !check(idx, v) {
                        break;
                    }
                }
            } else {
                for (k, v) in l.iter().rev().enumerate().take(scan) {
                    if !check(l.len() - 1 - k, v) {
                        break;
                    }
                }
            }
        }
        match count {
            Some(_) => {
                write_array_header(out, found.len());
                for idx in found {
                    write_int(out, idx as i64);
                }
            }
            None => match found.first() {
                Some(&idx) => write_int(out, idx as i64),
                None => write_null(out),
            },
        }
    })
}

/// A random index below `n` (`n > 0`): a per-thread xorshift seeded from
/// the standard library's random hasher keys.
pub(super) fn random_below(n: usize) -> usize {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9e37_79b9_7f4a_7c15);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x % n as u64) as usize
    })
}

/// The most members one SRANDMEMBER with repeats (a negative count) returns.
const RANDOM_REPLY_MAX: i64 = 1_000_000;

/// SRANDMEMBER key [count]: one member (or nil); count > 0 distinct
/// members, up to the set's size; count < 0 |count| members, repeats
/// allowed.
pub(super) fn srandmember<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let count = match args.len() {
        2 => None,
        3 => match parse_i64(arg(args, 2)) {
            // Repeats make a reply as long as asked: one command may not
            // make the server build an unbounded one.
            Some(n) if n < -RANDOM_REPLY_MAX => {
                return write_error(
                    cx.out,
                    "ERR value is out of range (at most 1000000 repeated members per reply)",
                )
            }
            Some(n) => Some(n),
            None => return write_error(cx.out, E_NOT_INT),
        },
        _ => return write_error(cx.out, E_SYNTAX),
    };
    on_key!(cx, arg(args, 1), |slot, out| {
        let set = match slot.set_members() {
            Ok(s) => s,
            Err(e) => return write_wrongtype(out, e),
        };
        let members: Vec<Cow<'_, [u8]>> = set.map(|s| s.iter().collect()).unwrap_or_default();
        match count {
            None => match members.len() {
                0 => write_null(out),
                n => write_bulk(out, &members[random_below(n)]),
            },
            Some(_) if members.is_empty() => out.extend_from_slice(EMPTY_ARRAY),
            Some(c) if c >= 0 => {
                let mut picked = members;
                let k = (c as usize).min(picked.len());
                // A partial Fisher-Yates shuffle: k distinct members.
                for i in 0..k {
                    let j = i + random_below(picked.len() - i);
                    picked.swap(i, j);
                }
                write_array_header(out, k);
                for m in &picked[..k] {
                    write_bulk(out, m);
                }
            }
            Some(c) => {
                let k = c.unsigned_abs() as usize;
                write_array_header(out, k);
                for _ in 0..k {
                    write_bulk(out, &members[random_below(members.len())]);
                }
            }
        }
    })
}

pub(super) fn hincrbyfloat<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(delta) = super::strings::parse_f64(arg(args, 3)) else {
        return write_error(cx.out, "ERR value is not a valid float");
    };
    if !delta.is_finite() {
        return write_error(cx.out, "ERR value is NaN or Infinity");
    }
    let field = arg(args, 2);
    on_key!(cx, arg(args, 1), |slot, out| {
        let r = match slot.hash_mut(true) {
            Ok(Some(h)) => {
                let current = match h.get(field) {
                    None => Ok(0.0),
                    Some(v) => super::strings::parse_f64(v).ok_or("ERR hash value is not a float"),
                };
                current
                    .and_then(|c| {
                        let new = c + delta;
                        if new.is_finite() {
                            Ok(new)
                        } else {
                            Err("ERR increment would produce NaN or Infinity")
                        }
                    })
                    .map(|new| {
                        let text = format!("{new}");
                        h.insert(field, text.as_bytes());
                        text
                    })
            }
            Ok(None) => unreachable!("created"),
            Err(e) => return write_wrongtype(out, e),
        };
        slot.drop_if_empty();
        match r {
            Ok(text) => write_bulk(out, text.as_bytes()),
            Err(msg) => write_error(out, msg),
        }
    })
}

/// HRANDFIELD key [count [WITHVALUES]]: as SRANDMEMBER, over fields.
pub(super) fn hrandfield<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    rand_pairs(cx, args, b"withvalues", |slot| {
        slot.hash()
            .map(|h| h.map(|h| h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()))
    })
}

/// ZRANDMEMBER key [count [WITHSCORES]]: as SRANDMEMBER, over members.
pub(super) fn zrandmember<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    rand_pairs(cx, args, b"withscores", |slot| {
        slot.zset().map(|z| {
            z.map(|z| {
                z.iter()
                    .map(|(m, s)| (m.to_vec(), super::zsets::fmt_score(s).into_bytes()))
                    .collect()
            })
        })
    })
}

/// The pairs (field and value, member and score) of a key, as read by
/// HRANDFIELD's and ZRANDMEMBER's `read`.
type PairsRead = Result<Option<Vec<(Vec<u8>, Vec<u8>)>>, crate::resp::store::WrongType>;

/// HRANDFIELD and ZRANDMEMBER: `key [count [flag]]` over the pairs `read`
/// gives; with `flag`, each pick is followed by its second half.
fn rand_pairs<A: AsRef<[u8]>>(
    cx: &mut Cx<'_>,
    args: &[A],
    flag: &[u8],
    read: impl FnOnce(&mut crate::resp::store::Slot<'_>) -> PairsRead,
) {
    let (count, with_values) =
        match args.len() {
            2 => (None, false),
            3 | 4 => {
                let wv = args.len() == 4;
                if wv && !arg(args, 3).eq_ignore_ascii_case(flag) {
                    return write_error(cx.out, E_SYNTAX);
                }
                match parse_i64(arg(args, 2)) {
                    Some(n) if n < -RANDOM_REPLY_MAX => return write_error(
                        cx.out,
                        "ERR value is out of range (at most 1000000 repeated members per reply)",
                    ),
                    Some(n) => (Some(n), wv),
                    None => return write_error(cx.out, E_NOT_INT),
                }
            }
            _ => return write_error(cx.out, E_SYNTAX),
        };
    on_key!(cx, arg(args, 1), |slot, out| {
        let owned = match read(slot) {
            Ok(h) => h.unwrap_or_default(),
            Err(e) => return write_wrongtype(out, e),
        };
        let fields: Vec<(&[u8], &[u8])> = owned
            .iter()
            .map(|(f, v)| (f.as_slice(), v.as_slice()))
            .collect();
        let per = if with_values { 2 } else { 1 };
        let emit = |out: &mut Vec<u8>, f: &(&[u8], &[u8])| {
            write_bulk(out, f.0);
            if with_values {
                write_bulk(out, f.1);
            }
        };
        match count {
            None => match fields.len() {
                0 => write_null(out),
                n => write_bulk(out, fields[random_below(n)].0),
            },
            Some(_) if fields.is_empty() => out.extend_from_slice(EMPTY_ARRAY),
            Some(c) if c >= 0 => {
                let mut picked = fields;
                let k = (c as usize).min(picked.len());
                for i in 0..k {
                    let j = i + random_below(picked.len() - i);
                    picked.swap(i, j);
                }
                write_array_header(out, k * per);
                for f in &picked[..k] {
                    emit(out, f);
                }
            }
            Some(c) => {
                let k = c.unsigned_abs() as usize;
                write_array_header(out, k * per);
                for _ in 0..k {
                    emit(out, &fields[random_below(fields.len())]);
                }
            }
        }
    })
}
