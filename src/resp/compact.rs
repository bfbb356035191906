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
use std::collections::{HashMap, HashSet};
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
    /// The threshold CONFIG names `name` (Redis's names, the older
    /// `ziplist` spellings included), if it is one of these.
    pub fn by_name(&self, name: &[u8]) -> Option<&AtomicUsize> {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        Some(match name.as_str() {
            "hash-max-listpack-entries" | "hash-max-ziplist-entries" => &self.hash_entries,
            "hash-max-listpack-value" | "hash-max-ziplist-value" => &self.hash_value,
            "set-max-intset-entries" => &self.set_intset_entries,
            "zset-max-listpack-entries" | "zset-max-ziplist-entries" => &self.zset_entries,
            "zset-max-listpack-value" | "zset-max-ziplist-value" => &self.zset_value,
            _ => return None,
        })
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

/// The byte range of the pair whose field is `field` in a packed hash.
fn find_pair(packed: &[u8], field: &[u8]) -> Option<(usize, usize)> {
    let mut at = 0;
    while at < packed.len() {
        let start = at;
        let (flen, n) = read_varint(&packed[at..]);
        let f = &packed[at + n..at + n + flen];
        at += n + flen;
        let (vlen, m) = read_varint(&packed[at..]);
        at += m + vlen;
        if f == field {
            return Some((start, at));
        }
    }
    None
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
            let max = Limits::get(&LIMITS.hash_value);
            let fits = field.len() <= max && value.len() <= max;
            match find_pair(bytes, field) {
                Some((a, b)) if fits => {
                    let mut pair = Vec::with_capacity(field.len() + value.len() + 4);
                    push_elem(&mut pair, field);
                    push_elem(&mut pair, value);
                    bytes.splice(a..b, pair);
                    return false;
                }
                None if fits && *len < Limits::get(&LIMITS.hash_entries) => {
                    push_elem(bytes, field);
                    push_elem(bytes, value);
                    *len += 1;
                    return true;
                }
                _ => self.convert(),
            }
        }
        match self {
            Hash::Table(t) => t.insert(field.to_vec(), value.to_vec()).is_none(),
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
            Set::Table(t) => t.insert(m.to_vec()),
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
