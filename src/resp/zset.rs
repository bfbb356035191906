//! Sorted sets: members ordered by (score, member), with O(log n) insert,
//! delete, rank and rank-or-score lookups — a skip list whose links carry
//! spans (how many elements each one jumps), as Redis's, kept in one arena
//! (`Vec` of nodes, links as indices: no unsafe, no per-node box), beside a
//! hash map from member to score.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::atomic::Ordering as AtomicOrdering;

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
const MAX_LEVEL: usize = 32;

/// A link of one level: the next node, and copies of what a descent needs
/// of it (its score, where its links are), so a descent reads only the
/// link arena and touches a node only to compare members of equal score.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Link {
    forward: u32,
    /// Elements between this node and `forward` (the forward one counted).
    span: u32,
    /// `forward`'s first link in the arena.
    fbase: u32,
    /// `forward`'s score.
    score: f64,
}

const NO_LINK: Link = Link {
    forward: NIL,
    span: 0,
    fbase: 0,
    score: 0.0,
};

#[derive(Debug, Clone)]
struct Node {
    member: Vec<u8>,
    score: f64,
    backward: u32,
    /// This node's links are `links[base..base + level]`.
    base: u32,
    level: u8,
}

/// A score bound of a range: the value and whether it is excluded (`(`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// The score.
    pub value: f64,
    /// `(value`: the value itself is outside.
    pub exclusive: bool,
}

impl Bound {
    fn below(&self, score: f64) -> bool {
        // Is `score` past this bound as a minimum (i.e. in range)?
        if self.exclusive {
            score > self.value
        } else {
            score >= self.value
        }
    }

    fn above(&self, score: f64) -> bool {
        // Is `score` within this bound as a maximum?
        if self.exclusive {
            score < self.value
        } else {
            score <= self.value
        }
    }
}

/// A member bound of a lexicographic range (BYLEX): `-`, `+`, `[m`
/// (inclusive) or `(m` (exclusive). Meaningful when all scores are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: below every member.
    Min,
    /// `+`: above every member.
    Max,
    /// `[m`.
    Incl(Vec<u8>),
    /// `(m`.
    Excl(Vec<u8>),
}

impl LexBound {
    /// Parse `-`, `+`, `[member`, `(member`.
    pub fn parse(b: &[u8]) -> Option<LexBound> {
        match b.first()? {
            b'-' if b.len() == 1 => Some(LexBound::Min),
            b'+' if b.len() == 1 => Some(LexBound::Max),
            b'[' => Some(LexBound::Incl(b[1..].to_vec())),
            b'(' => Some(LexBound::Excl(b[1..].to_vec())),
            _ => None,
        }
    }

    /// `m` is at or past this bound as a minimum.
    fn min_ok(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(b) => m >= b.as_slice(),
            LexBound::Excl(b) => m > b.as_slice(),
        }
    }

    /// `m` is within this bound as a maximum.
    fn max_ok(&self, m: &[u8]) -> bool {
        match self {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(b) => m <= b.as_slice(),
            LexBound::Excl(b) => m < b.as_slice(),
        }
    }
}

/// The skip list of a sorted set past the compact thresholds.
#[derive(Debug, Clone)]
struct SkipList {
    scores: HashMap<Vec<u8>, f64>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    /// Every node's links, each node's levels side by side.
    links: Vec<Link>,
    /// Freed runs of links, by level count (index `level - 1`).
    free_links: Vec<Vec<u32>>,
    tail: u32,
    level: usize,
    /// xorshift state for node levels.
    seed: u64,
}

fn cmp(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score
        .partial_cmp(&b_score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a_member.cmp(b_member))
}

impl SkipList {
    fn new() -> SkipList {
        SkipList {
            scores: HashMap::new(),
            nodes: vec![Node {
                member: Vec::new(),
                score: 0.0,
                backward: NIL,
                base: 0,
                level: MAX_LEVEL as u8,
            }],
            free: Vec::new(),
            links: vec![NO_LINK; MAX_LEVEL],
            free_links: vec![Vec::new(); MAX_LEVEL],
            tail: NIL,
            level: 1,
            seed: 0x2545_f491_4f6c_dd1d,
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// `member`'s score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    fn link(&self, x: u32, i: usize) -> Link {
        self.links[self.nodes[x as usize].base as usize + i]
    }

    fn link_mut(&mut self, x: u32, i: usize) -> &mut Link {
        let at = self.nodes[x as usize].base as usize + i;
        &mut self.links[at]
    }

    fn node(&self, x: u32) -> &Node {
        &self.nodes[x as usize]
    }

    fn random_level(&mut self) -> usize {
        // P(level > k) = 1/4^k, as Redis.
        let mut level = 1;
        loop {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            if level < MAX_LEVEL && self.seed & 3 == 0 {
                level += 1;
            } else {
                return level;
            }
        }
    }

    /// Set `member`'s score (adding it if new). Returns the old score.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let old = self.scores.get(member).copied();
        if let Some(s) = old {
            if s == score {
                return old;
            }
            self.unlink(member, s);
        }
        self.link_in(member.to_vec(), score);
        match self.scores.get_mut(member) {
            Some(s) => *s = score,
            None => {
                self.scores.insert(member.to_vec(), score);
            }
        }
        old
    }

