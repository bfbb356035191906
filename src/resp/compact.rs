//! Compact encodings of small hashes and sets, and the thresholds that
//! decide when a collection is small.
//!
//! A small hash is a *packed* run of elements (field, value, field, value
//! ...), each a varint length and its bytes, in one buffer; a set of only
//! integers is a sorted vector of `i64` (Redis's intset). The store keeps
//! these bytes inline in the key's own allocation ([`super::store`]), so a
//! million small hashes cost a million allocations, not a million hash
//! tables. Past a threshold ([`limits`], Redis's `hash-max-listpack-*` and
//! `set-max-intset-entries`, changeable with CONFIG SET) a collection turns
//! into a hash table for good, as in Redis; lookups in a packed one are a
//! linear scan over at most that many elements.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::codec::resp::parse_i64;

/// The size thresholds of the compact encodings (process-wide, as Redis's
/// config): read with [`limits`], changed by CONFIG SET.
pub struct Limits {
    /// A hash with more fields than this is a hash table.
    pub hash_entries: AtomicUsize,
    /// A hash with a field or value longer than this is a hash table.
    pub hash_value: AtomicUsize,
    /// An integer set with more members than this is a hash table.
    pub set_intset_entries: AtomicUsize,
    /// A sorted set with more members than this is a skip list.
    pub zset_entries: AtomicUsize,
    /// A sorted set with a member longer than this is a skip list.
    pub zset_value: AtomicUsize,
}

static LIMITS: Limits = Limits {
    hash_entries: AtomicUsize::new(128),
    hash_value: AtomicUsize::new(64),
    set_intset_entries: AtomicUsize::new(512),
    zset_entries: AtomicUsize::new(128),
    zset_value: AtomicUsize::new(64),
};

/// The thresholds in force.
pub fn limits() -> &'static Limits {
    &LIMITS
}

impl Limits {
    /// Every threshold by the names CONFIG knows it by (Redis's names,
    /// then the older `ziplist` spellings), in CONFIG GET's order.
    pub fn named(&self) -> [(&'static str, &AtomicUsize); 9] {
        [
            ("hash-max-listpack-entries", &self.hash_entries),
            ("hash-max-listpack-value", &self.hash_value),
            ("hash-max-ziplist-entries", &self.hash_entries),
            ("hash-max-ziplist-value", &self.hash_value),
            ("set-max-intset-entries", &self.set_intset_entries),
            ("zset-max-listpack-entries", &self.zset_entries),
            ("zset-max-listpack-value", &self.zset_value),
            ("zset-max-ziplist-entries", &self.zset_entries),
            ("zset-max-ziplist-value", &self.zset_value),
        ]
    }

    /// The threshold CONFIG names `name` (any case), if it is one of these.
    pub fn by_name(&self, name: &[u8]) -> Option<&AtomicUsize> {
        self.named()
            .into_iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn get(v: &AtomicUsize) -> usize {
        v.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------
// Packed elements

/// Append one element (varint length, bytes) to `buf`.
pub fn push_elem(buf: &mut Vec<u8>, e: &[u8]) {
    push_varint(buf, e.len());
    buf.extend_from_slice(e);
}

/// Append `n` as a LEB128 varint.
pub fn push_varint(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Read a varint at the start of `b`: its value and the bytes it took.
/// Only ever given bytes this module wrote.
pub fn read_varint(b: &[u8]) -> (usize, usize) {
    let mut n = 0usize;
    for (i, &byte) in b.iter().enumerate() {
        n |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (n, i + 1);
        }
    }
    unreachable!("a packed varint runs to its end")
}

/// The elements of a packed run, in order.
#[derive(Clone)]
pub struct Elems<'a>(&'a [u8]);

impl<'a> Iterator for Elems<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        let (len, n) = read_varint(self.0);
        let (e, rest) = self.0[n..].split_at(len);
        self.0 = rest;
        Some(e)
    }
}

/// Field/value pairs of a packed hash, in insertion order.
#[derive(Clone)]
pub struct Pairs<'a>(Elems<'a>);

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let f = self.0.next()?;
        let v = self.0.next().expect("a packed hash holds pairs");
        Some((f, v))
    }
}

