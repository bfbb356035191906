//! Sorted-set commands: ZADD (NX/XX/GT/LT/CH/INCR), ZREM, ZSCORE, ZMSCORE,
//! ZINCRBY, ZCARD, ZCOUNT, ZRANK, ZREVRANK, ZRANGE (by rank or BYSCORE,
//! REV, LIMIT, WITHSCORES), ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZREVRANGE,
//! ZPOPMIN, ZPOPMAX, ZMPOP and the blocking BZPOPMIN, BZPOPMAX, BZMPOP,
//! ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZRANGESTORE, ZUNION, ZINTER, ZDIFF
//! and their STORE forms (WEIGHTS, AGGREGATE; plain sets count with score
//! 1), ZINTERCARD, on the skip list of `resp::zset` (O(log n) rank, score
//! lookups and counts).

use std::collections::HashMap;

use super::collections::{block_on, parse_mpop, parse_timeout};
use super::{arg, parse_i64, write_wrongtype, Cx, E_NOT_INT, E_SYNTAX};
use crate::codec::resp::{
    write_array_header, write_bulk, write_error, write_int, write_null, write_null_array,
    EMPTY_ARRAY,
};
use crate::resp::store::Slot;
use crate::resp::zset::{Bound, LexBound, ZSet};

const E_FLOAT: &str = "ERR value is not a valid float";
const E_RANGE: &str = "ERR min or max is not a float";
const E_LEX: &str = "ERR min or max not valid string range item";

/// A score as Redis reads one: a float, or `inf`/`+inf`/`-inf`; never NaN.
fn parse_score(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => return Some(f64::INFINITY),
        "-inf" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| !f.is_nan())
}

/// A range bound: `score`, `(score` (exclusive), `-inf`, `+inf`.
fn parse_bound(b: &[u8]) -> Option<Bound> {
    match b.strip_prefix(b"(") {
        Some(rest) => parse_score(rest).map(|value| Bound {
            value,
            exclusive: true,
        }),
        None => parse_score(b).map(|value| Bound {
            value,
            exclusive: false,
        }),
    }
}

/// A score as a reply: the shortest text that reads back as the same
/// double (`inf`, `-inf` for the infinities; exponent form, C style, for
/// very large or small magnitudes).
pub(super) fn fmt_score(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-5..1e17).contains(&a) {
        let e = format!("{f:e}");
        // Rust's "1.5e-7" as C's "1.5e-07".
        if let Some((m, x)) = e.split_once('e') {
            let (sign, digits) = match x.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', x),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
        return e;
    }
    format!("{f}")
}

fn write_score(out: &mut Vec<u8>, f: f64) {
    write_bulk(out, fmt_score(f).as_bytes());
}

/// Members (and, with `scores`, their scores) as one array.
fn write_members(out: &mut Vec<u8>, items: &[(&[u8], f64)], scores: bool) {
    write_array_header(out, items.len() * if scores { 2 } else { 1 });
    for (m, s) in items {
        write_bulk(out, m);
        if scores {
            write_score(out, *s);
        }
    }
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub(super) fn zadd<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let o = arg(args, i);
        match o.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            b"ch" => ch = true,
            b"incr" => incr = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return write_error(cx.out, E_SYNTAX);
    }
    if nx && xx {
        return write_error(
            cx.out,
            "ERR XX and NX options at the same time are not compatible",
        );
    }
    if (gt && lt) || (nx && (gt || lt)) {
        return write_error(
            cx.out,
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        );
    }
    if incr && pairs.len() != 2 {
        return write_error(
            cx.out,
            "ERR INCR option supports a single increment-element pair",
        );
    }
    let mut items = Vec::with_capacity(pairs.len() / 2);
    for p in pairs.chunks_exact(2) {
        match parse_score(p[0].as_ref()) {
            Some(s) => items.push((s, p[1].as_ref())),
            None => return write_error(cx.out, E_FLOAT),
        }
    }
    let out = &mut *cx.out;
    let added = cx.store.with_key(arg(args, 1), |slot| {
        let exists = match slot.zset() {
            Ok(z) => z.is_some(),
            Err(e) => {
                write_wrongtype(out, e);
                return 0;
            }
        };
        if !exists && xx {
            match incr {
                true => write_null(out),
                false => write_int(out, 0),
            }
            return 0;
        }
        let z = slot.zset_mut(true).expect("checked").expect("created");
        let (mut added, mut changed) = (0, 0);
        let mut incr_result = None;
        for (score, member) in items {
            let old = z.score(member);
            let new = match (incr, old) {
                (true, Some(o)) => o + score,
                _ => score,
            };
            if new.is_nan() {
                write_error(out, "ERR resulting score is not a number (NaN)");
                slot.drop_if_empty();
                return 0;
            }
            let allowed = match old {
                None => !xx,
                Some(o) => !nx && (!gt || new > o) && (!lt || new < o),
            };
            if !allowed {
                continue;
            }
            if old != Some(new) {
                z.insert(member, new);
                if old.is_none() {
                    added += 1;
                }
                changed += 1;
            }
            incr_result = Some(new);
        }
        slot.drop_if_empty();
        if incr {
            match incr_result {
                Some(s) => write_score(out, s),
                None => write_null(out),
            }
        } else {
            write_int(out, if ch { changed } else { added });
        }
        added
    });
    // A new member may be what a BZPOPMIN waits for.
    if added > 0 {
        cx.store.signal(arg(args, 1));
    }
}

