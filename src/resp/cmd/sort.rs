//! SORT and SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern
//! ...] [ASC|DESC] [ALPHA] [STORE destination] over a list, set or sorted
//! set, with Redis's semantics: numeric by default (ties broken by the
//! element's bytes), ALPHA compares bytes; `BY` without `*` (e.g.
//! `nosort`) keeps the native order; patterns replace the first `*` with
//! the element and may name a hash field after `->`; `GET #` is the
//! element itself; STORE replaces the destination with a list.
//!
//! BY and GET patterns read keys that are known only once the elements
//! are, so they cannot be locked up front like other multi-key commands'
//! keys ([`Store::with_keys`](crate::resp::Store::with_keys)). Instead a
//! SORT that reads or writes a key besides its source runs with every
//! transaction gate held exclusively, as EXEC does (`run` asks
//! [`needs_exclusive`]): no other command runs meanwhile, so reading and
//! writing key by key is atomic.

use std::cmp::Ordering;

use super::{arg, parse_i64, write_wrongtype, Cx, E_NOT_INT, E_SYNTAX};
use crate::codec::resp::{write_array_header, write_bulk, write_error, write_int, write_null};
use crate::resp::store::{Kind, Slot, WrongType};

/// Whether this SORT may touch keys besides its source (GET, STORE, or BY
/// with a real pattern), so that `run` must give it the whole store. A
/// false positive (an option word used as an argument) only costs
/// exclusivity.
pub(super) fn needs_exclusive<A: AsRef<[u8]>>(args: &[A]) -> bool {
    args.iter().enumerate().skip(2).any(|(i, a)| {
        let a = a.as_ref();
        a.eq_ignore_ascii_case(b"get")
            || a.eq_ignore_ascii_case(b"store")
            || (a.eq_ignore_ascii_case(b"by")
                && args.get(i + 1).is_some_and(|p| p.as_ref().contains(&b'*')))
    })
}

/// SORT's options.
struct SortOpts<'a> {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    store: Option<&'a [u8]>,
    by: Option<&'a [u8]>,
    gets: Vec<&'a [u8]>,
}

impl SortOpts<'_> {
    /// BY without a `*`: nothing to sort by, the native order stays.
    fn dont_sort(&self) -> bool {
        self.by.is_some_and(|p| !p.contains(&b'*'))
    }
}