/// Where `field` is in a packed hash: its pair's byte range, or (absent)
/// how many pairs the hash has.
fn locate_pair(packed: &[u8], field: &[u8]) -> Result<(usize, usize), usize> {
    let (mut at, mut pairs) = (0, 0);
    while at < packed.len() {
        let start = at;
        let (flen, n) = read_varint(&packed[at..]);
        let f = &packed[at + n..at + n + flen];
        at += n + flen;
        let (vlen, m) = read_varint(&packed[at..]);
        at += m + vlen;
        if f == field {
            return Ok((start, at));
        }
        pairs += 1;
    }
    Err(pairs)
}

/// The byte range of the pair whose field is `field` in a packed hash.
fn find_pair(packed: &[u8], field: &[u8]) -> Option<(usize, usize)> {
    locate_pair(packed, field).ok()
}

/// Set `field` to `value` in the packed hash that fills `buf[at..]` (the
/// bytes before it are the owner's), if the hash stays within the compact
/// thresholds: whether the field is new. `None`, and nothing changed, if it
/// would go past them. A value of the same length is overwritten in place.
pub fn packed_set(buf: &mut Vec<u8>, at: usize, field: &[u8], value: &[u8]) -> Option<bool> {
    let max = Limits::get(&LIMITS.hash_value);
    if field.len() > max || value.len() > max {
        return None;
    }
    match locate_pair(&buf[at..], field) {
        Ok((a, b)) => {
            let (a, b) = (at + a, at + b);
            let old = pair_value(&buf[a..b]).len();
            if old == value.len() {
                buf[b - old..b].copy_from_slice(value);
            } else {
                let mut pair = Vec::with_capacity(field.len() + value.len() + 4);
                push_elem(&mut pair, field);
                push_elem(&mut pair, value);
                buf.splice(a..b, pair);
            }
            Some(false)
        }
        Err(pairs) if pairs < Limits::get(&LIMITS.hash_entries) => {
            // Exactly: a node's bytes go back as a boxed slice.
            buf.reserve_exact(
                varint_len(field.len()) + field.len() + varint_len(value.len()) + value.len(),
            );
            push_elem(buf, field);
            push_elem(buf, value);
            Some(true)
        }
        Err(_) => None,
    }
}

/// The value bytes of a pair range from [`find_pair`].
fn pair_value(pair: &[u8]) -> &[u8] {
    let (flen, n) = read_varint(pair);
    let rest = &pair[n + flen..];
    let (vlen, m) = read_varint(rest);
    &rest[m..m + vlen]
}

// ---------------------------------------------------------------------------
// Hashes

/// A hash: packed while small, then a hash table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hash {
    /// Packed pairs.
    Packed {
        /// Field, value, field, value..., each a varint length and bytes.
        bytes: Vec<u8>,
        /// The number of pairs.
        len: usize,
    },
    /// Past the thresholds.
    Table(HashMap<Vec<u8>, Vec<u8>>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Packed {
            bytes: Vec::new(),
            len: 0,
        }
    }
}

/// A read-only view of a hash, packed or not.
#[derive(Clone, Copy)]
pub enum HashRef<'a> {
    /// Packed pairs (see [`Hash::Packed`]).
    Packed(&'a [u8]),
    /// A hash table.
    Table(&'a HashMap<Vec<u8>, Vec<u8>>),
}

impl<'a> HashRef<'a> {
    /// The value of `field`.
    pub fn get(self, field: &[u8]) -> Option<&'a [u8]> {
        match self {
            HashRef::Packed(p) => find_pair(p, field).map(|(a, b)| pair_value(&p[a..b])),
            HashRef::Table(t) => t.get(field).map(Vec::as_slice),
        }
    }
    /// Whether `field` is present.
    pub fn contains_key(self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }
    /// Number of fields.
    pub fn len(self) -> usize {
        match self {
            HashRef::Packed(p) => Pairs(Elems(p)).count(),
            HashRef::Table(t) => t.len(),
        }
    }
    /// True if there are no fields.
    pub fn is_empty(self) -> bool {
        match self {
            HashRef::Packed(p) => p.is_empty(),
            HashRef::Table(t) => t.is_empty(),
        }
    }
    /// Every (field, value).
    pub fn iter(self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone {
        let (packed, table) = match self {
            HashRef::Packed(p) => (Some(Pairs(Elems(p))), None),
            HashRef::Table(t) => (None, Some(t.iter())),
        };
        packed.into_iter().flatten().chain(
            table
                .into_iter()
                .flatten()
                .map(|(f, v)| (f.as_slice(), v.as_slice())),
        )
    }
    /// OBJECT ENCODING's name.
    pub fn encoding(self) -> &'static str {
        match self {
            HashRef::Packed(_) => "listpack",
            HashRef::Table(_) => "hashtable",
        }
    }
    /// An owned copy.
    pub fn to_owned(self) -> Hash {
        match self {
            HashRef::Packed(p) => Hash::Packed {
                bytes: p.to_vec(),
                len: Pairs(Elems(p)).count(),
            },
            HashRef::Table(t) => Hash::Table(t.clone()),
        }
    }
}

