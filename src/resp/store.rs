//! The keyspace shared by all event-loop threads.
//!
//! Keys are spread over a power-of-two number of shards (64 by default), each
//! a `Mutex` around a table, chosen by a cheap multiplicative hash of the
//! key so that lock hold times stay tiny and threads rarely meet. Inside a
//! shard the table hashes with the standard library's randomly keyed
//! SipHash, so clients cannot force collisions (the same reason Redis uses
//! SipHash).
//!
//! A shard's table holds 16-byte nodes. Most keys are one allocation: tag,
//! LRU stamp, deadline (if volatile), key and value together — strings up
//! to 4 KiB, small hashes packed, sets of integers as sorted `i64`s (see
//! [`super::compact`]). Other values (lists, sorted sets, large strings,
//! collections past the compact thresholds) hang off a boxed node. A change
//! to a packed value unpacks it and packs it again when the [`Slot`] closes.
//!
//! Values are byte strings, lists, hashes, sets or sorted sets ([`Kind`]),
//! each with an optional absolute expiry time in milliseconds since the
//! Unix epoch. A command for one type that finds another gets
//! [`WrongType`]; a collection emptied by a command is deleted
//! ([`Slot::drop_if_empty`]). A large string value, once read, is kept
//! behind an `Arc` ([`Slot::value_shared`]) so that replies carry it by
//! reference: a thousand clients reading one 8 MiB value cost one copy of
//! it, not a thousand, and no copy is made under the shard lock. Expired
//! keys are removed lazily when touched, and actively by [`Store::sweep`],
//! which a timer should call periodically: each shard keeps its volatile
//! keys ordered by deadline, so a sweep only ever looks at keys that are
//! really due. Past `maxmemory`, writes make room by the eviction
//! [`Policy`] ([`Store::make_room`]).

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hashbrown::HashTable;

use super::compact::{packed_set, push_varint, read_varint, Hash, HashRef, List, Set, SetRef};
use super::zset::ZSet;

/// A key's value outside the packed form: a string (its bytes held inline,
/// or shared with the replies that are sending them, made so by
/// [`Slot::value_shared`]), or a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Inline(Vec<u8>),
    Shared(Arc<Vec<u8>>),
    List(List),
    Hash(Hash),
    Set(Set),
    ZSet(Box<ZSet>),
}

/// The type of a key's value, as Redis's TYPE names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A byte string.
    String,
    /// A list (LPUSH, RPUSH...).
    List,
    /// A hash of fields to values (HSET...).
    Hash,
    /// A set of members (SADD...).
    Set,
    /// A sorted set (ZADD...).
    ZSet,
}

impl Kind {
    /// TYPE's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::List => "list",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }
}

/// A command for one type found a key holding another (Redis's WRONGTYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
pub struct WrongType;

impl Value {
    fn kind(&self) -> Kind {
        match self {
            Value::Inline(_) | Value::Shared(_) => Kind::String,
            Value::List(_) => Kind::List,
            Value::Hash(_) => Kind::Hash,
            Value::Set(_) => Kind::Set,
            Value::ZSet(_) => Kind::ZSet,
        }
    }

    /// The string's bytes, for editing in place (a shared one is copied
    /// first if a reply still holds it).
    fn make_mut(&mut self) -> Result<&mut Vec<u8>, WrongType> {
        match self {
            Value::Inline(v) => Ok(v),
            Value::Shared(v) => Ok(Arc::make_mut(v)),
            _ => Err(WrongType),
        }
    }

    fn view(&self) -> ValueRef<'_> {
        match self {
            Value::Inline(v) => ValueRef::Str(v),
            Value::Shared(v) => ValueRef::Str(v),
            Value::List(l) => ValueRef::List(l),
            Value::Hash(h) => ValueRef::Hash(h.view()),
            Value::Set(s) => ValueRef::Set(s.view()),
            Value::ZSet(z) => ValueRef::ZSet(z),
        }
    }
}