fn parse_opts<A: AsRef<[u8]>>(args: &[A], readonly: bool) -> Result<SortOpts<'_>, &'static str> {
    let mut o = SortOpts {
        desc: false,
        alpha: false,
        limit: None,
        store: None,
        by: None,
        gets: Vec::new(),
    };
    let mut j = 2;
    while j < args.len() {
        let word = arg(args, j);
        let left = args.len() - j - 1;
        if word.eq_ignore_ascii_case(b"asc") {
            o.desc = false;
        } else if word.eq_ignore_ascii_case(b"desc") {
            o.desc = true;
        } else if word.eq_ignore_ascii_case(b"alpha") {
            o.alpha = true;
        } else if word.eq_ignore_ascii_case(b"limit") && left >= 2 {
            match (parse_i64(arg(args, j + 1)), parse_i64(arg(args, j + 2))) {
                (Some(start), Some(count)) => o.limit = Some((start, count)),
                _ => return Err(E_NOT_INT),
            }
            j += 2;
        } else if !readonly && word.eq_ignore_ascii_case(b"store") && left >= 1 {
            o.store = Some(arg(args, j + 1));
            j += 1;
        } else if word.eq_ignore_ascii_case(b"by") && left >= 1 {
            o.by = Some(arg(args, j + 1));
            j += 1;
        } else if word.eq_ignore_ascii_case(b"get") && left >= 1 {
            o.gets.push(arg(args, j + 1));
            j += 1;
        } else {
            return Err(E_SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// The elements of the list, set or sorted set in `slot` (in its own
/// order: list order, score order, a set's iteration order), or
/// WRONGTYPE for a string or hash; a missing key has none.
fn elements(slot: &Slot<'_>) -> Result<(Option<Kind>, Vec<Vec<u8>>), WrongType> {
    let kind = slot.kind();
    let elems = match kind {
        None => None,
        Some(Kind::List) => slot.list()?.map(|l| l.iter().map(<[u8]>::to_vec).collect()),
        Some(Kind::Set) => slot
            .set_members()?
            .map(|s| s.iter().map(std::borrow::Cow::into_owned).collect()),
        Some(Kind::ZSet) => slot
            .zset()?
            .map(|z| z.iter().map(|(m, _)| m.to_vec()).collect()),
        Some(Kind::String | Kind::Hash) => return Err(WrongType),
    }
    .unwrap_or_default();
    Ok((kind, elems))
}

/// What `pattern` names for `elem`: `#` is the element; otherwise the
/// first `*` is replaced by it, giving a key whose string value (or, after
/// `->field`, whose hash field) is read. `None` if the pattern has no `*`
/// or the key, field or right type is missing.
fn lookup(cx: &Cx<'_>, pattern: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(elem.to_vec());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    // `->` followed by a field name; a bare trailing `->` is part of the key.
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&i| i + 2 < after.len());
    let (postfix, field) = match arrow {
        Some(i) => (&after[..i], Some(&after[i + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(postfix);
    cx.store.with_key(&key, |slot| match field {
        Some(f) => slot.hash().ok()??.get(f).map(<[u8]>::to_vec),
        None => slot.value().ok()?.map(<[u8]>::to_vec),
    })
}

/// A sort weight as Redis's `strtod` reads one: surrounding text is an
/// error, leading spaces and an empty string (0) are not; NaN and
/// overflow are errors.
fn parse_weight(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?.trim_start();
    if s.is_empty() {
        return Some(0.0);
    }
    let v: f64 = s.parse().ok()?;
    let overflow = v.is_infinite() && !s.to_ascii_lowercase().contains("inf");
    (!v.is_nan() && !overflow).then_some(v)
}

/// One element being sorted and what it sorts by.
struct Item {
    elem: Vec<u8>,
    score: f64,
    /// ALPHA with BY: the BY value (`None` sorts first).
    by: Option<Vec<u8>>,
}

fn compare(a: &Item, b: &Item, o: &SortOpts<'_>) -> Ordering {
    let ord = if !o.alpha {
        a.score
            .partial_cmp(&b.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.elem.cmp(&b.elem))
    } else if o.by.is_some() {
        a.by.cmp(&b.by)
    } else {
        a.elem.cmp(&b.elem)
    };
    if o.desc {
        ord.reverse()
    } else {
        ord
    }
}

/// Redis's LIMIT arithmetic: the inclusive output range over `len`
/// elements (`end < start` when empty).
fn limit_range(limit: Option<(i64, i64)>, len: usize) -> (i64, i64) {
    let len = len as i64;
    let (start, count) = limit.unwrap_or((0, -1));
    let mut start = start.clamp(0, len);
    let count = count.clamp(-1, len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    (start, end.min(len - 1))
}

fn sort_generic<A: AsRef<[u8]>>(cx: &mut Cx<'_>, args: &[A], readonly: bool) {
    let mut o = match parse_opts(args, readonly) {
        Ok(o) => o,
        Err(e) => return write_error(cx.out, e),
    };
    let (kind, elems) = match cx.store.with_key(arg(args, 1), |slot| elements(slot)) {
        Ok(x) => x,
        Err(e) => return write_wrongtype(cx.out, e),
    };
    let mut dont_sort = o.dont_sort();
    // A set has no order of its own: what is stored must not depend on
    // its iteration order, so it is sorted by its elements' bytes.
    if dont_sort && kind == Some(Kind::Set) && o.store.is_some() {
        dont_sort = false;
        o.alpha = true;
        o.by = None;
    }
    let (start, end) = limit_range(o.limit, elems.len());
    let picked: Vec<Vec<u8>> = if dont_sort {
        let mut elems = elems;
        // Lists and sorted sets keep their order, reversed by DESC.
        if o.desc && kind != Some(Kind::Set) {
            elems.reverse();
        }
        take_range(elems, start, end)
    } else {
        let mut items = Vec::with_capacity(elems.len());
        for elem in elems {
            let weight = match o.by {
                Some(p) => lookup(cx, p, &elem),
                None => None,
            };
            let mut item = Item {
                elem,
                score: 0.0,
                by: None,
            };
            if o.alpha {
                item.by = weight;
            } else {
                let w = match (&weight, o.by) {
                    (Some(w), _) => Some(w.as_slice()),
                    (None, None) => Some(item.elem.as_slice()),
                    (None, Some(_)) => None,
                };
                if let Some(w) = w {
                    match parse_weight(w) {
                        Some(s) => item.score = s,
                        None => {
                            return write_error(
                                cx.out,
                                "ERR One or more scores can't be converted into double",
                            )
                        }
                    }
                }
            }
            items.push(item);
        }
        items.sort_by(|a, b| compare(a, b, &o));
        take_range(items.into_iter().map(|i| i.elem).collect(), start, end)
    };
    // The output: the elements, or for each the GET patterns' values.
    let mut output: Vec<Option<Vec<u8>>> = Vec::new();
    for elem in picked {
        if o.gets.is_empty() {
            output.push(Some(elem));
        } else {
            for p in &o.gets {
                output.push(lookup(cx, p, &elem));
            }
        }
    }
    let Some(dst) = o.store else {
        write_array_header(cx.out, output.len());
        for v in &output {
            match v {
                Some(v) => write_bulk(cx.out, v),
                None => write_null(cx.out),
            }
        }
        return;
    };
    let n = output.len();
    cx.store.with_key(dst, |slot| {
        slot.remove();
        if n > 0 {
            let list = slot.list_mut(true).expect("removed").expect("created");
            for v in output {
                list.push_back(&v.unwrap_or_default());
            }
        }
    });
    write_int(cx.out, n as i64);
    if n > 0 {
        cx.store.signal(dst);
    }
}

/// `v[start..=end]`, empty when `end < start`.
fn take_range<T>(v: Vec<T>, start: i64, end: i64) -> Vec<T> {
    if end < start || start < 0 {
        return Vec::new();
    }
    v.into_iter()
        .skip(start as usize)
        .take((end - start + 1) as usize)
        .collect()
}

variants! {
    sort => sort_generic(false);
    sort_ro => sort_generic(true);
}