impl Hash {
    /// A view for reading.
    pub fn view(&self) -> HashRef<'_> {
        match self {
            Hash::Packed { bytes, .. } => HashRef::Packed(bytes),
            Hash::Table(t) => HashRef::Table(t),
        }
    }
    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.view().get(field)
    }
    /// Whether `field` is present.
    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.view().contains_key(field)
    }
    /// Number of fields.
    pub fn len(&self) -> usize {
        match self {
            Hash::Packed { len, .. } => *len,
            Hash::Table(t) => t.len(),
        }
    }
    /// True if there are no fields.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Set `field` to `value`; true if the field is new. A packed hash that
    /// this takes past the thresholds becomes a hash table.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Hash::Packed { bytes, len } = self {
            match packed_set(bytes, 0, field, value) {
                Some(new) => {
                    *len += usize::from(new);
                    return new;
                }
                None => self.convert(),
            }
        }
        match self {
            // An existing field's value is rewritten in its own buffer.
            Hash::Table(t) => match t.get_mut(field) {
                Some(v) => {
                    v.clear();
                    v.extend_from_slice(value);
                    false
                }
                None => t.insert(field.to_vec(), value.to_vec()).is_none(),
            },
            Hash::Packed { .. } => unreachable!("converted"),
        }
    }

    /// Remove `field`; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Packed { bytes, len } => match find_pair(bytes, field) {
                Some((a, b)) => {
                    bytes.drain(a..b);
                    *len -= 1;
                    true
                }
                None => false,
            },
            Hash::Table(t) => t.remove(field).is_some(),
        }
    }

    /// Every (field, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.view().iter()
    }

    fn convert(&mut self) {
        if let Hash::Packed { bytes, .. } = self {
            let t = Pairs(Elems(bytes))
                .map(|(f, v)| (f.to_vec(), v.to_vec()))
                .collect();
            *self = Hash::Table(t);
        }
    }
}

// ---------------------------------------------------------------------------
// Sets

/// A set: a sorted vector of integers while every member is one (and there
/// are few), then a hash table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Set {
    /// Sorted, distinct.
    Ints(Vec<i64>),
    /// A member that is not an integer, or too many members.
    Table(HashSet<Vec<u8>>),
}

impl Default for Set {
    fn default() -> Self {
        Set::Ints(Vec::new())
    }
}

/// A read-only view of a set.
#[derive(Clone, Copy)]
pub enum SetRef<'a> {
    /// Sorted `i64`s, 8 little-endian bytes each (the store's inline form).
    IntBytes(&'a [u8]),
    /// Sorted `i64`s.
    Ints(&'a [i64]),
    /// A hash table.
    Table(&'a HashSet<Vec<u8>>),
}

/// `m` as an intset member: the integer whose canonical decimal text it is.
pub fn as_int(m: &[u8]) -> Option<i64> {
    // Canonical only: "007", "+1" or "-0" are strings, as in Redis.
    if m.is_empty() || m.len() > 20 || m == b"-0" || m[0] == b'+' {
        return None;
    }
    let digits = m.strip_prefix(b"-").unwrap_or(m);
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    parse_i64(m)
}

fn int_at(b: &[u8], i: usize) -> i64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[8 * i..8 * i + 8]);
    i64::from_le_bytes(w)
}

