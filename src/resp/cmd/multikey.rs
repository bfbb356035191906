//! Commands over several keys: RENAME, RENAMENX, COPY, MSETNX, LMOVE,
//! RPOPLPUSH, SMOVE, SINTER, SUNION, SDIFF and their STORE forms,
//! SINTERCARD. Each locks the shards of all its keys at once
//! ([`Store::with_keys`](crate::resp::Store::with_keys), in shard order so
//! two of them cannot deadlock), so no other client sees a half-done
//! command; single-key commands keep locking one shard.

use std::borrow::Cow;
use std::collections::HashSet;

use super::collections::left_right;
use super::{arg, parse_i64, write_wrongtype, Cx, E_DB_RANGE, E_SYNTAX};
use crate::codec::resp::{write_array_header, write_bulk, write_error, write_int, write_null, OK};
use crate::resp::compact::Set;
use crate::resp::store::{Expiry, Locked, WrongType};

const E_NO_KEY: &str = "ERR no such key";
const E_SAME: &str = "ERR source and destination objects are the same";

fn rename_generic<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], nx: bool) {
    let (src, dst) = (arg(args, 1), arg(args, 2));
    let out = &mut *cx.out;
    cx.store.with_keys(&[src, dst], |l| {
        let Some(entry) = l.slot(src).take() else {
            return write_error(out, E_NO_KEY);
        };
        if nx && (src == dst || l.slot(dst).exists()) {
            l.slot(src).put(entry);
            return write_int(out, 0);
        }
        // The value keeps its TTL, as in Redis.
        l.slot(dst).put(entry);
        match nx {
            true => write_int(out, 1),
            false => out.extend_from_slice(OK),
        }
    });
    // A list arriving under a key someone waits on serves them.
    cx.store.signal(dst);
}

variants! {
    rename => rename_generic(false);
    renamenx => rename_generic(true);
}

/// COPY source destination [DB 0] [REPLACE]: the value and its TTL.
pub(super) fn copy<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (src, dst) = (arg(args, 1), arg(args, 2));
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        let opt = arg(args, i);
        if opt.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if opt.eq_ignore_ascii_case(b"db") && i + 1 < args.len() {
            i += 1;
            match parse_i64(arg(args, i)) {
                Some(0) => {}
                Some(_) => return write_error(cx.out, E_DB_RANGE),
                None => return write_error(cx.out, super::E_NOT_INT),
            }
        } else {
            return write_error(cx.out, E_SYNTAX);
        }
        i += 1;
    }
    if src == dst {
        return write_error(cx.out, E_SAME);
    }
    let out = &mut *cx.out;
    cx.store.with_keys(&[src, dst], |l| {
        let Some(entry) = l.slot(src).entry() else {
            return write_int(out, 0);
        };
        if !replace && l.slot(dst).exists() {
            return write_int(out, 0);
        }
        l.slot(dst).put(entry);
        write_int(out, 1);
    });
    cx.store.signal(dst);
}

/// MSETNX key value [key value ...]: all set, or (if any exists) none.
pub(super) fn msetnx<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    if args.len().is_multiple_of(2) {
        return super::err_arity(cx.out, "msetnx");
    }
    let keys: Vec<&[u8]> = args[1..].iter().step_by(2).map(AsRef::as_ref).collect();
    let out = &mut *cx.out;
    cx.store.with_keys(&keys, |l| {
        if keys.iter().any(|k| l.slot(k).exists()) {
            return write_int(out, 0);
        }
        for p in args[1..].chunks_exact(2) {
            l.slot(p[0].as_ref()).set(p[1].as_ref(), Expiry::Persist);
        }
        write_int(out, 1);
    })
}

/// Move one element; false (nothing written unless `nil`) if `src` is
/// empty.
fn lmove_generic(
    cx: &mut Cx<'_>,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
    nil: bool,
) -> bool {
    let out = &mut *cx.out;
    let moved = cx.store.with_keys(&[src, dst], |l| {
        // As Redis: the source first (missing or empty: nil, or block), then
        // the destination's type, before anything moves.
        let waiting = match l.slot(src).list() {
            Ok(list) => list.is_none_or(|list| list.is_empty()),
            Err(e) => {
                write_wrongtype(out, e);
                return None;
            }
        };
        if waiting {
            if nil {
                write_null(out);
            }
            return Some(false);
        }
        if let Err(e) = l.slot(dst).list() {
            write_wrongtype(out, e);
            return None;
        }
        let v = l
            .slot(src)
            .list_mut(false)
            .expect("a list")
            .and_then(|list| match from_left {
                true => list.pop_front(),
                false => list.pop_back(),
            })
            .expect("not empty");
        l.slot(src).drop_if_empty();
        let mut d = l.slot(dst);
        let list = d.list_mut(true).expect("checked above").expect("created");
        write_bulk(out, &v);
        match to_left {
            true => list.push_front(&v),
            false => list.push_back(&v),
        }
        Some(true)
    });
    if moved == Some(true) {
        cx.store.signal(dst);
    }
    moved != Some(false)
}

pub(super) fn lmove<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (Some(from), Some(to)) = (left_right(arg(args, 3)), left_right(arg(args, 4))) else {
        return write_error(cx.out, E_SYNTAX);
    };
    lmove_generic(cx, arg(args, 1), arg(args, 2), from, to, true);
}

pub(super) fn rpoplpush<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    lmove_generic(cx, arg(args, 1), arg(args, 2), false, true, true);
}