/// A value, borrowed for reading, whatever its form.
#[derive(Clone, Copy)]
enum ValueRef<'a> {
    Str(&'a [u8]),
    List(&'a List),
    Hash(HashRef<'a>),
    Set(SetRef<'a>),
    ZSet(&'a ZSet),
}

impl ValueRef<'_> {
    fn kind(self) -> Kind {
        match self {
            ValueRef::Str(_) => Kind::String,
            ValueRef::List(_) => Kind::List,
            ValueRef::Hash(_) => Kind::Hash,
            ValueRef::Set(_) => Kind::Set,
            ValueRef::ZSet(_) => Kind::ZSet,
        }
    }

    /// Whether a collection has no element left (a string never is).
    fn is_empty_collection(self) -> bool {
        match self {
            ValueRef::Str(_) => false,
            ValueRef::List(l) => l.is_empty(),
            ValueRef::Hash(h) => h.is_empty(),
            ValueRef::Set(s) => s.is_empty(),
            ValueRef::ZSet(z) => z.is_empty(),
        }
    }

    /// OBJECT ENCODING's name for how this value is held.
    fn encoding(self, packed: bool) -> &'static str {
        match self {
            // A packed string lives in its key's own allocation: Redis's
            // embstr, the string embedded with its header.
            ValueRef::Str(_) if packed => "embstr",
            ValueRef::Str(_) => "raw",
            ValueRef::List(_) => "quicklist",
            ValueRef::Hash(h) => h.encoding(),
            ValueRef::Set(s) => s.encoding(),
            ValueRef::ZSet(z) => z.encoding(),
        }
    }
}

/// A value with its TTL, detached from the keyspace ([`Slot::take`],
/// [`Slot::put`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    value: Value,
    /// Absolute deadline (ms since the Unix epoch), if volatile.
    expires_at: Option<u64>,
}

impl Entry {
    /// The stored bytes of a string (`None` for a collection).
    pub fn value(&self) -> Option<&[u8]> {
        match self.value.view() {
            ValueRef::Str(v) => Some(v),
            _ => None,
        }
    }
    /// The type of the value.
    pub fn kind(&self) -> Kind {
        self.value.kind()
    }
    /// Absolute deadline in ms since the Unix epoch (the store's clock), or
    /// `None` for a key without a TTL.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }
}

/// Strings up to this long are packed with their key.
const PACK_STRING_MAX: usize = 4096;

/// Packed node tags (low bits) and flags.
const TAG_STR: u8 = 0;
const TAG_HASH: u8 = 1;
const TAG_INTSET: u8 = 2;
const TAG_KIND: u8 = 0x0f;
const TAG_VOLATILE: u8 = 0x80;
/// Tag byte, then the 24-bit LRU clock.
const HEAD: usize = 4;
/// The LRU clock: seconds, 24 bits (wraps after 194 days, as Redis's).
const LRU_MASK: u32 = 0x00ff_ffff;

/// A key with its value, as a shard's table holds it: 16 bytes in the
/// table, and for most keys one allocation beside it.
#[derive(Debug)]
enum Node {
    /// Key, metadata and value in one allocation: a string of at most
    /// [`PACK_STRING_MAX`] bytes, a packed hash or an integer set. Layout:
    /// tag (kind, volatile flag), LRU clock (3 bytes), the deadline (8
    /// bytes, if volatile), the key's length (varint), the key, the value
    /// (a string's bytes, a hash's packed pairs, a set's sorted `i64`s).
    Packed(Box<[u8]>),
    /// A value too large or too structured to pack.
    Big(Box<BigNode>),
}

#[derive(Debug)]
struct BigNode {
    key: Box<[u8]>,
    entry: Entry,
    lru: u32,
}

impl Node {
    /// Offsets of the key and the payload in a packed node.
    fn layout(b: &[u8]) -> (usize, usize) {
        let at = HEAD + if b[0] & TAG_VOLATILE != 0 { 8 } else { 0 };
        let (len, n) = read_varint(&b[at..]);
        (at + n, at + n + len)
    }

    fn key(&self) -> &[u8] {
        match self {
            Node::Packed(b) => {
                let (k, p) = Node::layout(b);
                &b[k..p]
            }
            Node::Big(n) => &n.key,
        }
    }

    fn expires_at(&self) -> Option<u64> {
        match self {
            Node::Packed(b) if b[0] & TAG_VOLATILE != 0 => {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[HEAD..HEAD + 8]);
                Some(u64::from_le_bytes(w))
            }
            Node::Packed(_) => None,
            Node::Big(n) => n.entry.expires_at,
        }
    }

    fn lru(&self) -> u32 {
        match self {
            Node::Packed(b) => u32::from_le_bytes([b[1], b[2], b[3], 0]),
            Node::Big(n) => n.lru,
        }
    }

    fn set_lru(&mut self, t: u32) {
        match self {
            Node::Packed(b) => b[1..HEAD].copy_from_slice(&t.to_le_bytes()[..3]),
            Node::Big(n) => n.lru = t,
        }
    }

    fn view(&self) -> ValueRef<'_> {
        match self {
            Node::Packed(b) => {
                let (_, p) = Node::layout(b);
                let payload = &b[p..];
                match b[0] & TAG_KIND {
                    TAG_STR => ValueRef::Str(payload),
                    TAG_HASH => ValueRef::Hash(HashRef::Packed(payload)),
                    _ => ValueRef::Set(SetRef::IntBytes(payload)),
                }
            }
            Node::Big(n) => n.entry.value.view(),
        }
    }

    /// A packed node of `tag` for `key`, whose value `fill` appends (it is
    /// `payload_len` bytes long).
    fn pack(
        key: &[u8],
        tag: u8,
        expires_at: Option<u64>,
        lru: u32,
        payload_len: usize,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Node {
        let mut b = Vec::with_capacity(HEAD + 8 + 3 + key.len() + payload_len);
        b.push(
            tag | if expires_at.is_some() {
                TAG_VOLATILE
            } else {
                0
            },
        );
        b.extend_from_slice(&(lru & LRU_MASK).to_le_bytes()[..3]);
        if let Some(t) = expires_at {
            b.extend_from_slice(&t.to_le_bytes());
        }
        push_varint(&mut b, key.len());
        b.extend_from_slice(key);
        fill(&mut b);
        Node::Packed(b.into_boxed_slice())
    }

    /// The node for `key` holding `entry`: packed when the value allows.
    fn build(key: &[u8], entry: Entry, lru: u32) -> Node {
        let t = entry.expires_at;
        match &entry.value {
            Value::Inline(v) if v.len() <= PACK_STRING_MAX => {
                Node::pack(key, TAG_STR, t, lru, v.len(), |b| b.extend_from_slice(v))
            }
            Value::Hash(Hash::Packed { bytes, .. }) => {
                Node::pack(key, TAG_HASH, t, lru, bytes.len(), |b| {
                    b.extend_from_slice(bytes)
                })
            }
            Value::Set(Set::Ints(s)) => Node::pack(key, TAG_INTSET, t, lru, 8 * s.len(), |b| {
                for v in s {
                    b.extend_from_slice(&v.to_le_bytes());
                }
            }),
            _ => Node::Big(Box::new(BigNode {
                key: key.into(),
                entry,
                lru,
            })),
        }
    }

    /// A copy of the value and TTL (a packed value unpacked).
    fn to_entry(&self) -> Entry {
        let value = match (self, self.view()) {
            (Node::Big(n), _) => return n.entry.clone(),
            (_, ValueRef::Str(v)) => Value::Inline(v.to_vec()),
            (_, ValueRef::Hash(h)) => Value::Hash(h.to_owned()),
            (_, ValueRef::Set(s)) => Value::Set(s.to_owned()),
            _ => unreachable!("only strings, hashes and intsets are packed"),
        };
        Entry {
            value,
            expires_at: self.expires_at(),
        }
    }

    /// The value and TTL, detached (a packed value is unpacked).
    fn into_entry(self) -> Entry {
        match self {
            Node::Big(n) => n.entry,
            packed => packed.to_entry(),
        }
    }

    /// Key, value (unpacked) and LRU stamp, leaving an empty placeholder:
    /// the caller puts a node back.
    fn take_parts(&mut self) -> (Box<[u8]>, Entry, u32) {
        let lru = self.lru();
        match std::mem::replace(self, Node::Packed(Box::default())) {
            Node::Big(n) => (n.key, n.entry, lru),
            packed => (packed.key().into(), packed.into_entry(), lru),
        }
    }

    /// The node as a [`BigNode`], unpacking a packed one, for changes.
    fn unpack(&mut self) -> &mut BigNode {
        if let Node::Packed(_) = self {
            let (key, entry, lru) = self.take_parts();
            *self = Node::Big(Box::new(BigNode { key, entry, lru }));
        }
        match self {
            Node::Big(n) => n,
            Node::Packed(_) => unreachable!("unpacked above"),
        }
    }

    /// Pack a big node again if its value has become packable.
    fn repack(&mut self) {
        let Node::Big(n) = self else {
            return;
        };
        let packable = match &n.entry.value {
            Value::Inline(v) => v.len() <= PACK_STRING_MAX,
            Value::Hash(Hash::Packed { .. }) | Value::Set(Set::Ints(_)) => true,
            _ => false,
        };
        if packable {
            let (key, entry, lru) = self.take_parts();
            *self = Node::build(&key, entry, lru);
        }
    }

    /// Set or clear the deadline (the index is the caller's business).
    fn set_expires_at(&mut self, at: Option<u64>) {
        match self {
            Node::Big(n) => n.entry.expires_at = at,
            Node::Packed(b) => match (b[0] & TAG_VOLATILE != 0, at) {
                (true, Some(t)) => b[HEAD..HEAD + 8].copy_from_slice(&t.to_le_bytes()),
                (false, None) => {}
                // The deadline field comes or goes: the node is rebuilt.
                _ => {
                    let (key, mut entry, lru) = self.take_parts();
                    entry.expires_at = at;
                    *self = Node::build(&key, entry, lru);
                }
            },
        }
    }
}

/// Accessors for one collection type in a [`Slot`]: read (`$get`), write
/// (`$get_mut`, creating an empty one with `create`).
macro_rules! collection_access {
    ($variant:ident, $ty:ty, $view:ty, $get:ident, $get_mut:ident, $what:literal) => {
        #[doc = concat!("The ", $what, " at this key: `Ok(None)` if absent, WRONGTYPE if another type.")]
        pub fn $get(&self) -> Result<Option<$view>, WrongType> {
            match self.find().map(Node::view) {
                None => Ok(None),
                Some(ValueRef::$variant(c)) => Ok(Some(c)),
                Some(_) => Err(WrongType),
            }
        }

        #[doc = concat!("The ", $what, " at this key for writing; with `create`, an absent key becomes an empty one (without a TTL). Remove emptied collections with [`Slot::drop_if_empty`].")]
        pub fn $get_mut(&mut self, create: bool) -> Result<Option<&mut $ty>, WrongType> {
            match self.big_mut(create.then(|| Value::$variant(Default::default()))) {
                None => Ok(None),
                Some(Value::$variant(c)) => Ok(Some(c)),
                Some(_) => Err(WrongType),
            }
        }
    };
}

/// What a write does to the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Keep the current TTL (Redis's KEEPTTL; INCR, APPEND).
    Keep,
    /// No TTL (a plain SET).
    Persist,
    /// Expire at this absolute time (ms since the Unix epoch).
    At(u64),
}

impl Expiry {
    /// The deadline a write leaves, given the key's current one.
    fn deadline(self, current: Option<u64>) -> Option<u64> {
        match self {
            Expiry::Keep => current,
            Expiry::Persist => None,
            Expiry::At(t) => Some(t),
        }
    }
}