pub(super) fn zincrby<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(delta) = parse_score(arg(args, 2)) else {
        return write_error(cx.out, E_FLOAT);
    };
    let (key, member) = (arg(args, 1), arg(args, 3));
    let mut signal = false;
    let out = &mut *cx.out;
    cx.store.with_key(key, |slot| {
        let z = match slot.zset_mut(true) {
            Ok(z) => z.expect("created"),
            Err(e) => return write_wrongtype(out, e),
        };
        let new = z.score(member).unwrap_or(0.0) + delta;
        let added = if new.is_nan() {
            write_error(out, "ERR resulting score is not a number (NaN)");
            false
        } else {
            write_score(out, new);
            z.insert(member, new).is_none()
        };
        slot.drop_if_empty();
        if added {
            signal = true;
        }
    });
    if signal {
        cx.store.signal(key);
    }
}

/// Run `f` on the key's sorted set (absent: `None`), or reply WRONGTYPE.
fn with_zset<A: AsRef<[u8]>>(
    cx: &mut Cx<'_>,
    args: &[A],
    f: impl FnOnce(&mut Vec<u8>, Option<&ZSet>),
) {
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| match slot.zset() {
        Ok(z) => f(out, z),
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn zrem<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        let n = match slot.zset_mut(false) {
            Ok(Some(z)) => args[2..]
                .iter()
                .filter(|m| z.remove(m.as_ref()).is_some())
                .count(),
            Ok(None) => 0,
            Err(e) => return write_wrongtype(out, e),
        };
        slot.drop_if_empty();
        write_int(out, n as i64);
    })
}

pub(super) fn zscore<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let m = arg(args, 2);
    with_zset(cx, args, |out, z| match z.and_then(|z| z.score(m)) {
        Some(s) => write_score(out, s),
        None => write_null(out),
    })
}

pub(super) fn zmscore<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    with_zset(cx, args, |out, z| {
        write_array_header(out, args.len() - 2);
        for m in &args[2..] {
            match z.and_then(|z| z.score(m.as_ref())) {
                Some(s) => write_score(out, s),
                None => write_null(out),
            }
        }
    })
}

pub(super) fn zcard<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    with_zset(cx, args, |out, z| {
        write_int(out, z.map_or(0, ZSet::len) as i64)
    })
}

pub(super) fn zcount<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (Some(min), Some(max)) = (parse_bound(arg(args, 2)), parse_bound(arg(args, 3))) else {
        return write_error(cx.out, E_RANGE);
    };
    with_zset(cx, args, |out, z| {
        write_int(out, z.map_or(0, |z| z.count(min, max)) as i64)
    })
}

fn rank_generic<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], rev: bool) {
    let m = arg(args, 2);
    with_zset(cx, args, |out, z| {
        match z.and_then(|z| z.rank(m).map(|r| (r, z.len()))) {
            Some((r, n)) => write_int(out, if rev { n - 1 - r } else { r } as i64),
            None => write_null(out),
        }
    })
}

variants! {
    zrank => rank_generic(false);
    zrevrank => rank_generic(true);
}