/// BLMOVE src dst LEFT|RIGHT LEFT|RIGHT timeout, and BRPOPLPUSH src dst
/// timeout: LMOVE, waiting for `src` to have an element.
fn blmove_generic(cx: &mut Cx<'_>, src: &[u8], dst: &[u8], from: bool, to: bool, t: &[u8]) {
    let Some(timeout) = super::collections::parse_timeout(cx.out, t) else {
        return;
    };
    if !lmove_generic(cx, src, dst, from, to, !cx.may_block) && cx.may_block {
        cx.block = Some((vec![src.to_vec()], timeout));
    }
}

pub(super) fn blmove<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (Some(from), Some(to)) = (left_right(arg(args, 3)), left_right(arg(args, 4))) else {
        return write_error(cx.out, E_SYNTAX);
    };
    blmove_generic(cx, arg(args, 1), arg(args, 2), from, to, arg(args, 5));
}

pub(super) fn brpoplpush<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    blmove_generic(cx, arg(args, 1), arg(args, 2), false, true, arg(args, 3));
}

pub(super) fn smove<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (src, dst, m) = (arg(args, 1), arg(args, 2), arg(args, 3));
    let out = &mut *cx.out;
    cx.store.with_keys(&[src, dst], |l| {
        if let Err(e) = l.slot(dst).set_members() {
            return write_wrongtype(out, e);
        }
        let removed = match l.slot(src).set_mut(false) {
            Ok(Some(s)) if src == dst => return write_int(out, i64::from(s.contains(m))),
            Ok(Some(s)) => s.remove(m),
            Ok(None) => false,
            Err(e) => return write_wrongtype(out, e),
        };
        if !removed {
            return write_int(out, 0);
        }
        l.slot(src).drop_if_empty();
        let mut d = l.slot(dst);
        d.set_mut(true)
            .expect("checked above")
            .expect("created")
            .insert(m);
        write_int(out, 1);
    })
}

#[derive(Clone, Copy)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

/// The result of `op` over the sets at `keys` (a missing key is an empty
/// set); WRONGTYPE if any key holds another type.
fn combine(l: &mut Locked<'_>, keys: &[&[u8]], op: SetOp) -> Result<HashSet<Vec<u8>>, WrongType> {
    // Every key's type is checked, even when the answer is known early.
    for k in keys {
        l.slot(k).set_members()?;
    }
    let mut acc: HashSet<Vec<u8>> = match l.slot(keys[0]).set_members()? {
        Some(s) => s.iter().map(Cow::into_owned).collect(),
        None => HashSet::new(),
    };
    for k in &keys[1..] {
        let slot = l.slot(k);
        let other = slot.set_members()?;
        match op {
            SetOp::Inter => match other {
                Some(o) => acc.retain(|m| o.contains(m)),
                None => acc.clear(),
            },
            SetOp::Union => {
                if let Some(o) = other {
                    acc.extend(o.iter().map(Cow::into_owned));
                }
            }
            SetOp::Diff => {
                if let Some(o) = other {
                    acc.retain(|m| !o.contains(m));
                }
            }
        }
    }
    Ok(acc)
}

fn set_op<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], op: SetOp) {
    let keys: Vec<&[u8]> = args[1..].iter().map(AsRef::as_ref).collect();
    let out = &mut *cx.out;
    cx.store.with_keys(&keys, |l| match combine(l, &keys, op) {
        Ok(set) => {
            write_array_header(out, set.len());
            for m in &set {
                write_bulk(out, m);
            }
        }
        Err(e) => write_wrongtype(out, e),
    })
}

fn set_op_store<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], op: SetOp) {
    let dst = arg(args, 1);
    let keys: Vec<&[u8]> = args[2..].iter().map(AsRef::as_ref).collect();
    let mut all = keys.clone();
    all.push(dst);
    let out = &mut *cx.out;
    cx.store.with_keys(&all, |l| match combine(l, &keys, op) {
        Ok(set) => {
            let n = set.len();
            // The destination is replaced whatever it held.
            let mut d = l.slot(dst);
            d.remove();
            if n > 0 {
                *d.set_mut(true).expect("removed").expect("created") = Set::from_members(set);
            }
            write_int(out, n as i64);
        }
        Err(e) => write_wrongtype(out, e),
    })
}

variants! {
    sinter => set_op(SetOp::Inter);
    sunion => set_op(SetOp::Union);
    sdiff => set_op(SetOp::Diff);
}

variants! {
    sinterstore => set_op_store(SetOp::Inter);
    sunionstore => set_op_store(SetOp::Union);
    sdiffstore => set_op_store(SetOp::Diff);
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit].
pub(super) fn sintercard<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let n = match parse_i64(arg(args, 1)) {
        Some(n) if n > 0 => n as usize,
        Some(_) => return write_error(cx.out, "ERR numkeys should be greater than 0"),
        None => return write_error(cx.out, "ERR numkeys should be greater than 0"),
    };
    if n > args.len() - 2 {
        return write_error(
            cx.out,
            "ERR Number of keys can't be greater than number of args",
        );
    }
    let mut limit = 0usize;
    let rest = &args[2 + n..];
    match rest.len() {
        0 => {}
        2 if rest[0].as_ref().eq_ignore_ascii_case(b"limit") => match parse_i64(rest[1].as_ref()) {
            Some(v) if v >= 0 => limit = v as usize,
            _ => return write_error(cx.out, "ERR LIMIT can't be negative"),
        },
        _ => return write_error(cx.out, E_SYNTAX),
    }
    let keys: Vec<&[u8]> = args[2..2 + n].iter().map(AsRef::as_ref).collect();
    let out = &mut *cx.out;
    cx.store
        .with_keys(&keys, |l| match combine(l, &keys, SetOp::Inter) {
            Ok(set) => {
                let c = if limit > 0 {
                    set.len().min(limit)
                } else {
                    set.len()
                };
                write_int(out, c as i64);
            }
            Err(e) => write_wrongtype(out, e),
        })
}