#[derive(Default)]
struct Shard {
    table: HashTable<Node>,
    /// The table's hash: randomly keyed SipHash (one key per shard).
    hasher: RandomState,
    /// `(deadline, key)` for every volatile key: exactly the nodes whose
    /// deadline is `Some`.
    expiries: BTreeSet<(u64, Vec<u8>)>,
    /// WATCHed keys: the flags of the transactions watching each, raised
    /// (and the entry dropped) when the key is changed. Empty unless a
    /// client watches a key here, so a write checks one length.
    watched: HashMap<Vec<u8>, Vec<Weak<AtomicBool>>>,
}

impl Shard {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<&Node> {
        self.table.find(hash, |n| n.key() == key)
    }

    fn find_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Node> {
        self.table.find_mut(hash, |n| n.key() == key)
    }

    fn insert(&mut self, hash: u64, node: Node) {
        if let Some(t) = node.expires_at() {
            self.expiries.insert((t, node.key().to_vec()));
        }
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, node, |n| hasher.hash_one(n.key()));
    }

    fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Node> {
        let node = match self.table.find_entry(hash, |n| n.key() == key) {
            Ok(e) => e.remove().0,
            Err(_) => return None,
        };
        if let Some(t) = node.expires_at() {
            self.expiries.remove(&(t, key.to_vec()));
        }
        Some(node)
    }

    /// Move `key`'s index entry from `old` to `new` deadlines.
    fn reindex(
        expiries: &mut BTreeSet<(u64, Vec<u8>)>,
        key: &[u8],
        old: Option<u64>,
        new: Option<u64>,
    ) {
        if old == new {
            return;
        }
        let k = match old {
            Some(t) => expiries
                .take(&(t, key.to_vec()))
                .map(|(_, k)| k)
                .unwrap_or_else(|| key.to_vec()),
            None => key.to_vec(),
        };
        if let Some(t) = new {
            expiries.insert((t, k));
        }
    }

    /// `key` is being changed: the transactions watching it will fail.
    fn touch_key(&mut self, key: &[u8]) {
        if self.watched.is_empty() {
            return;
        }
        if let Some(flags) = self.watched.remove(key) {
            for f in flags.iter().filter_map(Weak::upgrade) {
                f.store(true, Ordering::Release);
            }
        }
    }

    fn is_expired(n: &Node, now: u64) -> bool {
        n.expires_at().is_some_and(|t| t <= now)
    }
}

/// Access to one key under its shard's lock, after lazy expiry: an expired
/// key looks (and is) absent.
pub struct Slot<'a> {
    shard: &'a mut Shard,
    key: &'a [u8],
    hash: u64,
    clock: &'a Clock,
    lru: u32,
    /// The key's LRU stamp before this access.
    last_access: u32,
    /// Read from the clock on first use only: most accesses touch keys
    /// without a TTL and never need the time.
    now: Cell<Option<u64>>,
    /// The node was unpacked for a change: pack it again when done.
    unpacked: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.unpacked {
            if let Some(n) = self.shard.find_mut(self.hash, self.key) {
                n.repack();
            }
        }
    }
}