impl<'a> SetRef<'a> {
    /// Whether `m` is a member.
    pub fn contains(self, m: &[u8]) -> bool {
        match self {
            SetRef::Table(t) => t.contains(m),
            _ => as_int(m).is_some_and(|v| self.int_position(v).is_ok()),
        }
    }
    fn int_position(self, v: i64) -> Result<usize, usize> {
        match self {
            SetRef::Ints(s) => s.binary_search(&v),
            SetRef::IntBytes(b) => {
                let (mut lo, mut hi) = (0, b.len() / 8);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    match int_at(b, mid).cmp(&v) {
                        std::cmp::Ordering::Less => lo = mid + 1,
                        std::cmp::Ordering::Greater => hi = mid,
                        std::cmp::Ordering::Equal => return Ok(mid),
                    }
                }
                Err(lo)
            }
            SetRef::Table(_) => Err(0),
        }
    }
    /// Number of members.
    pub fn len(self) -> usize {
        match self {
            SetRef::IntBytes(b) => b.len() / 8,
            SetRef::Ints(s) => s.len(),
            SetRef::Table(t) => t.len(),
        }
    }
    /// True if there are none.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
    /// Every member (integers in ascending order, as Redis lists an intset).
    pub fn iter(self) -> impl Iterator<Item = Cow<'a, [u8]>> + Clone {
        let n = match self {
            SetRef::Table(_) => 0,
            _ => self.len(),
        };
        let table = match self {
            SetRef::Table(t) => Some(t.iter()),
            _ => None,
        };
        (0..n)
            .map(move |i| {
                let v = match self {
                    SetRef::Ints(s) => s[i],
                    SetRef::IntBytes(b) => int_at(b, i),
                    SetRef::Table(_) => unreachable!("no integers"),
                };
                Cow::Owned(v.to_string().into_bytes())
            })
            .chain(
                table
                    .into_iter()
                    .flatten()
                    .map(|m| Cow::Borrowed(m.as_slice())),
            )
    }
    /// OBJECT ENCODING's name.
    pub fn encoding(self) -> &'static str {
        match self {
            SetRef::Table(_) => "hashtable",
            _ => "intset",
        }
    }
    /// An owned copy.
    pub fn to_owned(self) -> Set {
        match self {
            SetRef::Ints(s) => Set::Ints(s.to_vec()),
            SetRef::IntBytes(b) => Set::Ints((0..b.len() / 8).map(|i| int_at(b, i)).collect()),
            SetRef::Table(t) => Set::Table(t.clone()),
        }
    }
}

