//! Bit operations on string values: SETBIT, GETBIT, BITCOUNT, BITPOS
//! (byte or bit ranges) and BITOP AND/OR/XOR/NOT. Bit 0 is the most
//! significant bit of the first byte, as in Redis; a missing key reads as
//! an empty string, i.e. all zero bits.

use super::{arg, parse_i64, write_wrongtype, Cx, E_NOT_INT, E_SYNTAX};
use crate::codec::resp::{write_error, write_int, PROTO_MAX_BULK_LEN};
use crate::resp::store::Expiry;

const E_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const E_BIT: &str = "ERR bit is not an integer or out of range";

/// A bit offset as Redis takes one: `0 ..= 2^32 - 1`, so that SETBIT never
/// grows a string past proto-max-bulk-len (512 MiB).
fn bit_offset(raw: &[u8]) -> Option<u64> {
    parse_i64(raw)
        .filter(|&o| o >= 0 && ((o >> 3) as u64) < PROTO_MAX_BULK_LEN as u64)
        .map(|o| o as u64)
}

/// The byte holding bit `offset`, and that bit's mask in it.
fn locate(offset: u64) -> (usize, u8) {
    ((offset >> 3) as usize, 0x80 >> (offset & 7))
}

/// SETBIT key offset 0|1: the bit's old value; the string grows (zero
/// filled) to reach the offset.
pub(super) fn setbit<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(offset) = bit_offset(arg(args, 2)) else {
        return write_error(cx.out, E_OFFSET);
    };
    let on = match parse_i64(arg(args, 3)) {
        Some(0) => false,
        Some(1) => true,
        _ => return write_error(cx.out, E_BIT),
    };
    let (byte, mask) = locate(offset);
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        match slot.value() {
            Ok(Some(_)) => {}
            Ok(None) => slot.set(b"", Expiry::Persist),
            Err(e) => return write_wrongtype(out, e),
        }
        let v = slot.value_mut().expect("a string").expect("present");
        if v.len() <= byte {
            v.resize(byte + 1, 0);
        }
        let old = v[byte] & mask != 0;
        if on {
            v[byte] |= mask;
        } else {
            v[byte] &= !mask;
        }
        write_int(out, i64::from(old));
    })
}

/// GETBIT key offset: 0 past the end of the string (or without a key).
pub(super) fn getbit<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let Some(offset) = bit_offset(arg(args, 2)) else {
        return write_error(cx.out, E_OFFSET);
    };
    let (byte, mask) = locate(offset);
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| match slot.value() {
        Ok(v) => {
            let set = v.and_then(|v| v.get(byte)).is_some_and(|b| b & mask != 0);
            write_int(out, i64::from(set));
        }
        Err(e) => write_wrongtype(out, e),
    })
}

/// Whether a range counts bytes (the default) or bits: `BYTE` or `BIT`.
fn parse_unit(raw: &[u8]) -> Option<bool> {
    super::collections::either_word(raw, b"bit", b"byte")
}

/// Redis's range arithmetic over a string of `len` bytes: `start` and
/// `end` in bytes, or bits with `bits`, negative from the end, clamped.
/// The inclusive range in bits, `None` if empty.
fn bit_span(start: i64, end: i64, len: usize, bits: bool) -> Option<(u64, u64)> {
    let total = if bits { len as i64 * 8 } else { len as i64 };
    let norm = |i: i64| if i < 0 { (total + i).max(0) } else { i };
    let (start, end) = (norm(start), norm(end).min(total - 1));
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(match bits {
        true => (start, end),
        false => (start * 8, end * 8 + 7),
    })
}

/// The set bits of `v` within the inclusive bit range `lo..=hi`.
fn count_ones(v: &[u8], lo: u64, hi: u64) -> u64 {
    let (first, last) = ((lo >> 3) as usize, (hi >> 3) as usize);
    let whole: u64 = v[first..=last]
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    // Take off the bits of the edge bytes that are outside the range.
    let before = v[first] & !(0xffu8 >> (lo & 7));
    let after = v[last] & (0x7fu8 >> (hi & 7));
    whole - u64::from(before.count_ones()) - u64::from(after.count_ones())
}

/// BITCOUNT key [start end [BYTE|BIT]]. As in Redis the key is looked up
/// before the arguments are read: a missing key answers 0 whatever they
/// are.
pub(super) fn bitcount<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        let v = match slot.value() {
            Ok(Some(v)) => v,
            Ok(None) => return write_int(out, 0),
            Err(e) => return write_wrongtype(out, e),
        };
        let span = match args.len() {
            2 => bit_span(0, -1, v.len(), false),
            4 | 5 => {
                let (Some(start), Some(end)) = (parse_i64(arg(args, 2)), parse_i64(arg(args, 3)))
                else {
                    return write_error(out, E_NOT_INT);
                };
                if start < 0 && end < 0 && start > end {
                    return write_int(out, 0);
                }
                let bits = match args.get(4) {
                    None => false,
                    Some(u) => match parse_unit(u.as_ref()) {
                        Some(b) => b,
                        None => return write_error(out, E_SYNTAX),
                    },
                };
                bit_span(start, end, v.len(), bits)
            }
            _ => return write_error(out, E_SYNTAX),
        };
        let n = span.map_or(0, |(lo, hi)| count_ones(v, lo, hi));
        write_int(out, n as i64);
    })
}