impl<'a> Slot<'a> {
    /// Open `key`'s slot, first deleting it if it has expired.
    fn open(shard: &'a mut Shard, key: &'a [u8], clock: &'a Clock, lru: u32) -> Slot<'a> {
        let hash = shard.hash(key);
        let mut slot = Slot {
            shard,
            key,
            hash,
            clock,
            lru,
            last_access: lru,
            now: Cell::new(None),
            unpacked: false,
        };
        let expired = match slot.shard.find_mut(hash, key) {
            None => return slot,
            Some(n) => {
                let before = n.lru();
                if before != lru {
                    n.set_lru(lru);
                }
                slot.last_access = before;
                n.expires_at().is_some_and(|t| t <= slot.now())
            }
        };
        if expired {
            slot.shard.touch_key(key);
            slot.shard.remove(hash, key);
        }
        slot
    }

    /// The key this slot gives access to.
    pub fn key(&self) -> &[u8] {
        self.key
    }

    fn find(&self) -> Option<&Node> {
        self.shard.find(self.hash, self.key)
    }

    /// The key is being changed: the transactions watching it will fail.
    fn touch(&mut self) {
        self.shard.touch_key(self.key);
    }
    /// The store's clock (ms since the Unix epoch), read once per slot.
    pub fn now(&self) -> u64 {
        match self.now.get() {
            Some(t) => t,
            None => {
                let t = self.clock.now_ms();
                self.now.set(Some(t));
                t
            }
        }
    }
    /// True if the key is present and not expired.
    pub fn exists(&self) -> bool {
        self.find().is_some()
    }
    /// A copy of the key's value and TTL (COPY); `None` if absent.
    pub fn entry(&self) -> Option<Entry> {
        self.find().map(Node::to_entry)
    }
    /// The type of the key's value; `None` if absent.
    pub fn kind(&self) -> Option<Kind> {
        self.find().map(|n| n.view().kind())
    }
    /// OBJECT ENCODING's name for how the value is held; `None` if absent.
    pub fn encoding(&self) -> Option<&'static str> {
        self.find()
            .map(|n| n.view().encoding(matches!(n, Node::Packed(_))))
    }
    /// Bytes the key and its value take (MEMORY USAGE): its table slot and
    /// allocation; for a big collection an estimate of its elements'.
    pub fn memory_usage(&self) -> Option<usize> {
        let slot = std::mem::size_of::<Node>() + 1;
        Some(match self.find()? {
            Node::Packed(b) => slot + b.len(),
            Node::Big(n) => {
                let value = match n.entry.value.view() {
                    ValueRef::Str(s) => s.len(),
                    ValueRef::List(l) => l.iter().map(|e| e.len() + 2).sum(),
                    ValueRef::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len() + 56).sum(),
                    ValueRef::Set(s) => s.iter().map(|m| m.len() + 32).sum(),
                    ValueRef::ZSet(z) => z.iter().map(|(m, _)| 2 * m.len() + 72).sum(),
                };
                slot + std::mem::size_of::<BigNode>() + n.key.len() + value
            }
        })
    }
    /// Seconds since the key was last read or written before this access
    /// (OBJECT IDLETIME), by the LRU clock; `None` if absent.
    pub fn idle_secs(&self) -> Option<u32> {
        self.find()
            .map(|_| self.lru.wrapping_sub(self.last_access) & LRU_MASK)
    }
    /// The key's string value, borrowed under the shard lock (no copy);
    /// `Ok(None)` if absent or expired, WRONGTYPE for a collection.
    pub fn value(&self) -> Result<Option<&[u8]>, WrongType> {
        match self.find().map(Node::view) {
            None => Ok(None),
            Some(ValueRef::Str(v)) => Ok(Some(v)),
            Some(_) => Err(WrongType),
        }
    }
    /// The string value as shared bytes, for a reply that sends it by
    /// reference: the first call moves the bytes behind an `Arc` (no copy
    /// for a big value), later ones clone the `Arc`. A write to the key
    /// replaces or (if a reply still holds the old bytes) copies it, so a
    /// reply in flight never changes. `None` if absent or not a string.
    pub fn value_shared(&mut self) -> Option<Arc<Vec<u8>>> {
        let n = self.shard.find_mut(self.hash, self.key)?;
        if !matches!(n.view(), ValueRef::Str(_)) {
            return None;
        }
        let e = &mut n.unpack().entry;
        if let Value::Inline(v) = &mut e.value {
            e.value = Value::Shared(Arc::new(std::mem::take(v)));
        }
        match &e.value {
            Value::Shared(v) => Some(Arc::clone(v)),
            _ => None,
        }
    }
    /// Deadline of a volatile key; `None` if absent or persistent.
    pub fn expires_at(&self) -> Option<u64> {
        self.find().and_then(Node::expires_at)
    }

    /// The value of the node, unpacked for changing; with `create`, an
    /// absent key gets that value first.
    fn big_mut(&mut self, create: Option<Value>) -> Option<&mut Value> {
        self.touch();
        if let Some(value) = create {
            if self.find().is_none() {
                // Created big, packed when the slot closes if it can be.
                self.unpacked = true;
                let node = Node::Big(Box::new(BigNode {
                    key: self.key.into(),
                    entry: Entry {
                        value,
                        expires_at: None,
                    },
                    lru: self.lru,
                }));
                self.shard.insert(self.hash, node);
            }
        }
        let n = self.shard.find_mut(self.hash, self.key)?;
        // A node already big stays so: no repacking look-up when done.
        self.unpacked |= matches!(n, Node::Packed(_));
        Some(&mut n.unpack().entry.value)
    }

    /// The string value, for in-place edits (APPEND). The TTL is
    /// unaffected. `Ok(None)` if absent, WRONGTYPE for a collection.
    pub fn value_mut(&mut self) -> Result<Option<&mut Vec<u8>>, WrongType> {
        if self.value()?.is_none() {
            return Ok(None);
        }
        self.big_mut(None).map(Value::make_mut).transpose()
    }

    /// Set `field` to `value` in the hash at this key, creating the hash if
    /// absent: true if the field is new. A packed hash is edited in its
    /// node (a value of the same length in place, anything else in one new
    /// allocation) instead of being unpacked and packed again.
    pub fn hash_set(&mut self, field: &[u8], value: &[u8]) -> Result<bool, WrongType> {
        self.touch();
        if let Some(Node::Packed(b)) = self.shard.find_mut(self.hash, self.key) {
            if b[0] & TAG_KIND == TAG_HASH {
                let at = Node::layout(b).1;
                // The node's own bytes, edited as a vector (no copy to
                // take them, one reallocation at most to give them back).
                let mut v = std::mem::take(b).into_vec();
                let set = packed_set(&mut v, at, field, value);
                *b = v.into_boxed_slice();
                if let Some(new) = set {
                    return Ok(new);
                }
                // Past the thresholds: the general path converts it.
            }
        }
        match self.hash_mut(true)? {
            Some(h) => Ok(h.insert(field, value)),
            None => unreachable!("created"),
        }
    }

    collection_access!(List, List, &List, list, list_mut, "list");
    collection_access!(Hash, Hash, HashRef<'_>, hash, hash_mut, "hash");
    collection_access!(Set, Set, SetRef<'_>, set_members, set_mut, "set");

    /// The sorted set at this key: `Ok(None)` if absent, WRONGTYPE if
    /// another type.
    pub fn zset(&self) -> Result<Option<&ZSet>, WrongType> {
        match self.find().map(Node::view) {
            None => Ok(None),
            Some(ValueRef::ZSet(z)) => Ok(Some(z)),
            Some(_) => Err(WrongType),
        }
    }

    /// The sorted set at this key for writing; with `create`, an absent key
    /// becomes an empty one.
    pub fn zset_mut(&mut self, create: bool) -> Result<Option<&mut ZSet>, WrongType> {
        match self.big_mut(create.then(|| Value::ZSet(Box::default()))) {
            None => Ok(None),
            Some(Value::ZSet(z)) => Ok(Some(z)),
            Some(_) => Err(WrongType),
        }
    }

    /// Delete the key if it holds a collection with nothing left in it (Redis
    /// never keeps an empty list, hash or set). True if it did.
    pub fn drop_if_empty(&mut self) -> bool {
        let empty = self.find().is_some_and(|n| n.view().is_empty_collection());
        if empty {
            self.shard.remove(self.hash, self.key);
        }
        empty
    }

    /// Store a copy of `value`.
    pub fn set(&mut self, value: &[u8], expiry: Expiry) {
        self.touch();
        if value.len() <= PACK_STRING_MAX {
            let (hash, key, lru) = (self.hash, self.key, self.lru);
            let Shard {
                table, expiries, ..
            } = &mut *self.shard;
            if let Some(n) = table.find_mut(hash, |n| n.key() == key) {
                let old = n.expires_at();
                let at = expiry.deadline(old);
                // Same shape (a string as long, the same volatility): the
                // bytes change in place.
                match n {
                    Node::Packed(b)
                        if b[0] & TAG_KIND == TAG_STR
                            && old.is_some() == at.is_some()
                            && b.len() - Node::layout(b).1 == value.len() =>
                    {
                        let p = Node::layout(b).1;
                        b[p..].copy_from_slice(value);
                        if let Some(t) = at {
                            b[HEAD..HEAD + 8].copy_from_slice(&t.to_le_bytes());
                        }
                    }
                    _ => {
                        *n = Node::pack(key, TAG_STR, at, lru, value.len(), |b| {
                            b.extend_from_slice(value)
                        });
                    }
                }
                Shard::reindex(expiries, key, old, at);
                return;
            }
        }
        self.set_owned(value.to_vec(), expiry);
    }

    /// Store `value` (taking ownership: a big one is kept without a copy).
    pub fn set_owned(&mut self, value: Vec<u8>, expiry: Expiry) {
        self.touch();
        let old = self.shard.remove(self.hash, self.key);
        let expires_at = expiry.deadline(old.as_ref().and_then(Node::expires_at));
        let entry = Entry {
            value: Value::Inline(value),
            expires_at,
        };
        let node = Node::build(self.key, entry, self.lru);
        self.shard.insert(self.hash, node);
    }

    /// Set (`Some`) or clear (`None`) the TTL of an existing key. Returns
    /// false if the key does not exist.
    pub fn set_expiry(&mut self, at: Option<u64>) -> bool {
        self.touch();
        let (hash, key) = (self.hash, self.key);
        let Shard {
            table, expiries, ..
        } = &mut *self.shard;
        match table.find_mut(hash, |n| n.key() == key) {
            Some(n) => {
                Shard::reindex(expiries, key, n.expires_at(), at);
                n.set_expires_at(at);
                true
            }
            None => false,
        }
    }

    /// Delete the key; true if it existed.
    pub fn remove(&mut self) -> bool {
        self.touch();
        self.shard.remove(self.hash, self.key).is_some()
    }

    /// Take the key's value and TTL out (the key is gone after).
    pub fn take(&mut self) -> Option<Entry> {
        self.touch();
        self.shard.remove(self.hash, self.key).map(Node::into_entry)
    }

    /// Put `entry` (value and TTL) at this key, replacing what was there.
    pub fn put(&mut self, entry: Entry) {
        self.touch();
        self.shard.remove(self.hash, self.key);
        let node = Node::build(self.key, entry, self.lru);
        self.shard.insert(self.hash, node);
    }
}

enum Clock {
    System,
    Manual(AtomicU64),
}

impl Clock {
    fn now_ms(&self) -> u64 {
        match self {
            Clock::System => system_now_ms(),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }
}

/// A client blocked on keys: its id, the keys it waits on, the command it
/// runs again when one of them gets data, and how to hand it the reply.
#[derive(Clone)]
pub struct Waiter {
    /// The client (session) id.
    pub id: u64,
    /// Every key the client waits on.
    pub keys: Arc<[Vec<u8>]>,
    /// The blocking command, as the client sent it.
    pub args: Arc<[Vec<u8>]>,
    /// Raised by whoever settles the wait first: the client that serves it,
    /// its timeout, or its disconnection. The others leave it alone.
    pub claimed: Arc<AtomicBool>,
    /// Hands the reply of the command served for it to the client's
    /// connection (called once, from the serving thread).
    pub deliver: Arc<dyn Fn(Vec<u8>) + Send + Sync>,
}

impl Waiter {
    /// Settle the wait: true for the first caller only.
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    /// Give back a claim that did not serve it (the data was gone).
    pub fn release(&self) {
        self.claimed.store(false, Ordering::Release);
    }
}

/// The shards of several keys, locked together (see [`Store::with_keys`]):
/// a command over several keys sees and changes them atomically.
pub struct Locked<'a> {
    idx: Vec<usize>,
    guards: Vec<MutexGuard<'a, Shard>>,
    store: &'a Store,
}

impl Locked<'_> {
    /// The slot of `key`, one of the keys locked.
    ///
    /// # Panics
    /// If `key` was not among the keys given to [`Store::with_keys`].
    pub fn slot<'b>(&'b mut self, key: &'b [u8]) -> Slot<'b> {
        let i = self
            .idx
            .binary_search(&self.store.shard_index(key))
            .expect("a key not locked by with_keys");
        Slot::open(
            &mut self.guards[i],
            key,
            &self.store.clock,
            self.store.lru_clock(),
        )
    }
}