/// Redis's rank range: negative from the end, clamped.
fn rank_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let n = len as i64;
    let start = if start < 0 { (n + start).max(0) } else { start };
    let stop = if stop < 0 { n + stop } else { stop.min(n - 1) };
    (start <= stop && start < n).then_some((start as usize, stop as usize))
}

/// What a ZRANGE-family command asks.
struct RangeQuery {
    by_score: bool,
    by_lex: bool,
    rev: bool,
    scores: bool,
    limit: Option<(usize, Option<usize>)>,
}

/// A parsed ZRANGE-family range.
enum Select {
    Rank(i64, i64),
    Score(Bound, Bound),
    Lex(LexBound, LexBound),
}

impl RangeQuery {
    /// The range from its raw arguments `lo`, `hi` (ranks, score bounds or
    /// lex bounds; for REV score and lex ranges as given: max first), or
    /// the error to reply.
    fn select(&self, lo: &[u8], hi: &[u8]) -> Result<Select, &'static str> {
        let (lo, hi) = match self.rev && (self.by_score || self.by_lex) {
            true => (hi, lo),
            false => (lo, hi),
        };
        if self.by_lex {
            match (LexBound::parse(lo), LexBound::parse(hi)) {
                (Some(a), Some(b)) => Ok(Select::Lex(a, b)),
                _ => Err(E_LEX),
            }
        } else if self.by_score {
            match (parse_bound(lo), parse_bound(hi)) {
                (Some(a), Some(b)) => Ok(Select::Score(a, b)),
                _ => Err(E_RANGE),
            }
        } else if self.limit.is_some() {
            Err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        } else {
            match (parse_i64(lo), parse_i64(hi)) {
                (Some(a), Some(b)) => Ok(Select::Rank(a, b)),
                _ => Err(E_NOT_INT),
            }
        }
    }

    /// The members (with scores) `sel` picks from `z`, in reply order.
    fn items<'z>(&self, z: &'z ZSet, sel: &Select) -> Vec<(&'z [u8], f64)> {
        let (offset, count) = self.limit.unwrap_or((0, None));
        match sel {
            Select::Rank(a, b) => match rank_range(*a, *b, z.len()) {
                Some((a, b)) => z.range_by_rank(a, b, self.rev),
                None => Vec::new(),
            },
            Select::Score(min, max) => z.range_by_score(*min, *max, self.rev, offset, count),
            Select::Lex(min, max) => z.range_by_lex(min, max, self.rev, offset, count),
        }
    }
}

/// The shared tail of the ZRANGE family: `lo`/`hi` are the raw range
/// arguments.
fn range_reply<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], lo: &[u8], hi: &[u8], q: RangeQuery) {
    let sel = match q.select(lo, hi) {
        Ok(sel) => sel,
        Err(e) => return write_error(cx.out, e),
    };
    with_zset(cx, args, |out, z| match z {
        Some(z) => write_members(out, &q.items(z, &sel), q.scores),
        None => out.extend_from_slice(EMPTY_ARRAY),
    })
}

/// Parse `[WITHSCORES] [LIMIT offset count]` (WITHSCORES unless
/// `store`) and the ZRANGE words (with `zrange`; each once, one of BYSCORE
/// and BYLEX) from `opts`; `None` (after replying) on a bad option.
fn parse_opts<A: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    opts: &[A],
    q: &mut RangeQuery,
    zrange: bool,
    store: bool,
) -> Option<()> {
    let mut i = 0;
    while i < opts.len() {
        let o = opts[i].as_ref().to_ascii_lowercase();
        let by_any = q.by_score || q.by_lex;
        match o.as_slice() {
            b"withscores" if !store => q.scores = true,
            b"byscore" if zrange && !by_any => q.by_score = true,
            b"bylex" if zrange && !by_any => q.by_lex = true,
            b"rev" if zrange && !q.rev => q.rev = true,
            b"limit" if i + 2 < opts.len() => {
                let (Some(off), Some(cnt)) = (
                    parse_i64(opts[i + 1].as_ref()),
                    parse_i64(opts[i + 2].as_ref()),
                ) else {
                    write_error(out, E_NOT_INT);
                    return None;
                };
                // A negative offset gives nothing; a negative count, all.
                let off = if off < 0 { usize::MAX } else { off as usize };
                let cnt = (cnt >= 0).then_some(cnt as usize);
                q.limit = Some((off, cnt));
                i += 2;
            }
            _ => {
                write_error(out, E_SYNTAX);
                return None;
            }
        }
        i += 1;
    }
    Some(())
}

