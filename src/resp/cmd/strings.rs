//! The string and TTL commands added beside `cmd.rs`'s core set: GETDEL,
//! GETEX, GETRANGE, SETRANGE, INCRBYFLOAT, EXPIRETIME, PEXPIRETIME, LCS.

use super::{arg, deadline, parse_i64, write_wrongtype, Cx, Unit, E_NOT_INT, E_SYNTAX, E_TOO_BIG};
use crate::codec::resp::{
    write_array_header, write_bulk, write_error, write_int, write_null, PROTO_MAX_BULK_LEN,
};
use crate::resp::store::Expiry;

pub(super) fn getdel<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| match slot.value() {
        Ok(Some(v)) => {
            write_bulk(out, v);
            slot.remove();
        }
        Ok(None) => write_null(out),
        Err(e) => write_wrongtype(out, e),
    })
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ts-ms | PERSIST].
pub(super) fn getex<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let expiry = match args.len() {
        2 => None,
        3 if arg(args, 2).eq_ignore_ascii_case(b"persist") => Some(Expiry::Persist),
        4 => {
            let opt = arg(args, 2);
            let unit = if opt.eq_ignore_ascii_case(b"ex") {
                Unit::Ex
            } else if opt.eq_ignore_ascii_case(b"px") {
                Unit::Px
            } else if opt.eq_ignore_ascii_case(b"exat") {
                Unit::ExAt
            } else if opt.eq_ignore_ascii_case(b"pxat") {
                Unit::PxAt
            } else {
                return write_error(cx.out, E_SYNTAX);
            };
            match deadline(cx.out, cx.store.now_ms(), unit, arg(args, 3), "getex") {
                Some(t) => Some(Expiry::At(t)),
                None => return,
            }
        }
        _ => return write_error(cx.out, E_SYNTAX),
    };
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        match slot.value() {
            Ok(Some(v)) => write_bulk(out, v),
            Ok(None) => return write_null(out),
            Err(e) => return write_wrongtype(out, e),
        }
        match expiry {
            Some(Expiry::At(t)) => {
                slot.set_expiry(Some(t));
            }
            Some(Expiry::Persist) => {
                slot.set_expiry(None);
            }
            _ => {}
        }
    })
}

/// The byte range `start..=end` of a `len`-byte string, Redis-style
/// (negative counts from the end); `None` when empty.
fn byte_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if len == 0 {
        return None;
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 {
        (len + end).max(0)
    } else {
        end.min(len - 1)
    };
    (start <= end && start < len).then_some((start as usize, end as usize))
}

pub(super) fn getrange<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (Some(start), Some(end)) = (parse_i64(arg(args, 2)), parse_i64(arg(args, 3))) else {
        return write_error(cx.out, E_NOT_INT);
    };
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| match slot.value() {
        Ok(v) => match v.and_then(|v| byte_range(start, end, v.len()).map(|(a, b)| &v[a..=b])) {
            Some(part) => write_bulk(out, part),
            None => write_bulk(out, b""),
        },
        Err(e) => write_wrongtype(out, e),
    })
}

pub(super) fn setrange<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let offset = match parse_i64(arg(args, 2)) {
        Some(o) if o >= 0 => o as usize,
        Some(_) => return write_error(cx.out, "ERR offset is out of range"),
        None => return write_error(cx.out, E_NOT_INT),
    };
    let value = arg(args, 3);
    if !value.is_empty() && offset + value.len() > PROTO_MAX_BULK_LEN {
        return write_error(cx.out, E_TOO_BIG);
    }
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        match slot.value() {
            Ok(Some(_)) => {}
            // An empty write to a missing key creates nothing.
            Ok(None) if value.is_empty() => return write_int(out, 0),
            Ok(None) => slot.set(b"", Expiry::Persist),
            Err(e) => return write_wrongtype(out, e),
        }
        let v = slot.value_mut().expect("a string").expect("present");
        if !value.is_empty() {
            let end = offset + value.len();
            if v.len() < end {
                v.resize(end, 0);
            }
            v[offset..end].copy_from_slice(value);
        }
        write_int(out, v.len() as i64);
    })
}

/// A float as Redis reads one (no spaces, no NaN).
pub(super) fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| !f.is_nan())
}

pub(super) fn incrbyfloat<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(delta) = parse_f64(arg(args, 2)) else {
        return write_error(cx.out, "ERR value is not a valid float");
    };
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        let current = match slot.value() {
            Ok(None) => 0.0,
            Ok(Some(v)) => match parse_f64(v) {
                Some(f) => f,
                None => return write_error(out, "ERR value is not a valid float"),
            },
            Err(e) => return write_wrongtype(out, e),
        };
        let new = current + delta;
        if !new.is_finite() {
            return write_error(out, "ERR increment would produce NaN or Infinity");
        }
        // The shortest text that reads back as the same number, without an
        // exponent (as Redis prints it).
        let text = format!("{new}");
        slot.set(text.as_bytes(), Expiry::Keep);
        write_bulk(out, text.as_bytes());
    })
}

fn expiretime_generic<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], ms: bool) {
    super::expiry_reply(
        cx,
        args,
        |t, _| if ms { t as i64 } else { (t / 1000) as i64 },
    );
}