impl Set {
    /// A view for reading.
    pub fn view(&self) -> SetRef<'_> {
        match self {
            Set::Ints(s) => SetRef::Ints(s),
            Set::Table(t) => SetRef::Table(t),
        }
    }
    /// Whether `m` is a member.
    pub fn contains(&self, m: &[u8]) -> bool {
        self.view().contains(m)
    }
    /// Number of members.
    pub fn len(&self) -> usize {
        self.view().len()
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every member.
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, [u8]>> + Clone {
        self.view().iter()
    }

    /// Add `m`; true if it is new. A member that is not an integer, or one
    /// too many, turns an integer set into a hash table.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        if let Set::Ints(s) = self {
            if let Some(v) = as_int(m) {
                match s.binary_search(&v) {
                    Ok(_) => return false,
                    Err(at) if s.len() < Limits::get(&LIMITS.set_intset_entries) => {
                        s.insert(at, v);
                        return true;
                    }
                    Err(_) => {}
                }
            }
            self.convert();
        }
        match self {
            Set::Table(t) => !t.contains(m) && t.insert(m.to_vec()),
            Set::Ints(_) => unreachable!("converted"),
        }
    }

    /// Remove `m`; true if it was a member.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Ints(s) => match as_int(m).map(|v| s.binary_search(&v)) {
                Some(Ok(at)) => {
                    s.remove(at);
                    true
                }
                _ => false,
            },
            Set::Table(t) => t.remove(m),
        }
    }

    /// A set of `members` in the most compact encoding that holds them.
    pub fn from_members<I: IntoIterator<Item = Vec<u8>>>(members: I) -> Set {
        let mut s = Set::default();
        for m in members {
            s.insert(&m);
        }
        s
    }

    fn convert(&mut self) {
        if let Set::Ints(s) = self {
            let t = s.iter().map(|v| v.to_string().into_bytes()).collect();
            *self = Set::Table(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        PushFront(Vec<u8>),
        PushBack(Vec<u8>),
        PopFront,
        PopBack,
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        RemoveMatching(u8, usize, bool),
        Trim(usize, usize),
    }

    fn elem() -> impl Strategy<Value = Vec<u8>> {
        // Short ones (many per chunk, few distinct: LREM finds them), some
        // with two-byte lengths, and some larger than a chunk.
        prop_oneof![
            8 => (0u8..4, 0usize..6).prop_map(|(b, n)| vec![b; n]),
            2 => (0u8..4, 120usize..300).prop_map(|(b, n)| vec![b; n]),
            1 => (0u8..4, 8000usize..9000).prop_map(|(b, n)| vec![b; n]),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => elem().prop_map(Op::PushFront),
            4 => elem().prop_map(Op::PushBack),
            2 => Just(Op::PopFront),
            2 => Just(Op::PopBack),
            1 => (any::<usize>(), elem()).prop_map(|(i, e)| Op::Set(i, e)),
            1 => (any::<usize>(), elem()).prop_map(|(i, e)| Op::Insert(i, e)),
            1 => (0u8..4, 0usize..5, any::<bool>()).prop_map(|(b, n, t)| Op::RemoveMatching(b, n, t)),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Trim(a, b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// The chunked list behaves as a deque of byte strings under any
        /// sequence of edits, read from either end or by index.
        #[test]
        fn list_matches_a_deque(ops in proptest::collection::vec(op(), 1..300)) {
            let mut l = List::default();
            let mut d: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushFront(e) => { l.push_front(&e); d.push_front(e); }
                    Op::PushBack(e) => { l.push_back(&e); d.push_back(e); }
                    Op::PopFront => prop_assert_eq!(l.pop_front(), d.pop_front()),
                    Op::PopBack => prop_assert_eq!(l.pop_back(), d.pop_back()),
                    Op::Set(i, e) => {
                        let ok = !d.is_empty();
                        let i = if ok { i % d.len() } else { 0 };
                        prop_assert_eq!(l.set(i, &e), ok);
                        if ok { d[i] = e; }
                    }
                    Op::Insert(i, e) => {
                        let i = i % (d.len() + 1);
                        l.insert(i, &e);
                        d.insert(i, e);
                    }
                    Op::RemoveMatching(b, n, tail) => {
                        let want: Vec<u8> = vec![b; 1];
                        let mut removed = 0;
                        if tail {
                            let mut i = d.len();
                            while i > 0 && removed < n {
                                i -= 1;
                                if d[i] == want { d.remove(i); removed += 1; }
                            }
                        } else {
                            let mut i = 0;
                            while i < d.len() && removed < n {
                                if d[i] == want { d.remove(i); removed += 1; } else { i += 1; }
                            }
                        }
                        prop_assert_eq!(l.remove_matching(&want, n, tail), removed);
                    }
                    Op::Trim(a, b) => {
                        if !d.is_empty() {
                            let a = a % d.len();
                            let b = a + b % (d.len() - a);
                            l.trim(a, b);
                            d.truncate(b + 1);
                            d.drain(..a);
                        }
                    }
                }
                prop_assert_eq!(l.len(), d.len());
            }
            let fwd: Vec<&[u8]> = l.iter().collect();
            let want: Vec<&[u8]> = d.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(&fwd, &want);
            let back: Vec<&[u8]> = l.iter().rev().collect();
            prop_assert_eq!(back, want.iter().rev().copied().collect::<Vec<_>>());
            for (i, e) in d.iter().enumerate() {
                prop_assert_eq!(l.get(i), Some(e.as_slice()));
                prop_assert_eq!(l.iter_from(i).next(), Some(e.as_slice()));
            }
            prop_assert_eq!(l.get(d.len()), None);
        }
    }

    #[test]
    fn packed_hash_edits_and_converts_past_the_thresholds() {
        let mut h = Hash::default();
        assert!(h.insert(b"a", b"1"));
        assert!(h.insert(b"b", b"2"));
        assert!(!h.insert(b"a", b"one"));
        assert_eq!(h.get(b"a"), Some(&b"one"[..]));
        assert_eq!(h.len(), 2);
        assert_eq!(h.view().encoding(), "listpack");
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![(&b"b"[..], &b"2"[..])]);
        // A value past hash-max-listpack-value.
        assert!(h.insert(b"big", &[b'x'; 65]));
        assert_eq!(h.view().encoding(), "hashtable");
        assert_eq!(h.len(), 2);
        assert_eq!(h.get(b"b"), Some(&b"2"[..]));
        // Past hash-max-listpack-entries.
        let mut h = Hash::default();
        for i in 0..=128 {
            h.insert(format!("f{i}").as_bytes(), b"v");
        }
        assert_eq!(h.view().encoding(), "hashtable");
        assert_eq!(h.len(), 129);
    }

    #[test]
    fn long_elements_use_multibyte_lengths() {
        let mut buf = Vec::new();
        let long = vec![7u8; 300];
        push_elem(&mut buf, &long);
        push_elem(&mut buf, b"");
        let e: Vec<&[u8]> = Elems(&buf).collect();
        assert_eq!(e, vec![&long[..], &b""[..]]);
    }

    #[test]
    fn intsets_hold_only_canonical_integers() {
        let mut s = Set::default();
        for m in [&b"3"[..], b"-1", b"10", b"3"] {
            s.insert(m);
        }
        assert_eq!(s.view().encoding(), "intset");
        let all: Vec<Vec<u8>> = s.iter().map(|m| m.into_owned()).collect();
        assert_eq!(all, vec![b"-1".to_vec(), b"3".to_vec(), b"10".to_vec()]);
        assert!(s.contains(b"10") && !s.contains(b"010") && !s.contains(b"x"));
        assert!(s.remove(b"3") && !s.remove(b"3"));
        // "07" is a string, not 7.
        assert!(s.insert(b"07"));
        assert_eq!(s.view().encoding(), "hashtable");
        assert!(s.contains(b"-1") && s.contains(b"07") && !s.contains(b"7"));
        assert_eq!(s.len(), 3);
        for bad in [&b"-0"[..], b"+1", b"", b"99999999999999999999"] {
            assert_eq!(as_int(bad), None, "{bad:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Lists

/// Bytes of packed elements per list chunk (Redis's default
/// `list-max-listpack-size -2`: 8 KiB nodes). A larger element gets a
/// chunk of its own.
const CHUNK_BYTES: usize = 8 * 1024;

/// Bytes a varint of `n` takes.
fn varint_len(mut n: usize) -> usize {
    let mut k = 1;
    while n >= 0x80 {
        n >>= 7;
        k += 1;
    }
    k
}

/// One element as a list chunk stores it: its length as a varint, the
/// bytes, and the length again written to be read backwards (7-bit groups,
/// lowest last, each but the first-written flagged), so a chunk walks from
/// either end.
fn push_unit(buf: &mut Vec<u8>, e: &[u8]) {
    push_varint(buf, e.len());
    buf.extend_from_slice(e);
    let k = varint_len(e.len());
    for g in (0..k).rev() {
        let group = ((e.len() >> (7 * g)) & 0x7f) as u8;
        buf.push(if g + 1 == k { group } else { group | 0x80 });
    }
}

fn unit_len(len: usize) -> usize {
    2 * varint_len(len) + len
}

/// The elements of a chunk's packed units, from either end.
#[derive(Clone)]
pub struct Units<'a>(&'a [u8]);

impl<'a> Iterator for Units<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        let (len, n) = read_varint(self.0);
        let e = &self.0[n..n + len];
        self.0 = &self.0[unit_len(len)..];
        Some(e)
    }
}

impl<'a> DoubleEndedIterator for Units<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        let end = self.0.len();
        if end == 0 {
            return None;
        }
        let (mut len, mut k) = (0usize, 0usize);
        loop {
            let b = self.0[end - 1 - k];
            len |= usize::from(b & 0x7f) << (7 * k);
            k += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let start = end - unit_len(len);
        let e = &self.0[end - k - len..end - k];
        self.0 = &self.0[..start];
        Some(e)
    }
}