/// ZRANGE key start stop [BYSCORE] [REV] [LIMIT offset count] [WITHSCORES]
/// The ZRANGE family: options parsed onto `q` (the ZRANGE words only for
/// ZRANGE itself), then the range answered.
fn range_cmd<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], mut q: RangeQuery, zrange: bool) {
    if parse_opts(cx.out, &args[4..], &mut q, zrange, false).is_none() {
        return;
    }
    if q.by_lex && q.scores {
        let msg = match zrange {
            true => "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
            false => E_SYNTAX,
        };
        return write_error(cx.out, msg);
    }
    range_reply(cx, args, arg(args, 2), arg(args, 3), q);
}

impl RangeQuery {
    fn new(by_score: bool, by_lex: bool, rev: bool) -> RangeQuery {
        RangeQuery {
            by_score,
            by_lex,
            rev,
            scores: false,
            limit: None,
        }
    }
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]:
/// the range ZRANGE would answer, stored at `dst` (replacing what it held;
/// deleted if the range is empty); the reply is its size.
pub(super) fn zrangestore<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let mut q = RangeQuery::new(false, false, false);
    if parse_opts(cx.out, &args[5..], &mut q, true, true).is_none() {
        return;
    }
    let sel = match q.select(arg(args, 3), arg(args, 4)) {
        Ok(sel) => sel,
        Err(e) => return write_error(cx.out, e),
    };
    let (dst, src) = (arg(args, 1), arg(args, 2));
    let out = &mut *cx.out;
    let stored = cx.store.with_keys(&[dst, src], |l| {
        let mut range = ZSet::new();
        match l.slot(src).zset() {
            Ok(Some(z)) => {
                for (m, s) in q.items(z, &sel) {
                    range.insert(m, s);
                }
            }
            Ok(None) => {}
            Err(e) => {
                write_wrongtype(out, e);
                return 0;
            }
        }
        let n = store_zset(&mut l.slot(dst), range);
        write_int(out, n as i64);
        n
    });
    if stored > 0 {
        cx.store.signal(dst);
    }
}

/// Replace whatever `slot` holds with `z` (nothing, if `z` is empty, as
/// Redis keeps no empty sorted set); its size.
fn store_zset(slot: &mut Slot<'_>, z: ZSet) -> usize {
    let n = z.len();
    slot.remove();
    if n > 0 {
        *slot.zset_mut(true).expect("removed").expect("created") = z;
    }
    n
}

variants! {
    zrange => range_cmd(RangeQuery::new(false, false, false), true);
    zrevrange => range_cmd(RangeQuery::new(false, false, true), false);
    zrangebyscore => range_cmd(RangeQuery::new(true, false, false), false);
    zrevrangebyscore => range_cmd(RangeQuery::new(true, false, true), false);
    zrangebylex => range_cmd(RangeQuery::new(false, true, false), false);
    zrevrangebylex => range_cmd(RangeQuery::new(false, true, true), false);
}

fn pop_generic<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], max: bool) {
    let Some(count) = super::collections::pop_count(cx.out, args) else {
        return;
    };
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        let popped = match slot.zset_mut(false) {
            Ok(Some(z)) => z.pop(count.unwrap_or(1), max),
            Ok(None) => Vec::new(),
            Err(e) => return write_wrongtype(out, e),
        };
        slot.drop_if_empty();
        write_array_header(out, popped.len() * 2);
        for (m, s) in &popped {
            write_bulk(out, m);
            write_score(out, *s);
        }
    })
}

variants! {
    zpopmin => pop_generic(false);
    zpopmax => pop_generic(true);
}