variants! {
    expiretime => expiretime_generic(false);
    pexpiretime => expiretime_generic(true);
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest
/// common subsequence of two strings (a missing key is empty), its length,
/// or with IDX its matching ranges, last first, as Redis reports them.
pub(super) fn lcs<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let (ka, kb) = (arg(args, 1), arg(args, 2));
    // Copies, so the table is built outside the shard locks.
    let strings = cx.store.with_keys(&[ka, kb], |l| {
        let a = l.slot(ka).value().map(|v| v.unwrap_or_default().to_vec());
        let b = l.slot(kb).value().map(|v| v.unwrap_or_default().to_vec());
        a.ok().zip(b.ok())
    });
    let Some((a, b)) = strings else {
        return write_error(cx.out, "ERR The specified keys must contain string values");
    };
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0usize);
    let mut i = 3;
    while i < args.len() {
        let o = arg(args, i);
        if o.eq_ignore_ascii_case(b"idx") {
            idx = true;
        } else if o.eq_ignore_ascii_case(b"len") {
            len_only = true;
        } else if o.eq_ignore_ascii_case(b"withmatchlen") {
            with_len = true;
        } else if o.eq_ignore_ascii_case(b"minmatchlen") && i + 1 < args.len() {
            match parse_i64(arg(args, i + 1)) {
                Some(n) => min_len = n.max(0) as usize,
                None => return write_error(cx.out, E_NOT_INT),
            }
            i += 1;
        } else {
            return write_error(cx.out, E_SYNTAX);
        }
        i += 1;
    }
    if len_only && idx {
        return write_error(
            cx.out,
            "ERR If you want both the length and indexes, please just use IDX.",
        );
    }
    // The table is (|a|+1) x (|b|+1) u32 cells: bounded like any value.
    let cells = (a.len() as u128 + 1) * (b.len() as u128 + 1);
    if cells * 4 > PROTO_MAX_BULK_LEN as u128 {
        return write_error(
            cx.out,
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    let t = LcsTable::new(&a, &b);
    let total = t.at(a.len(), b.len());
    if len_only {
        return write_int(cx.out, total as i64);
    }
    let (common, matches) = t.walk(&a, &b);
    if !idx {
        return write_bulk(cx.out, &common);
    }
    let out = &mut *cx.out;
    let kept: Vec<&LcsMatch> = matches
        .iter()
        .filter(|m| min_len == 0 || m.len >= min_len)
        .collect();
    write_array_header(out, 4);
    write_bulk(out, b"matches");
    write_array_header(out, kept.len());
    for m in kept {
        write_array_header(out, if with_len { 3 } else { 2 });
        for (s, e) in [m.a, m.b] {
            write_array_header(out, 2);
            write_int(out, s as i64);
            write_int(out, e as i64);
        }
        if with_len {
            write_int(out, m.len as i64);
        }
    }
    write_bulk(out, b"len");
    write_int(out, total as i64);
}

/// One run of the common subsequence: where it is in each string
/// (inclusive byte ranges) and its length.
struct LcsMatch {
    a: (usize, usize),
    b: (usize, usize),
    len: usize,
}

/// The classic dynamic-programming table: `at(i, j)` is the length of the
/// LCS of `a[..i]` and `b[..j]`.
struct LcsTable {
    cells: Vec<u32>,
    width: usize,
}

impl LcsTable {
    fn new(a: &[u8], b: &[u8]) -> LcsTable {
        let width = b.len() + 1;
        let mut cells = vec![0u32; (a.len() + 1) * width];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                cells[i * width + j] = if a[i - 1] == b[j - 1] {
                    cells[(i - 1) * width + j - 1] + 1
                } else {
                    cells[(i - 1) * width + j].max(cells[i * width + j - 1])
                };
            }
        }
        LcsTable { cells, width }
    }

    fn at(&self, i: usize, j: usize) -> usize {
        self.cells[i * self.width + j] as usize
    }

    /// Walk back from the end: the common subsequence and its runs, last
    /// first. Ties go the way Redis's walk goes (down `b` first), so the
    /// same ranges come out.
    fn walk(&self, a: &[u8], b: &[u8]) -> (Vec<u8>, Vec<LcsMatch>) {
        let mut common = vec![0u8; self.at(a.len(), b.len())];
        let mut fill = common.len();
        let mut matches = Vec::new();
        let mut run: Option<LcsMatch> = None;
        let (mut i, mut j) = (a.len(), b.len());
        while i > 0 && j > 0 {
            if a[i - 1] == b[j - 1] {
                fill -= 1;
                common[fill] = a[i - 1];
                let m = run.get_or_insert(LcsMatch {
                    a: (i - 1, i - 1),
                    b: (j - 1, j - 1),
                    len: 0,
                });
                m.a.0 = i - 1;
                m.b.0 = j - 1;
                m.len += 1;
                i -= 1;
                j -= 1;
                // A run that reached the start of either string is done.
                if i == 0 || j == 0 {
                    matches.extend(run.take());
                }
            } else {
                if self.at(i - 1, j) > self.at(i, j - 1) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                matches.extend(run.take());
            }
        }
        (common, matches)
    }
}
