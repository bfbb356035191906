//! The string and TTL commands added beside `cmd.rs`'s core set: GETDEL,
//! GETEX, GETRANGE, SETRANGE, INCRBYFLOAT, EXPIRETIME, PEXPIRETIME.

use super::{arg, deadline, parse_i64, write_wrongtype, Cx, Unit, E_NOT_INT, E_SYNTAX, E_TOO_BIG};
use crate::codec::resp::{write_bulk, write_error, write_int, write_null, PROTO_MAX_BULK_LEN};
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