/// Pop from the first of `keys` holding a sorted set (at its low end, or
/// high with `max`). Without a `count`, BZPOPMIN's reply `[key, member,
/// score]`; with one, ZMPOP's `[key, [[member, score] ...]]`. False, with
/// nothing written, if none holds one; WRONGTYPE for the first key of
/// another type met before that.
fn pop_first<A: AsRef<[u8]>>(cx: &mut Cx<'_>, keys: &[A], max: bool, count: Option<usize>) -> bool {
    let retrying = cx.retrying;
    keys.iter().any(|k| {
        let k = k.as_ref();
        let out = &mut *cx.out;
        cx.store.with_key(k, |slot| {
            match slot.zset() {
                Ok(Some(_)) => {}
                Ok(None) => return false,
                Err(_) if retrying => return false,
                Err(e) => {
                    write_wrongtype(out, e);
                    return true;
                }
            }
            let z = slot.zset_mut(false).expect("checked").expect("present");
            let popped = z.pop(count.unwrap_or(1), max);
            slot.drop_if_empty();
            write_array_header(out, if count.is_some() { 2 } else { 3 });
            write_bulk(out, k);
            if count.is_some() {
                write_array_header(out, popped.len());
            }
            for (m, s) in &popped {
                if count.is_some() {
                    write_array_header(out, 2);
                }
                write_bulk(out, m);
                write_score(out, *s);
            }
            true
        })
    })
}

/// MIN or MAX: true for MAX.
fn min_max(word: &[u8]) -> Option<bool> {
    super::collections::either_word(word, b"max", b"min")
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]: nil if every key is
/// empty.
pub(super) fn zmpop<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some((keys, max, count)) = parse_mpop(cx.out, args, 1, min_max) else {
        return;
    };
    if !pop_first(cx, keys, max, Some(count)) {
        write_null_array(cx.out);
    }
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: ZMPOP,
/// waiting for one of the keys to get members.
pub(super) fn bzmpop<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some((keys, max, count)) = parse_mpop(cx.out, args, 2, min_max) else {
        return;
    };
    let Some(timeout) = parse_timeout(cx.out, arg(args, 1)) else {
        return;
    };
    if !pop_first(cx, keys, max, Some(count)) {
        block_on(cx, keys, timeout);
    }
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout.
fn bzpop<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], max: bool) {
    let Some(timeout) = parse_timeout(cx.out, arg(args, args.len() - 1)) else {
        return;
    };
    let keys = &args[1..args.len() - 1];
    if !pop_first(cx, keys, max, None) {
        block_on(cx, keys, timeout);
    }
}

variants! {
    bzpopmin => bzpop(false);
    bzpopmax => bzpop(true);
}

/// How ZREMRANGEBY* selects what to remove.
#[derive(Clone, Copy)]
enum RemBy {
    Rank,
    Score,
    Lex,
}

/// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX key min max.
fn remrange<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], by: RemBy) {
    enum Sel {
        Rank(i64, i64),
        Score(Bound, Bound),
        Lex(LexBound, LexBound),
    }
    let (lo, hi) = (arg(args, 2), arg(args, 3));
    let sel = match by {
        RemBy::Rank => match (parse_i64(lo), parse_i64(hi)) {
            (Some(a), Some(b)) => Sel::Rank(a, b),
            _ => return write_error(cx.out, E_NOT_INT),
        },
        RemBy::Score => match (parse_bound(lo), parse_bound(hi)) {
            (Some(a), Some(b)) => Sel::Score(a, b),
            _ => return write_error(cx.out, E_RANGE),
        },
        RemBy::Lex => match (LexBound::parse(lo), LexBound::parse(hi)) {
            (Some(a), Some(b)) => Sel::Lex(a, b),
            _ => return write_error(cx.out, E_LEX),
        },
    };
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        let n = match slot.zset_mut(false) {
            Ok(Some(z)) => {
                let doomed: Vec<Vec<u8>> = match &sel {
                    Sel::Score(a, b) => z.range_by_score(*a, *b, false, 0, None),
                    Sel::Lex(a, b) => z.range_by_lex(a, b, false, 0, None),
                    Sel::Rank(a, b) => match rank_range(*a, *b, z.len()) {
                        Some((a, b)) => z.range_by_rank(a, b, false),
                        None => Vec::new(),
                    },
                }
                .into_iter()
                .map(|(m, _)| m.to_vec())
                .collect();
                for m in &doomed {
                    z.remove(m);
                }
                doomed.len()
            }
            Ok(None) => 0,
            Err(e) => return write_wrongtype(out, e),
        };
        slot.drop_if_empty();
        write_int(out, n as i64);
    })
}

variants! {
    zremrangebyrank => remrange(RemBy::Rank);
    zremrangebyscore => remrange(RemBy::Score);
    zremrangebylex => remrange(RemBy::Lex);
}