/// A run of list elements packed in one buffer. Popped bytes at the front
/// are left as a gap (`start`) that later front pushes fill, so pushes and
/// pops at both ends cost no shifting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Chunk {
    bytes: Vec<u8>,
    start: usize,
    count: usize,
}

impl Chunk {
    fn live(&self) -> usize {
        self.bytes.len() - self.start
    }
    fn units(&self) -> Units<'_> {
        Units(&self.bytes[self.start..])
    }
    fn fits(&self, e: &[u8]) -> bool {
        self.count == 0 || self.live() + unit_len(e.len()) <= CHUNK_BYTES
    }
    fn push_back(&mut self, e: &[u8]) {
        push_unit(&mut self.bytes, e);
        self.count += 1;
    }
    fn push_front(&mut self, e: &[u8]) {
        let mut unit = Vec::with_capacity(unit_len(e.len()));
        push_unit(&mut unit, e);
        if self.start < unit.len() {
            // Open a gap as large as what is live (at least this unit):
            // front pushes then move each byte O(1) times on average.
            let gap = unit.len().max(self.live()).max(16);
            let mut b = vec![0u8; gap];
            b.extend_from_slice(&self.bytes[self.start..]);
            self.bytes = b;
            self.start = gap;
        }
        self.start -= unit.len();
        self.bytes[self.start..self.start + unit.len()].copy_from_slice(&unit);
        self.count += 1;
    }
    fn pop_front(&mut self) -> Option<Vec<u8>> {
        let e = self.units().next()?.to_vec();
        self.start += unit_len(e.len());
        self.count -= 1;
        if self.start > CHUNK_BYTES && self.start > self.live() {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        Some(e)
    }
    fn pop_back(&mut self) -> Option<Vec<u8>> {
        let e = self.units().next_back()?.to_vec();
        let n = self.bytes.len() - unit_len(e.len());
        self.bytes.truncate(n);
        self.count -= 1;
        Some(e)
    }
}