    /// Remove `member`; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.scores.remove(member)?;
        self.unlink(member, score);
        Some(score)
    }

    /// The descent to where (`score`, `member`) goes: per level, the last
    /// node before it (`update`) and that node's rank (`rank`).
    fn path_to(&self, score: f64, member: &[u8]) -> ([u32; MAX_LEVEL], [u32; MAX_LEVEL]) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let (mut x, mut base) = (HEAD, 0usize);
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.links[base + i];
                if l.forward == NIL {
                    break;
                }
                let before = match l.score.partial_cmp(&score).unwrap_or(Ordering::Equal) {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => self.node(l.forward).member.as_slice() < member,
                };
                if !before {
                    break;
                }
                rank[i] += l.span;
                x = l.forward;
                base = l.fbase as usize;
            }
            update[i] = x;
        }
        (update, rank)
    }

    fn link_in(&mut self, member: Vec<u8>, score: f64) {
        let (mut update, mut rank) = self.path_to(score, &member);
        let lvl = self.random_level();
        if lvl > self.level {
            let len = self.len() as u32;
            for i in self.level..lvl {
                rank[i] = 0;
                update[i] = HEAD;
                self.link_mut(HEAD, i).span = len;
            }
            self.level = lvl;
        }
        let base = match self.free_links[lvl - 1].pop() {
            Some(b) => b,
            None => {
                let b = self.links.len() as u32;
                self.links.resize(self.links.len() + lvl, NO_LINK);
                b
            }
        };
        let node = Node {
            member,
            score,
            backward: if update[0] == HEAD { NIL } else { update[0] },
            base,
            level: lvl as u8,
        };
        let new = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        for i in 0..lvl {
            let up = self.link(update[i], i);
            let gap = rank[0] - rank[i];
            *self.link_mut(new, i) = Link {
                span: up.span - gap,
                ..up
            };
            *self.link_mut(update[i], i) = Link {
                forward: new,
                span: gap + 1,
                fbase: base,
                score,
            };
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(lvl) {
            self.link_mut(u, i).span += 1;
        }
        match self.link(new, 0).forward {
            NIL => self.tail = new,
            f => self.nodes[f as usize].backward = new,
        }
    }

    fn unlink(&mut self, member: &[u8], score: f64) {
        let (update, _) = self.path_to(score, member);
        let x = self.link(update[0], 0).forward;
        debug_assert!(x != NIL && self.node(x).member == member);
        if x == NIL {
            return;
        }
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let ul = self.link(u, i);
            if ul.forward == x {
                let xl = self.link(x, i);
                *self.link_mut(u, i) = Link {
                    span: ul.span + xl.span - 1,
                    ..xl
                };
            } else {
                self.link_mut(u, i).span -= 1;
            }
        }
        let back = self.node(x).backward;
        match self.link(x, 0).forward {
            NIL => self.tail = back,
            f => self.nodes[f as usize].backward = back,
        }
        while self.level > 1 && self.link(HEAD, self.level - 1).forward == NIL {
            self.level -= 1;
        }
        let n = &mut self.nodes[x as usize];
        n.member = Vec::new();
        let (base, level) = (n.base, usize::from(n.level));
        self.free_links[level - 1].push(base);
        self.free.push(x);
    }

    /// The node at 0-based rank `r`.
    fn at_rank(&self, r: usize) -> u32 {
        let want = r as u32 + 1;
        let mut x = HEAD;
        let mut traversed = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.forward == NIL || traversed + l.span > want {
                    break;
                }
                traversed += l.span;
                x = l.forward;
            }
            if traversed == want {
                return x;
            }
        }
        NIL
    }

    /// Members and scores at ranks `start..=stop` (0-based, in range),
    /// ascending or (`rev`) descending.
    pub fn range_by_rank(&self, start: usize, stop: usize, rev: bool) -> Vec<(&[u8], f64)> {
        let n = self.len();
        if start > stop || start >= n {
            return Vec::new();
        }
        let stop = stop.min(n - 1);
        let (first, count) = if rev {
            (n - 1 - start, stop - start + 1)
        } else {
            (start, stop - start + 1)
        };
        let mut out = Vec::with_capacity(count);
        let mut x = self.at_rank(first);
        while x != NIL && out.len() < count {
            let node = self.node(x);
            out.push((node.member.as_slice(), node.score));
            x = if rev {
                node.backward
            } else {
                self.link(x, 0).forward
            };
        }
        out
    }

    /// The number of members before the first one past `keep_going` (a
    /// monotone test along the order): the rank where a range starts or
    /// ends, in O(log n).
    fn rank_while(&self, keep_going: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut x = HEAD;
        let mut rank = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.forward == NIL || {
                    let n = self.node(l.forward);
                    !keep_going(n.score, &n.member)
                } {
                    break;
                }
                rank += l.span;
                x = l.forward;
            }
        }
        rank as usize
    }

    /// Remove and return up to `n` members with the lowest (or, `max`, the
    /// highest) scores, in that order.
    pub fn pop(&mut self, n: usize, max: bool) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::with_capacity(n.min(self.len()));
        while out.len() < n {
            let x = if max {
                self.tail
            } else {
                self.link(HEAD, 0).forward
            };
            if x == NIL {
                break;
            }
            let member = self.node(x).member.clone();
            if let Some(s) = self.remove(&member) {
                out.push((member, s));
            }
        }
        out
    }

    /// Every member with its score, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> {
        let mut x = self.link(HEAD, 0).forward;
        std::iter::from_fn(move || {
            if x == NIL {
                return None;
            }
            let n = self.node(x);
            x = self.link(x, 0).forward;
            Some((n.member.as_slice(), n.score))
        })
    }
}