/// Which combination of sorted sets (or plain sets, whose members count
/// with score 1) a command computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ZOp {
    Union,
    Inter,
    /// The first input's members found in no other input, with their
    /// scores (no WEIGHTS or AGGREGATE).
    Diff,
}

/// What a combining command does with the result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ZEmit {
    /// Answer it (ZUNION, ZINTER, ZDIFF; WITHSCORES allowed).
    Reply,
    /// Store it at `args[1]` and answer its size (the STORE forms).
    Store,
    /// Answer its size only (ZINTERCARD; LIMIT allowed, nothing else).
    Card,
}

/// The options after the keys of a combining command.
struct ZOpts {
    weights: Vec<f64>,
    agg: Agg,
    with_scores: bool,
    /// ZINTERCARD's LIMIT (0: none).
    limit: usize,
}

/// Parse the options after `n` keys (`opts`), as Redis does: the error
/// text to reply on a bad one.
fn parse_zopts<A: AsRef<[u8]>>(
    opts: &[A],
    n: usize,
    op: ZOp,
    emit: ZEmit,
) -> Result<ZOpts, &'static str> {
    let mut o = ZOpts {
        weights: vec![1.0; n],
        agg: Agg::Sum,
        with_scores: false,
        limit: 0,
    };
    let full = op != ZOp::Diff && emit != ZEmit::Card;
    let mut i = 0;
    while i < opts.len() {
        let word = opts[i].as_ref();
        let left = opts.len() - i;
        if full && left > n && word.eq_ignore_ascii_case(b"weights") {
            for (j, w) in o.weights.iter_mut().enumerate() {
                *w = parse_score(opts[i + 1 + j].as_ref())
                    .ok_or("ERR weight value is not a float")?;
            }
            i += 1 + n;
        } else if full && left >= 2 && word.eq_ignore_ascii_case(b"aggregate") {
            o.agg = match opts[i + 1].as_ref().to_ascii_lowercase().as_slice() {
                b"sum" => Agg::Sum,
                b"min" => Agg::Min,
                b"max" => Agg::Max,
                _ => return Err(E_SYNTAX),
            };
            i += 2;
        } else if emit == ZEmit::Reply && word.eq_ignore_ascii_case(b"withscores") {
            o.with_scores = true;
            i += 1;
        } else if emit == ZEmit::Card && left >= 2 && word.eq_ignore_ascii_case(b"limit") {
            o.limit = match parse_i64(opts[i + 1].as_ref()) {
                Some(v) if v >= 0 => v as usize,
                _ => return Err("ERR LIMIT can't be negative"),
            };
            i += 2;
        } else {
            return Err(E_SYNTAX);
        }
    }
    Ok(o)
}

/// ZUNION, ZINTER, ZDIFF numkeys key [key ...] [...] [WITHSCORES], their
/// STORE forms (`dest numkeys key ...`) and ZINTERCARD numkeys key [key
/// ...] [LIMIT limit]; inputs may be sets (members score 1), a missing key
/// is empty. As in Redis, the keys' types are checked before the options.
fn zcombine<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], op: ZOp, emit: ZEmit) {
    let base = if emit == ZEmit::Store { 2 } else { 1 };
    let n = match parse_i64(arg(args, base)) {
        Some(n) if n > 0 => n as usize,
        Some(_) => {
            let name = arg(args, 0).to_ascii_lowercase();
            let msg = format!(
                "ERR at least 1 input key is needed for '{}' command",
                String::from_utf8_lossy(&name)
            );
            return write_error(cx.out, &msg);
        }
        None => return write_error(cx.out, E_NOT_INT),
    };
    if n > args.len() - base - 1 {
        return write_error(cx.out, E_SYNTAX);
    }
    let keys: Vec<&[u8]> = args[base + 1..base + 1 + n]
        .iter()
        .map(AsRef::as_ref)
        .collect();
    let opts = parse_zopts(&args[base + 1 + n..], n, op, emit);
    let dst = arg(args, 1);
    let mut all = keys.clone();
    if emit == ZEmit::Store {
        all.push(dst);
    }
    let out = &mut *cx.out;
    let stored = cx.store.with_keys(&all, |l| {
        // Each input as (member, score) pairs.
        let mut inputs: Vec<Vec<(Vec<u8>, f64)>> = Vec::with_capacity(n);
        for k in &keys {
            let slot = l.slot(k);
            let items = match (slot.zset(), slot.set_members()) {
                (Ok(Some(z)), _) => z.iter().map(|(m, s)| (m.to_vec(), s)).collect(),
                (_, Ok(Some(s))) => s.iter().map(|m| (m.into_owned(), 1.0)).collect(),
                (Ok(None), _) => Vec::new(),
                (Err(e), _) => {
                    write_wrongtype(out, e);
                    return 0;
                }
            };
            inputs.push(items);
        }
        let opts = match &opts {
            Ok(o) => o,
            Err(e) => {
                write_error(out, e);
                return 0;
            }
        };
        let result = match op {
            ZOp::Diff => difference(inputs),
            ZOp::Union | ZOp::Inter => union_or_inter(inputs, op == ZOp::Inter, opts),
        };
        match emit {
            ZEmit::Reply => {
                let items: Vec<(&[u8], f64)> = result.iter().collect();
                write_members(out, &items, opts.with_scores);
                0
            }
            ZEmit::Card => {
                let c = match opts.limit {
                    0 => result.len(),
                    limit => result.len().min(limit),
                };
                write_int(out, c as i64);
                0
            }
            ZEmit::Store => {
                let n = store_zset(&mut l.slot(dst), result);
                write_int(out, n as i64);
                n
            }
        }
    });
    if stored > 0 {
        cx.store.signal(dst);
    }
}