/// A list: a deque of chunks of packed elements, as Redis's quicklist is a
/// linked list of listpacks. An element costs its bytes and two short
/// length prefixes; pushes and pops at either end are O(1); an index walks
/// chunk counts from the nearer end, then one chunk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl List {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Every element, head to tail (reversible).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + Clone {
        self.chunks.iter().flat_map(Chunk::units)
    }
    /// Add `e` at the tail.
    pub fn push_back(&mut self, e: &[u8]) {
        match self.chunks.back_mut() {
            Some(c) if c.fits(e) => c.push_back(e),
            _ => {
                let mut c = Chunk::default();
                c.push_back(e);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
    }
    /// Add `e` at the head.
    pub fn push_front(&mut self, e: &[u8]) {
        match self.chunks.front_mut() {
            Some(c) if c.fits(e) => c.push_front(e),
            _ => {
                let mut c = Chunk::default();
                c.push_back(e);
                self.chunks.push_front(c);
            }
        }
        self.len += 1;
    }
    /// Remove and return the head.
    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        let c = self.chunks.front_mut()?;
        let e = c.pop_front();
        if c.count == 0 {
            self.chunks.pop_front();
        }
        self.len -= usize::from(e.is_some());
        e
    }
    /// Remove and return the tail.
    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let c = self.chunks.back_mut()?;
        let e = c.pop_back();
        if c.count == 0 {
            self.chunks.pop_back();
        }
        self.len -= usize::from(e.is_some());
        e
    }
    /// The chunk holding element `i` and `i`'s position in it.
    fn locate(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.len {
            return None;
        }
        if i < self.len / 2 {
            let mut at = i;
            for (ci, c) in self.chunks.iter().enumerate() {
                if at < c.count {
                    return Some((ci, at));
                }
                at -= c.count;
            }
        } else {
            let mut from_end = self.len - 1 - i;
            for (ci, c) in self.chunks.iter().enumerate().rev() {
                if from_end < c.count {
                    return Some((ci, c.count - 1 - from_end));
                }
                from_end -= c.count;
            }
        }
        None
    }
    /// Element `i` (0 is the head).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let (ci, at) = self.locate(i)?;
        let c = &self.chunks[ci];
        if at < c.count / 2 {
            c.units().nth(at)
        } else {
            c.units().rev().nth(c.count - 1 - at)
        }
    }
    /// Elements `from..` (head to tail), skipping whole chunks to get there.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &[u8]> {
        let (ci, at) = self.locate(from).unwrap_or((self.chunks.len(), 0));
        self.chunks.range(ci..).flat_map(Chunk::units).skip(at)
    }
    /// Rewrite chunk `ci` through `edit` on its elements, splitting what it
    /// gives back into chunks of the usual size (none if it is emptied).
    fn rewrite_chunk(&mut self, ci: usize, edit: impl FnOnce(&mut Vec<Vec<u8>>)) {
        let mut elems: Vec<Vec<u8>> = self.chunks[ci].units().map(<[u8]>::to_vec).collect();
        let before = elems.len();
        edit(&mut elems);
        self.len = self.len + elems.len() - before;
        let mut fresh: Vec<Chunk> = Vec::new();
        for e in &elems {
            match fresh.last_mut() {
                Some(c) if c.fits(e) => c.push_back(e),
                _ => {
                    let mut c = Chunk::default();
                    c.push_back(e);
                    fresh.push(c);
                }
            }
        }
        self.chunks.remove(ci);
        for (k, c) in fresh.into_iter().enumerate() {
            self.chunks.insert(ci + k, c);
        }
    }
    /// Replace element `i`; false if there is none.
    pub fn set(&mut self, i: usize, e: &[u8]) -> bool {
        let Some((ci, at)) = self.locate(i) else {
            return false;
        };
        self.rewrite_chunk(ci, |v| v[at] = e.to_vec());
        true
    }
    /// Insert `e` before element `i` (`i == len`: at the tail).
    pub fn insert(&mut self, i: usize, e: &[u8]) {
        if i >= self.len {
            return self.push_back(e);
        }
        let (ci, at) = self.locate(i).expect("i < len");
        self.rewrite_chunk(ci, |v| v.insert(at, e.to_vec()));
    }
    /// Remove up to `limit` elements equal to `e`, from the head (or the
    /// tail, `from_tail`); how many went.
    pub fn remove_matching(&mut self, e: &[u8], limit: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        // Chunks are visited from the chosen end; a rewrite may replace one
        // chunk by none or several, so the walk goes by position.
        let mut ci = if from_tail { self.chunks.len() } else { 0 };
        loop {
            if removed == limit {
                break;
            }
            if from_tail {
                if ci == 0 {
                    break;
                }
                ci -= 1;
            } else if ci >= self.chunks.len() {
                break;
            }
            if !self.chunks[ci].units().any(|x| x == e) {
                if !from_tail {
                    ci += 1;
                }
                continue;
            }
            let before = self.chunks.len();
            self.rewrite_chunk(ci, |v| {
                let idx: Vec<usize> = if from_tail {
                    (0..v.len()).rev().collect()
                } else {
                    (0..v.len()).collect()
                };
                let mut drop = vec![false; v.len()];
                for i in idx {
                    if removed < limit && v[i] == e {
                        drop[i] = true;
                        removed += 1;
                    }
                }
                let mut k = 0;
                v.retain(|_| {
                    k += 1;
                    !drop[k - 1]
                });
            });
            if !from_tail {
                // Past the chunks that replaced this one.
                ci += self.chunks.len() + 1 - before;
            }
        }
        removed
    }
    /// Keep only elements `a..=b` (both within the list).
    pub fn trim(&mut self, a: usize, b: usize) {
        let drop_tail = self.len - 1 - b;
        for (n, front) in [(a, true), (drop_tail, false)] {
            let mut left = n;
            while left > 0 {
                let whole = match front {
                    true => self.chunks.front().map(|c| c.count),
                    false => self.chunks.back().map(|c| c.count),
                };
                match whole {
                    Some(c) if c <= left => {
                        if front {
                            self.chunks.pop_front();
                        } else {
                            self.chunks.pop_back();
                        }
                        self.len -= c;
                        left -= c;
                    }
                    _ => {
                        if front {
                            self.pop_front();
                        } else {
                            self.pop_back();
                        }
                        left -= 1;
                    }
                }
            }
        }
    }
    /// Remove every element.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }
}

impl<'a> FromIterator<&'a [u8]> for List {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(it: I) -> List {
        let mut l = List::default();
        for e in it {
            l.push_back(e);
        }
        l
    }
}