/// What a write that finds used memory past `maxmemory` does (Redis's
/// `maxmemory-policy`): refuse (OOM), or evict keys until under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse writes that add data.
    NoEviction,
    /// Evict the least recently used of a few sampled keys.
    AllKeysLru,
    /// Evict a random key.
    AllKeysRandom,
    /// As `AllKeysLru`, among keys with a TTL.
    VolatileLru,
    /// A random key with a TTL.
    VolatileRandom,
    /// The key with the nearest deadline.
    VolatileTtl,
}

const POLICIES: [(Policy, &str); 6] = [
    (Policy::NoEviction, "noeviction"),
    (Policy::AllKeysLru, "allkeys-lru"),
    (Policy::AllKeysRandom, "allkeys-random"),
    (Policy::VolatileLru, "volatile-lru"),
    (Policy::VolatileRandom, "volatile-random"),
    (Policy::VolatileTtl, "volatile-ttl"),
];

impl Policy {
    /// The policy Redis names `name` (any case).
    pub fn parse(name: &[u8]) -> Option<Policy> {
        POLICIES
            .iter()
            .find(|(_, n)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(p, _)| *p)
    }
    /// Redis's name for it.
    pub fn name(self) -> &'static str {
        POLICIES
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("noeviction", |(_, n)| n)
    }
    fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru | Policy::VolatileRandom | Policy::VolatileTtl
        )
    }
}

/// Keys sampled per eviction by the LRU policies (Redis's
/// `maxmemory-samples` default).
const EVICTION_SAMPLES: usize = 5;
/// Random probes of a shard's table spent finding those samples.
const EVICTION_PROBES: usize = 256;
/// Evictions one write may cause before it is refused anyway: bounds the
/// time a command spends making room.
const EVICTIONS_PER_WRITE: usize = 4096;

/// The keyspace. `Send + Sync`; share it with `Arc<Store>`.
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    /// The transaction gates (see [`Store::gate`]).
    gates: Box<[RwLock<()>]>,
    /// Clients blocked on keys (BLPOP, BZPOPMIN...), first come first
    /// served.
    blocked: Mutex<HashMap<Vec<u8>, VecDeque<Waiter>>>,
    /// Keys pushed to while clients wait on them: served (in this order)
    /// before the pushing client's next command.
    ready: Mutex<VecDeque<Vec<u8>>>,
    /// Entries in `blocked`: a push checks this before taking that lock.
    blocked_count: AtomicUsize,
    /// `64 - log2(shards)`: the top bits of the hash pick the shard.
    shift: u32,
    clock: Clock,
    sweep_cursor: AtomicUsize,
    started: Instant,
    /// Seconds since `started`, as of the last sweep: the LRU clock keys
    /// are stamped with when touched (reading it costs no clock call).
    lru: AtomicU32,
    /// `maxmemory` in bytes (0: no limit).
    maxmemory: AtomicUsize,
    /// Index into `POLICIES`.
    policy: AtomicUsize,
    /// Keys evicted so far (INFO's `evicted_keys`).
    evicted: AtomicU64,
    /// The resident set size as of the last sweep: the memory measure when
    /// the counting allocator is not installed.
    rss: AtomicUsize,
    /// Highest used memory seen (INFO's `used_memory_peak`).
    peak: AtomicUsize,
    /// State of the sampling generator (splitmix64).
    rng: AtomicU64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

/// A SCAN step that would leave fewer keys than this in its shard takes
/// them all (fewer, larger steps when shards are small).
const SCAN_SHARD_REST: usize = 256;

/// Transaction gates: enough that clients on different threads rarely
/// share one.
const GATES: usize = 16;

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard lock cannot leave a half-written entry
    // (all updates are single assignments), so keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Multiplicative hash for picking shards (FxHash-style, 8 bytes a step).