/// The first bit equal to `bit` within the inclusive bit range `lo..=hi`
/// of `v`.
fn find_bit(v: &[u8], bit: bool, lo: u64, hi: u64) -> Option<u64> {
    // A byte with nothing to find is skipped whole.
    let skip = if bit { 0x00 } else { 0xff };
    let mut pos = lo;
    while pos <= hi {
        let (byte, mask) = locate(pos);
        if pos & 7 == 0 && v[byte] == skip && pos + 7 <= hi {
            pos += 8;
            continue;
        }
        if (v[byte] & mask != 0) == bit {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// BITPOS key 0|1 [start [end [BYTE|BIT]]]: the first bit set (or clear)
/// in the range, -1 if none. A missing key is all zeros; looking for a 0
/// without an `end` finds the zero padding past the string's end, as in
/// Redis.
pub(super) fn bitpos<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let bit = match parse_i64(arg(args, 2)) {
        Some(0) => false,
        Some(1) => true,
        Some(_) => return write_error(cx.out, "ERR The bit argument must be 1 or 0."),
        None => return write_error(cx.out, E_NOT_INT),
    };
    let out = &mut *cx.out;
    cx.store.with_key(arg(args, 1), |slot| {
        let v = match slot.value() {
            Ok(Some(v)) => v,
            Ok(None) => return write_int(out, if bit { -1 } else { 0 }),
            Err(e) => return write_wrongtype(out, e),
        };
        let (span, end_given) = match args.len() {
            3 => (bit_span(0, -1, v.len(), false), false),
            4..=6 => {
                let Some(start) = parse_i64(arg(args, 3)) else {
                    return write_error(out, E_NOT_INT);
                };
                let bits = match args.get(5) {
                    None => false,
                    Some(u) => match parse_unit(u.as_ref()) {
                        Some(b) => b,
                        None => return write_error(out, E_SYNTAX),
                    },
                };
                let end = match args.get(4) {
                    Some(e) => match parse_i64(e.as_ref()) {
                        Some(e) => e,
                        None => return write_error(out, E_NOT_INT),
                    },
                    None => -1,
                };
                (bit_span(start, end, v.len(), bits), args.len() >= 5)
            }
            _ => return write_error(out, E_SYNTAX),
        };
        let pos = match span {
            None => -1,
            Some((lo, hi)) => match find_bit(v, bit, lo, hi) {
                Some(p) => p as i64,
                None if !bit && !end_given => hi as i64 + 1,
                None => -1,
            },
        };
        write_int(out, pos);
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP AND|OR|XOR|NOT dest key [key ...]: the result (as long as the
/// longest input, shorter ones zero padded) stored at `dest`, which is
/// deleted if it would be empty; the reply is its length.
pub(super) fn bitop<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A]) {
    let op = match arg(args, 1).to_ascii_lowercase().as_slice() {
        b"and" => BitOp::And,
        b"or" => BitOp::Or,
        b"xor" => BitOp::Xor,
        b"not" => BitOp::Not,
        _ => return write_error(cx.out, E_SYNTAX),
    };
    if op == BitOp::Not && args.len() != 4 {
        return write_error(
            cx.out,
            "ERR BITOP NOT must be called with a single source key.",
        );
    }
    let dst = arg(args, 2);
    let mut keys: Vec<&[u8]> = args[3..].iter().map(AsRef::as_ref).collect();
    keys.push(dst);
    let srcs = &keys[..keys.len() - 1];
    let out = &mut *cx.out;
    cx.store.with_keys(&keys, |l| {
        let mut acc: Option<Vec<u8>> = None;
        for k in srcs {
            let slot = l.slot(k);
            let v = match slot.value() {
                Ok(v) => v.unwrap_or_default(),
                Err(e) => return write_wrongtype(out, e),
            };
            let Some(r) = acc.as_mut() else {
                acc = Some(match op {
                    BitOp::Not => v.iter().map(|b| !b).collect(),
                    _ => v.to_vec(),
                });
                continue;
            };
            if r.len() < v.len() {
                r.resize(v.len(), 0);
            }
            for (i, x) in r.iter_mut().enumerate() {
                let y = v.get(i).copied().unwrap_or(0);
                *x = match op {
                    BitOp::And => *x & y,
                    BitOp::Or => *x | y,
                    BitOp::Xor | BitOp::Not => *x ^ y,
                };
            }
        }
        let result = acc.unwrap_or_default();
        let n = result.len();
        let mut d = l.slot(dst);
        if n > 0 {
            d.set_owned(result, Expiry::Persist);
        } else {
            d.remove();
        }
        write_int(out, n as i64);
    })
}