/// A sorted set: a vector sorted by (score, member) while small (Redis's
/// `zset-max-listpack-entries` and `-value`, [`super::compact::limits`]),
/// a skip list for good once past them. Ranks and ranges are binary searches
/// in the vector, O(log n) descents in the skip list.
#[derive(Debug, Clone)]
pub struct ZSet {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Small(Vec<(f64, Vec<u8>)>),
    Skip(Box<SkipList>),
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet::new()
    }
}

impl PartialEq for ZSet {
    fn eq(&self, other: &ZSet) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ZSet {}

impl ZSet {
    /// An empty sorted set.
    pub fn new() -> ZSet {
        ZSet {
            repr: Repr::Small(Vec::new()),
        }
    }

    /// OBJECT ENCODING's name: `listpack` for the compact form, as Redis
    /// calls its own.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Small(_) => "listpack",
            Repr::Skip(_) => "skiplist",
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(v) => v.len(),
            Repr::Skip(s) => s.len(),
        }
    }

    /// True if there are no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `member`'s score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Small(v) => v.iter().find(|e| e.1 == member).map(|e| e.0),
            Repr::Skip(s) => s.score(member),
        }
    }

    /// Set `member`'s score (adding it if new). Returns the old score.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let v = match &mut self.repr {
            Repr::Small(v) => v,
            Repr::Skip(s) => return s.insert(member, score),
        };
        let old = v.iter().position(|e| e.1 == member).map(|i| (i, v[i].0));
        match old {
            Some((_, s)) if s == score => return Some(s),
            Some((i, _)) => {
                v.remove(i);
            }
            None => {}
        }
        let limits = super::compact::limits();
        let small = v.len() < limits.zset_entries.load(AtomicOrdering::Relaxed)
            && member.len() <= limits.zset_value.load(AtomicOrdering::Relaxed);
        if small {
            let at = v.partition_point(|e| cmp(e.0, &e.1, score, member) == Ordering::Less);
            v.insert(at, (score, member.to_vec()));
        } else {
            let mut skip = SkipList::new();
            for (s, m) in v.drain(..) {
                skip.insert(&m, s);
            }
            skip.insert(member, score);
            self.repr = Repr::Skip(Box::new(skip));
        }
        old.map(|o| o.1)
    }

    /// Remove `member`; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Small(v) => {
                let i = v.iter().position(|e| e.1 == member)?;
                Some(v.remove(i).0)
            }
            Repr::Skip(s) => s.remove(member),
        }
    }

    /// The number of members before the first one failing `keep_going` (a
    /// monotone test along the order).
    fn rank_while(&self, keep_going: impl Fn(f64, &[u8]) -> bool) -> usize {
        match &self.repr {
            Repr::Small(v) => v.partition_point(|e| keep_going(e.0, &e.1)),
            Repr::Skip(s) => s.rank_while(keep_going),
        }
    }

    /// `member`'s 0-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        // Members up to and including this one, less one.
        let through = self.rank_while(|s, m| cmp(s, m, score, member) != Ordering::Greater);
        Some(through - 1)
    }

    /// Members and scores at ranks `start..=stop` (0-based, in range),
    /// ascending or (`rev`) descending.
    pub fn range_by_rank(&self, start: usize, stop: usize, rev: bool) -> Vec<(&[u8], f64)> {
        match &self.repr {
            Repr::Small(v) => {
                let n = v.len();
                if start > stop || start >= n {
                    return Vec::new();
                }
                let stop = stop.min(n - 1);
                let range = if rev {
                    &v[n - 1 - stop..n - start]
                } else {
                    &v[start..=stop]
                };
                let pairs = range.iter().map(|e| (e.1.as_slice(), e.0));
                if rev {
                    pairs.rev().collect()
                } else {
                    pairs.collect()
                }
            }
            Repr::Skip(s) => s.range_by_rank(start, stop, rev),
        }
    }

    /// The rank of the first member with score inside `min` (as a lower
    /// bound): the number of members before it.
    fn rank_from(&self, min: Bound) -> usize {
        self.rank_while(|s, _| !min.below(s))
    }

    /// The number of members with score within `max` (as an upper bound).
    fn rank_through(&self, max: Bound) -> usize {
        self.rank_while(|s, _| max.above(s))
    }

    /// The rank range `lo..hi` of the members within `min..=max` by member
    /// (all scores equal, as BYLEX assumes).
    fn lex_ranks(&self, min: &LexBound, max: &LexBound) -> (usize, usize) {
        let lo = self.rank_while(|_, m| !min.min_ok(m));
        let hi = self.rank_while(|_, m| max.max_ok(m));
        (lo, hi.max(lo))
    }

    /// Number of members within a lexicographic range.
    pub fn lex_count(&self, min: &LexBound, max: &LexBound) -> usize {
        let (lo, hi) = self.lex_ranks(min, max);
        hi - lo
    }

    /// Members within a lexicographic range, ascending (or descending with
    /// `rev`), skipping `offset` and returning at most `limit`.
    pub fn range_by_lex(
        &self,
        min: &LexBound,
        max: &LexBound,
        rev: bool,
        offset: usize,
        limit: Option<usize>,
    ) -> Vec<(&[u8], f64)> {
        let (lo, hi) = self.lex_ranks(min, max);
        self.slice_of(lo, hi, rev, offset, limit)
    }

    /// Ranks `lo..hi`, in order or reversed, after `offset`, at most
    /// `limit`.
    fn slice_of(
        &self,
        lo: usize,
        hi: usize,
        rev: bool,
        offset: usize,
        limit: Option<usize>,
    ) -> Vec<(&[u8], f64)> {
        if hi <= lo {
            return Vec::new();
        }
        let total = hi - lo;
        if offset >= total {
            return Vec::new();
        }
        let take = limit.map_or(total - offset, |l| l.min(total - offset));
        if take == 0 {
            return Vec::new();
        }
        if rev {
            let top = hi - 1 - offset;
            let mut v = self.range_by_rank(top + 1 - take, top, false);
            v.reverse();
            v
        } else {
            self.range_by_rank(lo + offset, lo + offset + take - 1, false)
        }
    }

    /// Number of members with `min <= score <= max` (bounds as given), in
    /// O(log n).
    pub fn count(&self, min: Bound, max: Bound) -> usize {
        self.rank_through(max).saturating_sub(self.rank_from(min))
    }

    /// Members with score in `[min, max]`, ascending (or descending with
    /// `rev`), skipping `offset` and returning at most `limit`.
    pub fn range_by_score(
        &self,
        min: Bound,
        max: Bound,
        rev: bool,
        offset: usize,
        limit: Option<usize>,
    ) -> Vec<(&[u8], f64)> {
        let lo = self.rank_from(min);
        let hi = self.rank_through(max);
        self.slice_of(lo, hi, rev, offset, limit)
    }

    /// Remove and return up to `n` members with the lowest (or, `max`, the
    /// highest) scores, in that order.
    pub fn pop(&mut self, n: usize, max: bool) -> Vec<(Vec<u8>, f64)> {
        match &mut self.repr {
            Repr::Small(v) => {
                let k = n.min(v.len());
                let taken: Vec<(f64, Vec<u8>)> = if max {
                    v.drain(v.len() - k..).rev().collect()
                } else {
                    v.drain(..k).collect()
                };
                taken.into_iter().map(|(s, m)| (m, s)).collect()
            }
            Repr::Skip(s) => s.pop(n, max),
        }
    }

    /// Every member with its score, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> {
        let (small, skip) = match &self.repr {
            Repr::Small(v) => (Some(v.iter().map(|e| (e.1.as_slice(), e.0))), None),
            Repr::Skip(s) => (None, Some(s.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(skip.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incl(v: f64) -> Bound {
        Bound {
            value: v,
            exclusive: false,
        }
    }

    #[test]
    fn lexicographic_ranges_over_equal_scores() {
        let mut z = ZSet::new();
        for m in ["a", "b", "c", "d", "e"] {
            z.insert(m.as_bytes(), 0.0);
        }
        let p = |b: &str| LexBound::parse(b.as_bytes()).unwrap();
        assert_eq!(z.lex_count(&p("-"), &p("+")), 5);
        assert_eq!(z.lex_count(&p("[b"), &p("(d")), 2);
        assert_eq!(z.lex_count(&p("(e"), &p("+")), 0);
        assert_eq!(z.lex_count(&p("[c"), &p("[a")), 0);
        let got: Vec<&[u8]> = z
            .range_by_lex(&p("(a"), &p("[d"), true, 1, Some(2))
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        assert_eq!(got, [b"c", b"b"]);
        assert_eq!(LexBound::parse(b"x"), None);
        assert_eq!(LexBound::parse(b""), None);
    }

    /// Against a plain sorted vector, over random inserts, updates and
    /// removals: order, ranks, rank ranges, score ranges and counts agree.
    #[test]
    fn matches_a_sorted_vector_model() {
        // 100 members stay in the small form; 300 go past it to the skip
        // list.
        for members in [100, 300] {
            model_run(members);
        }
    }

    fn model_run(members: u64) {
        let mut z = ZSet::new();
        let small = members <= 128;
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        let mut seed = 12345u64;
        let mut rnd = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for step in 0..4000 {
            let m = format!("m{}", rnd(members)).into_bytes();
            let op = rnd(10);
            if op < 7 {
                let s = rnd(50) as f64 / 2.0;
                z.insert(&m, s);
                model.retain(|(_, x)| *x != m);
                model.push((s, m));
            } else {
                z.remove(&m);
                model.retain(|(_, x)| *x != m);
            }
            model.sort_by(|a, b| cmp(a.0, &a.1, b.0, &b.1));
            if step % 97 == 0 || step == 3999 {
                let got: Vec<(f64, Vec<u8>)> = z.iter().map(|(m, s)| (s, m.to_vec())).collect();
                assert_eq!(got, model);
                assert_eq!(z.len(), model.len());
                for (i, (_, m)) in model.iter().enumerate() {
                    assert_eq!(z.rank(m), Some(i));
                }
                if !model.is_empty() {
                    let a = rnd(model.len() as u64) as usize;
                    let b = a + rnd(10) as usize;
                    let want: Vec<&[u8]> = model[a..=b.min(model.len() - 1)]
                        .iter()
                        .map(|(_, m)| m.as_slice())
                        .collect();
                    let got: Vec<&[u8]> = z
                        .range_by_rank(a, b, false)
                        .into_iter()
                        .map(|(m, _)| m)
                        .collect();
                    assert_eq!(got, want);
                }
                let (lo, hi) = (rnd(30) as f64 / 2.0, rnd(30) as f64 / 2.0 + 5.0);
                let want = model.iter().filter(|(s, _)| *s >= lo && *s <= hi).count();
                assert_eq!(z.count(incl(lo), incl(hi)), want);
                let ex = Bound {
                    value: lo,
                    exclusive: true,
                };
                let want = model.iter().filter(|(s, _)| *s > lo && *s <= hi).count();
                assert_eq!(z.count(ex, incl(hi)), want);
                let got = z.range_by_score(incl(lo), incl(hi), true, 1, Some(3));
                let mut want: Vec<(&[u8], f64)> = model
                    .iter()
                    .filter(|(s, _)| *s >= lo && *s <= hi)
                    .map(|(s, m)| (m.as_slice(), *s))
                    .collect();
                want.reverse();
                let want: Vec<_> = want.into_iter().skip(1).take(3).collect();
                assert_eq!(got, want);
            }
        }
        assert_eq!(z.encoding(), if small { "listpack" } else { "skiplist" });
        let popped = z.pop(3, false);
        assert_eq!(popped.len(), 3.min(model.len()));
        for (i, (m, s)) in popped.iter().enumerate() {
            assert_eq!((*s, m.clone()), model[i]);
        }
    }
}