fn shard_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = key.len() as u64;
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut w = [0u8; 8];
        w[..rem.len()].copy_from_slice(rem);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    // Final avalanche so the top bits depend on every input bit.
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Store {
    /// 64 shards, system clock.
    pub fn new() -> Store {
        Store::with_shards(64)
    }

    /// `n` shards, rounded up to a power of two (at least 1).
    pub fn with_shards(n: usize) -> Store {
        let n = n.max(1).next_power_of_two();
        Store {
            shards: (0..n).map(|_| Mutex::new(Shard::default())).collect(),
            gates: (0..GATES).map(|_| RwLock::new(())).collect(),
            blocked: Mutex::new(HashMap::new()),
            ready: Mutex::new(VecDeque::new()),
            blocked_count: AtomicUsize::new(0),
            shift: 64 - n.trailing_zeros(),
            clock: Clock::System,
            sweep_cursor: AtomicUsize::new(0),
            started: Instant::now(),
            lru: AtomicU32::new(0),
            maxmemory: AtomicUsize::new(0),
            policy: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
            rss: AtomicUsize::new(crate::sys::alloc::resident().unwrap_or(0)),
            peak: AtomicUsize::new(0),
            rng: AtomicU64::new(system_now_ms()),
        }
    }

    /// A store whose clock only moves when told to (tests): starts at
    /// `now_ms`, see [`Store::advance_clock`].
    pub fn with_manual_clock(now_ms: u64) -> Store {
        let mut s = Store::with_shards(8);
        s.clock = Clock::Manual(AtomicU64::new(now_ms));
        s
    }

    /// Move a manual clock forward. No effect on the system clock.
    pub fn advance_clock(&self, ms: u64) {
        if let Clock::Manual(t) = &self.clock {
            t.fetch_add(ms, Ordering::Relaxed);
        }
    }

    /// Current time in ms since the Unix epoch (the store's clock).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Seconds since the store was created.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Number of shards (a power of two, fixed at creation): the number of
    /// independent locks writers spread over.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The LRU clock (seconds, 24 bits), as of the last sweep.
    fn lru_clock(&self) -> u32 {
        self.lru.load(Ordering::Relaxed)
    }

    fn shard_index(&self, key: &[u8]) -> usize {
        if self.shift >= 64 {
            0
        } else {
            (shard_hash(key) >> self.shift) as usize
        }
    }

    /// Run `f` on `key`'s slot under its shard lock (expired keys are
    /// deleted first). Keep `f` short: it blocks the shard.
    pub fn with_key<R>(&self, key: &[u8], f: impl FnOnce(&mut Slot<'_>) -> R) -> R {
        let mut shard = lock(&self.shards[self.shard_index(key)]);
        let mut slot = Slot::open(&mut shard, key, &self.clock, self.lru_clock());
        f(&mut slot)
    }

    /// A copy of the value (convenience; the server reads through
    /// [`Store::with_key`] to avoid the copy).
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.with_key(key, |s| s.value().ok().flatten().map(<[u8]>::to_vec))
    }

    /// Store a copy of `value` under `key`, replacing any old value; the TTL
    /// follows `expiry`. Safe to call from any thread (locks one shard).
    pub fn set(&self, key: &[u8], value: &[u8], expiry: Expiry) {
        self.with_key(key, |s| s.set(value, expiry))
    }

    /// Delete `key`; true if it existed.
    pub fn del(&self, key: &[u8]) -> bool {
        self.with_key(key, |s| s.remove())
    }

    /// True if `key` is present and not expired (an expired key is deleted
    /// by this check).
    pub fn exists(&self, key: &[u8]) -> bool {
        self.with_key(key, |s| s.exists())
    }

    /// Set several keys atomically (no reader sees some set and others
    /// not), clearing their TTLs. `kv` alternates key, value.
    ///
    /// # Panics
    /// If `kv` has an odd length.
    pub fn mset<A: AsRef<[u8]>>(&self, kv: &[A]) {
        assert!(kv.len().is_multiple_of(2), "mset needs key/value pairs");
        let keys: Vec<&[u8]> = kv.iter().step_by(2).map(AsRef::as_ref).collect();
        self.with_keys(&keys, |locked| {
            for p in kv.chunks_exact(2) {
                locked
                    .slot(p[0].as_ref())
                    .set(p[1].as_ref(), Expiry::Persist);
            }
        })
    }

    /// Run `f` with the shards of all `keys` locked (in shard order, so
    /// concurrent multi-key commands cannot deadlock): no other client sees
    /// or changes any of them until `f` returns. Single-key commands pay
    /// nothing for this (they lock one shard, [`Store::with_key`]).
    pub fn with_keys<R>(&self, keys: &[&[u8]], f: impl FnOnce(&mut Locked<'_>) -> R) -> R {
        let mut idx: Vec<usize> = keys.iter().map(|k| self.shard_index(k)).collect();
        idx.sort_unstable();
        idx.dedup();
        let guards = idx.iter().map(|&i| lock(&self.shards[i])).collect();
        f(&mut Locked {
            idx,
            guards,
            store: self,
        })
    }

    /// The gate a command of client `id` holds (shared) while it runs. A
    /// transaction's EXEC takes every gate exclusively
    /// ([`Store::exclusive`]), so it runs with no other command in
    /// flight: atomic, as in Redis. Each client's gate is one of 16, picked
    /// by its id, so clients on different threads rarely touch the same
    /// lock and a single-key command pays one uncontended read lock.
    pub fn gate(&self, id: u64) -> RwLockReadGuard<'_, ()> {
        self.gates[(id % GATES as u64) as usize]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every gate, exclusively (in order, so two EXECs cannot deadlock):
    /// no other command runs until the guards drop.
    pub fn exclusive(&self) -> Vec<RwLockWriteGuard<'_, ()>> {
        self.gates
            .iter()
            .map(|g| g.write().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }

    /// Register `w` as waiting on each of its keys, at the back of each
    /// key's queue.
    pub fn block(&self, w: Waiter) {
        let mut q = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        for k in w.keys.iter() {
            q.entry(k.clone()).or_default().push_back(w.clone());
            self.blocked_count.fetch_add(1, Ordering::Release);
        }
    }

    /// Clients blocked now (INFO's `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        let q = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        let ids: HashSet<u64> = q.values().flatten().map(|w| w.id).collect();
        ids.len()
    }

    /// Forget client `id` on `keys` (served, timed out or gone).
    pub fn unblock(&self, id: u64, keys: &[Vec<u8>]) {
        let mut q = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        for k in keys {
            if let Some(queue) = q.get_mut(k) {
                let before = queue.len();
                queue.retain(|w| w.id != id);
                self.blocked_count
                    .fetch_sub(before - queue.len(), Ordering::Release);
                if queue.is_empty() {
                    q.remove(k);
                }
            }
        }
    }

    /// Data was added at `key`: if clients wait on it, it is ready for
    /// [`Store::take_ready`] (the command engine serves them before the
    /// pushing client's next command, as Redis does).
    pub fn signal(&self, key: &[u8]) {
        if self.blocked_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let waited = self
            .blocked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key);
        if waited {
            let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
            if !ready.iter().any(|k| k == key) {
                ready.push_back(key.to_vec());
            }
        }
    }

    /// The next key that got data while clients waited on it, if any.
    pub fn take_ready(&self) -> Option<Vec<u8>> {
        if self.blocked_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    /// The clients waiting on `key`, first come first.
    pub fn waiters_on(&self, key: &[u8]) -> Vec<Waiter> {
        let q = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        q.get(key)
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The waiter of client `id`, if it is blocked (CLIENT UNBLOCK).
    pub fn waiter(&self, id: u64) -> Option<Waiter> {
        let q = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        q.values().flatten().find(|w| w.id == id).cloned()
    }

    /// Watch `key` for the transaction whose flag is `flag`: the flag is
    /// raised when the key is next changed (or the keyspace flushed).
    pub fn watch(&self, key: &[u8], flag: &Arc<AtomicBool>) {
        let mut shard = lock(&self.shards[self.shard_index(key)]);
        let flags = shard.watched.entry(key.to_vec()).or_default();
        flags.retain(|f| f.strong_count() > 0);
        flags.push(Arc::downgrade(flag));
    }

    /// Number of keys, including expired ones not yet removed (as Redis's
    /// DBSIZE).
    pub fn dbsize(&self) -> usize {
        self.shards.iter().map(|s| lock(s).table.len()).sum()
    }

    /// Number of keys with a TTL.
    pub fn expires_count(&self) -> usize {
        self.shards.iter().map(|s| lock(s).expiries.len()).sum()
    }

    /// Delete everything.
    pub fn flush(&self) {
        for s in self.shards.iter() {
            // Swap out under the lock, free outside it.
            let old = {
                let mut shard = lock(s);
                // Every watched key that existed was touched; the others
                // stay watched.
                let existing: Vec<Vec<u8>> = shard
                    .watched
                    .keys()
                    .filter(|k| shard.find(shard.hash(k), k).is_some())
                    .cloned()
                    .collect();
                for k in existing {
                    shard.touch_key(&k);
                }
                (
                    std::mem::take(&mut shard.table),
                    std::mem::take(&mut shard.expiries),
                )
            };
            drop(old);
        }
    }

    /// Call `f` with every live key, one shard at a time (each shard is
    /// locked while it is walked).
    pub fn for_each_key(&self, mut f: impl FnMut(&[u8])) {
        for s in self.shards.iter() {
            let shard = lock(s);
            let now = self.now_ms();
            for n in &shard.table {
                if !Shard::is_expired(n, now) {
                    f(n.key());
                }
            }
        }
    }

    /// One step of a SCAN: live keys in cursor order from `cursor`, about
    /// `count` of them (all those sharing the last one's position too, and
    /// the rest of a shard when little is left of it), each with its kind;
    /// and the next cursor (0 when the walk is done).
    ///
    /// The cursor is a key's 64-bit position hash (the shard hash, whose
    /// top bits pick the shard): every key present for a whole walk is
    /// returned at least once whatever is added or deleted meanwhile, as
    /// Redis promises. A step sorts the rest of one shard, so its cost is
    /// that shard's size, not `count`.
    pub fn scan(&self, cursor: u64, count: usize) -> (Vec<(Vec<u8>, Kind)>, u64) {
        let count = count.max(1);
        let mut cursor = cursor;
        let mut taken: Vec<(Vec<u8>, Kind)> = Vec::new();
        loop {
            let index = self.shard_index_of_hash(cursor);
            let mut found: Vec<(u64, Vec<u8>, Kind)> = {
                let shard = lock(&self.shards[index]);
                let now = self.now_ms();
                shard
                    .table
                    .iter()
                    .filter_map(|n| {
                        let h = shard_hash(n.key());
                        (h >= cursor && !Shard::is_expired(n, now))
                            .then(|| (h, n.key().to_vec(), n.view().kind()))
                    })
                    .collect()
            };
            found.sort_unstable_by_key(|f| f.0);
            let want = count - taken.len().min(count - 1);
            // Keep what is wanted, and every key at the same position as
            // the last kept.
            let keep = if found.len() <= want.max(SCAN_SHARD_REST) {
                found.len()
            } else {
                let last = found[want - 1].0;
                want + found[want..].iter().take_while(|f| f.0 == last).count()
            };
            let whole_shard = keep == found.len();
            found.truncate(keep);
            let next = if whole_shard {
                // On to the next shard's first position (0: the walk is over).
                self.next_shard_start(index).unwrap_or(0)
            } else {
                found.last().map_or(0, |f| f.0.wrapping_add(1))
            };
            taken.extend(found.into_iter().map(|(_, k, kind)| (k, kind)));
            if taken.len() >= count || next == 0 {
                return (taken, next);
            }
            cursor = next;
        }
    }

    fn shard_index_of_hash(&self, h: u64) -> usize {
        if self.shift >= 64 {
            0
        } else {
            (h >> self.shift) as usize
        }
    }

    /// The first cursor position of the shard after `index`, if any.
    fn next_shard_start(&self, index: usize) -> Option<u64> {
        (index + 1 < self.shards.len()).then(|| ((index + 1) as u64) << self.shift)
    }

    /// A random live key (RANDOMKEY), if any.
    pub fn random_key(&self, pick: impl Fn(usize) -> usize) -> Option<Vec<u8>> {
        let n = self.shards.len();
        let start = pick(n);
        for i in 0..n {
            let shard = lock(&self.shards[(start + i) % n]);
            let now = self.now_ms();
            let live = shard.table.iter().filter(|n| !Shard::is_expired(n, now));
            let count = live.clone().count();
            if count > 0 {
                return live.map(|n| n.key().to_vec()).nth(pick(count));
            }
        }
        None
    }

    /// Heap bytes in use: the counting allocator's figure when the program
    /// installed it ([`crate::sys::alloc::Counting`], as `evnet` does),
    /// else the resident set size as of the last sweep.
    pub fn used_memory(&self) -> usize {
        let used =
            crate::sys::alloc::allocated().unwrap_or_else(|| self.rss.load(Ordering::Relaxed));
        self.peak.fetch_max(used, Ordering::Relaxed);
        used
    }

    /// Highest [`Store::used_memory`] seen.
    pub fn peak_memory(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The memory limit in bytes (0: none).
    pub fn maxmemory(&self) -> usize {
        self.maxmemory.load(Ordering::Relaxed)
    }

    /// Set the memory limit (0: none) and what happens past it.
    pub fn set_maxmemory(&self, bytes: usize, policy: Policy) {
        self.maxmemory.store(bytes, Ordering::Relaxed);
        let i = POLICIES.iter().position(|(p, _)| *p == policy).unwrap_or(0);
        self.policy.store(i, Ordering::Relaxed);
    }

    /// The eviction policy.
    pub fn policy(&self) -> Policy {
        POLICIES[self.policy.load(Ordering::Relaxed) % POLICIES.len()].0
    }

    /// Keys evicted so far.
    pub fn evicted_keys(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Before a write that may add data: true if memory is within
    /// `maxmemory` (or there is none), after evicting keys by the policy if
    /// it was not; false if it is still over (the write gets Redis's OOM
    /// error). Costs one load when no limit is set.
    pub fn make_room(&self) -> bool {
        let max = self.maxmemory();
        if max == 0 {
            return true;
        }
        let policy = self.policy();
        for _ in 0..EVICTIONS_PER_WRITE {
            if self.used_memory() <= max {
                return true;
            }
            if policy == Policy::NoEviction || !self.evict_one(policy) {
                return false;
            }
        }
        self.used_memory() <= max
    }

    fn random(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Evict one key by `policy`, trying the shards from a random one; false
    /// if there was nothing to evict.
    fn evict_one(&self, policy: Policy) -> bool {
        let n = self.shards.len();
        let start = self.random() as usize % n;
        let now_lru = self.lru_clock();
        for i in 0..n {
            let mut shard = lock(&self.shards[(start + i) % n]);
            if shard.table.is_empty() || (policy.volatile() && shard.expiries.is_empty()) {
                continue;
            }
            let victim: Option<Vec<u8>> = match policy {
                Policy::VolatileTtl => shard.expiries.first().map(|(_, k)| k.clone()),
                Policy::VolatileRandom => {
                    let skip = self.random() as usize % shard.expiries.len().min(64);
                    shard.expiries.iter().nth(skip).map(|(_, k)| k.clone())
                }
                _ => {
                    // Random probes: a table lookup by a random hash that
                    // accepts any candidate returns a node from a random
                    // place of the table (or none, if that probe meets no
                    // candidate).
                    let want = match policy {
                        Policy::AllKeysRandom => 1,
                        _ => EVICTION_SAMPLES,
                    };
                    let mut best: Option<(u32, Vec<u8>)> = None;
                    let mut found = 0;
                    for _ in 0..EVICTION_PROBES {
                        if found == want {
                            break;
                        }
                        let Some(node) = shard.table.find(self.random(), |_| true) else {
                            continue;
                        };
                        if policy.volatile() && node.expires_at().is_none() {
                            continue;
                        }
                        found += 1;
                        let idle = now_lru.wrapping_sub(node.lru()) & LRU_MASK;
                        if best.as_ref().is_none_or(|(b, _)| idle > *b) {
                            best = Some((idle, node.key().to_vec()));
                        }
                    }
                    best.map(|(_, k)| k).or_else(|| {
                        // Probes found nothing (a very sparse table): take
                        // the first key, or the first volatile one.
                        match policy.volatile() {
                            true => shard.expiries.first().map(|(_, k)| k.clone()),
                            false => shard.table.iter().next().map(|n| n.key().to_vec()),
                        }
                    })
                }
            };
            if let Some(key) = victim {
                let h = shard.hash(&key);
                shard.touch_key(&key);
                shard.remove(h, &key);
                self.evicted.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Active expiry: delete up to `budget` keys whose deadline has passed,
    /// starting at a rotating shard so repeated small sweeps are fair.
    /// Returns how many were deleted. Cost is O(deleted × log n): only due
    /// keys are visited.
    pub fn sweep(&self, budget: usize) -> usize {
        let n = self.shards.len();
        let start = self.sweep_cursor.fetch_add(1, Ordering::Relaxed) % n;
        let now = self.now_ms();
        self.lru.store(
            self.started.elapsed().as_secs() as u32 & LRU_MASK,
            Ordering::Relaxed,
        );
        if crate::sys::alloc::allocated().is_none() && start == 0 {
            // Without the counting allocator, memory is the RSS, read once
            // per round of sweeps.
            if let Some(rss) = crate::sys::alloc::resident() {
                self.rss.store(rss, Ordering::Relaxed);
            }
        }
        let mut removed = 0;
        // Watchers of clients gone without EXEC, DISCARD or UNWATCH: one
        // shard per sweep drops them.
        lock(&self.shards[start])
            .watched
            .retain(|_, flags| flags.iter().any(|f| f.strong_count() > 0));
        for i in 0..n {
            if removed >= budget {
                break;
            }
            let mut shard = lock(&self.shards[(start + i) % n]);
            while removed < budget {
                match shard.expiries.first() {
                    Some(&(t, _)) if t <= now => {}
                    _ => break,
                }
                if let Some((_, key)) = shard.expiries.pop_first() {
                    shard.touch_key(&key);
                    let h = shard.hash(&key);
                    if let Ok(e) = shard.table.find_entry(h, |n| n.key() == key.as_slice()) {
                        e.remove();
                    }
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Check the expiry index against the maps (tests).
    #[cfg(test)]
    fn check_invariants(&self) {
        for s in self.shards.iter() {
            let shard = lock(s);
            let volatile = shard
                .table
                .iter()
                .filter(|n| n.expires_at().is_some())
                .count();
            assert_eq!(volatile, shard.expiries.len());
            for (t, k) in &shard.expiries {
                let n = shard.find(shard.hash(k), k);
                assert_eq!(n.and_then(Node::expires_at), Some(*t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
    }

    #[test]
    fn basic_ops() {
        let s = Store::new();
        assert_eq!(s.get(b"k"), None);
        s.set(b"k", b"v", Expiry::Persist);
        assert_eq!(s.get(b"k"), Some(b"v".to_vec()));
        assert!(s.exists(b"k"));
        assert_eq!(s.dbsize(), 1);
        s.set(b"k", b"longer value", Expiry::Keep);
        assert_eq!(s.get(b"k"), Some(b"longer value".to_vec()));
        assert!(s.del(b"k"));
        assert!(!s.del(b"k"));
        assert_eq!(s.dbsize(), 0);
        s.set(b"", b"", Expiry::Persist);
        assert_eq!(s.get(b""), Some(vec![]));
    }

    #[test]
    fn buffer_reuse_and_shrink() {
        let s = Store::new();
        s.set(b"k", &vec![1u8; 1 << 20], Expiry::Persist);
        s.set(b"k", b"tiny", Expiry::Persist);
        s.with_key(b"k", |slot| {
            assert_eq!(slot.value(), Ok(Some(&b"tiny"[..])));
            // A 1 MiB buffer is not kept around for 4 bytes.
            assert!(slot.value_mut().unwrap().unwrap().capacity() < 1024);
        });
    }

    #[test]
    fn shared_values_never_change_under_their_readers() {
        let s = Store::new();
        s.set(b"k", b"abc", Expiry::Persist);
        let first = s.with_key(b"k", |slot| slot.value_shared()).unwrap();
        let again = s.with_key(b"k", |slot| slot.value_shared()).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one copy for every reader");
        // An in-place edit copies what a reader holds; a write replaces it.
        s.with_key(b"k", |slot| {
            slot.value_mut().unwrap().unwrap().extend_from_slice(b"d")
        });
        assert_eq!(s.get(b"k"), Some(b"abcd".to_vec()));
        s.set(b"k", b"x", Expiry::Persist);
        assert_eq!(s.get(b"k"), Some(b"x".to_vec()));
        assert_eq!(first.as_slice(), b"abc");
        // Without readers an edit is in place, and a removal hands the bytes
        // back.
        drop((first, again));
        let shared = s.with_key(b"k", |slot| slot.value_shared()).unwrap();
        drop(shared);
        s.with_key(b"k", |slot| slot.value_mut().unwrap().unwrap().push(b'y'));
        assert_eq!(s.get(b"k"), Some(b"xy".to_vec()));
        assert!(s.with_key(b"k", |slot| slot.remove()));
        assert_eq!(s.with_key(b"k", |slot| slot.value_shared()), None);
    }

    #[test]
    fn lazy_expiry() {
        let s = Store::with_manual_clock(T0);
        s.set(b"k", b"v", Expiry::At(T0 + 100));
        assert_eq!(s.expires_count(), 1);
        s.advance_clock(99);
        assert_eq!(s.get(b"k"), Some(b"v".to_vec()));
        s.advance_clock(1);
        assert_eq!(s.dbsize(), 1); // not yet touched
        let mut keys = 0;
        s.for_each_key(|_| keys += 1);
        assert_eq!(keys, 0);
        assert_eq!(s.get(b"k"), None);
        assert_eq!(s.dbsize(), 0);
        assert_eq!(s.expires_count(), 0);
        s.check_invariants();
    }

    #[test]
    fn expiry_transitions_keep_index_exact() {
        let s = Store::with_manual_clock(T0);
        s.set(b"a", b"1", Expiry::At(T0 + 10));
        s.set(b"a", b"2", Expiry::Keep);
        s.with_key(b"a", |slot| assert_eq!(slot.expires_at(), Some(T0 + 10)));
        s.set(b"a", b"3", Expiry::At(T0 + 20));
        s.check_invariants();
        s.with_key(b"a", |slot| assert!(slot.set_expiry(Some(T0 + 30))));
        s.with_key(b"a", |slot| assert!(slot.set_expiry(Some(T0 + 30))));
        s.check_invariants();
        assert_eq!(s.expires_count(), 1);
        s.set(b"a", b"4", Expiry::Persist);
        assert_eq!(s.expires_count(), 0);
        s.with_key(b"a", |slot| assert!(slot.set_expiry(Some(T0 + 5))));
        s.with_key(b"a", |slot| {
            slot.set_owned(b"5".to_vec(), Expiry::At(T0 + 6))
        });
        s.check_invariants();
        assert!(s.del(b"a"));
        s.check_invariants();
        assert_eq!(s.expires_count(), 0);
        s.with_key(b"nope", |slot| assert!(!slot.set_expiry(Some(T0))));
        s.check_invariants();
    }

    #[test]
    fn sweep_removes_only_due_keys_within_budget() {
        let s = Store::with_manual_clock(T0);
        for i in 0..100u64 {
            s.set(format!("k{i}").as_bytes(), b"v", Expiry::At(T0 + i));
        }
        s.set(b"forever", b"v", Expiry::Persist);
        assert_eq!(s.sweep(1000), 1); // only k0 is due at T0
        s.advance_clock(49); // k1..=k49 due
        assert_eq!(s.sweep(10), 10);
        assert_eq!(s.sweep(1000), 39);
        assert_eq!(s.sweep(1000), 0);
        assert_eq!(s.dbsize(), 51);
        s.advance_clock(1000);
        let mut total = 0;
        while let n @ 1.. = s.sweep(7) {
            assert!(n <= 7);
            total += n;
        }
        assert_eq!(total, 50);
        assert_eq!(s.dbsize(), 1);
        s.check_invariants();
    }

    #[test]
    fn mset_and_flush() {
        let s = Store::with_manual_clock(T0);
        s.set(b"a", b"old", Expiry::At(T0 + 5));
        let kv: Vec<Vec<u8>> = (0..200)
            .map(|i| format!("x{}", i / 2).into_bytes())
            .collect();
        s.mset(&kv);
        s.mset(&[&b"a"[..], b"new"]);
        assert_eq!(s.get(b"a"), Some(b"new".to_vec()));
        assert_eq!(s.get(b"x7"), Some(b"x7".to_vec()));
        assert_eq!(s.expires_count(), 0);
        assert_eq!(s.dbsize(), 101);
        s.check_invariants();
        s.flush();
        assert_eq!(s.dbsize(), 0);
        assert_eq!(s.expires_count(), 0);
    }

    #[test]
    fn shards_are_used_evenly_enough() {
        let s = Store::new();
        let mut counts = vec![0usize; s.shard_count()];
        for i in 0..64_000 {
            counts[s.shard_index(format!("key:{i}").as_bytes())] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 700 && *max < 1300, "{min}..{max}");
        assert_eq!(Store::with_shards(1).shard_index(b"x"), 0);
        assert_eq!(Store::with_shards(5).shard_count(), 8);
    }

    #[test]
    fn concurrent_writers() {
        let s = Arc::new(Store::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let k = format!("k{}", i % 500);
                        s.with_key(k.as_bytes(), |slot| {
                            let n: u64 = slot
                                .value()
                                .unwrap()
                                .map(|v| std::str::from_utf8(v).unwrap().parse().unwrap())
                                .unwrap_or(0);
                            slot.set((n + 1).to_string().as_bytes(), Expiry::Keep);
                        });
                        if i % 7 == 0 {
                            s.mset(&[
                                format!("m{t}"),
                                "1".to_string(),
                                format!("m{}", (t + 1) % 4),
                                "2".to_string(),
                            ]);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut total = 0u64;
        for i in 0..500 {
            total += std::str::from_utf8(&s.get(format!("k{i}").as_bytes()).unwrap())
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
        assert_eq!(total, 8000);
    }
}