/// The union (or, with `inter`, the intersection) of `inputs`, each
/// input's scores weighted and equal members' scores aggregated.
fn union_or_inter(inputs: Vec<Vec<(Vec<u8>, f64)>>, inter: bool, o: &ZOpts) -> ZSet {
    let n = inputs.len();
    let mut acc: HashMap<Vec<u8>, (f64, usize)> = HashMap::new();
    for (j, items) in inputs.into_iter().enumerate() {
        for (m, s) in items {
            let v = s * o.weights[j];
            // 0 * inf is NaN in IEEE; Redis takes it as 0.
            let v = if v.is_nan() { 0.0 } else { v };
            acc.entry(m)
                .and_modify(|(cur, seen)| {
                    *cur = o.agg.apply(*cur, v);
                    *seen += 1;
                })
                .or_insert((v, 1));
        }
    }
    let mut result = ZSet::new();
    for (m, (s, seen)) in acc {
        if !inter || seen == n {
            result.insert(&m, s);
        }
    }
    result
}

/// The members of the first input in none of the others, with their
/// scores.
fn difference(mut inputs: Vec<Vec<(Vec<u8>, f64)>>) -> ZSet {
    let first = inputs.remove(0);
    let others: std::collections::HashSet<Vec<u8>> =
        inputs.into_iter().flatten().map(|(m, _)| m).collect();
    let mut result = ZSet::new();
    for (m, s) in first {
        if !others.contains(&m) {
            result.insert(&m, s);
        }
    }
    result
}

#[derive(Clone, Copy)]
enum Agg {
    Sum,
    Min,
    Max,
}

impl Agg {
    fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            Agg::Sum => {
                let s = a + b;
                if s.is_nan() {
                    0.0
                } else {
                    s
                }
            }
            Agg::Min => a.min(b),
            Agg::Max => a.max(b),
        }
    }
}

variants! {
    zunionstore => zcombine(ZOp::Union, ZEmit::Store);
    zinterstore => zcombine(ZOp::Inter, ZEmit::Store);
    zdiffstore => zcombine(ZOp::Diff, ZEmit::Store);
    zunion => zcombine(ZOp::Union, ZEmit::Reply);
    zinter => zcombine(ZOp::Inter, ZEmit::Reply);
    zdiff => zcombine(ZOp::Diff, ZEmit::Reply);
    zintercard => zcombine(ZOp::Inter, ZEmit::Card);
}

pub(super) fn zlexcount<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (Some(min), Some(max)) = (LexBound::parse(arg(args, 2)), LexBound::parse(arg(args, 3)))
    else {
        return write_error(cx.out, E_LEX);
    };
    with_zset(cx, args, |out, z| {
        write_int(out, z.map_or(0, |z| z.lex_count(&min, &max)) as i64)
    })
}
