//! A hierarchical hashed timing wheel.
//!
//! # Time model
//!
//! The wheel measures time in nanoseconds since its origin `start`, and
//! groups deadlines into *buckets* of one `tick` (the resolution, e.g. 1 ms).
//! A deadline `d` belongs to bucket `b = ceil(d / tick)`, so bucket `b` holds
//! the deadlines in `((b - 1) * tick, b * tick]`: `b * tick` is the deadline
//! *rounded up* to the tick grid.
//!
//! # Layout
//!
//! ```text
//!             6 levels x 64 slots; a level-L slot spans 64^L ticks
//!
//!  level 5 |s0|s1|s2| ... |s63|   slot = 64^5 ticks   level range 2^36 ticks (~795 days @ 1 ms)
//!  level 4 |s0|s1|s2| ... |s63|   slot = 64^4 ticks   level range 2^30 ticks (~12.4 days)
//!  level 3 |s0|s1|s2| ... |s63|   slot = 64^3 ticks   level range 2^24 ticks (~4.7 hours)
//!  level 2 |s0|s1|s2| ... |s63|   slot = 4096 ticks   level range 2^18 ticks (~4.4 minutes)
//!  level 1 |s0|s1|s2| ... |s63|   slot =   64 ticks   level range 2^12 ticks (~4.1 s)
//!  level 0 |s0|s1|s2| ... |s63|   slot =    1 tick    level range 2^6  ticks (64 ms)
//!  overflow: one list for buckets more than 2^36 ticks ahead, re-examined
//!            (sorted lazily) when the wheel's time enters their 2^36 block.
//!
//!  each level also has a u64 occupancy bitmap (bit s set <=> slot s non-empty),
//!  so the next non-empty slot is one `trailing_zeros` away.
//!
//!  bucket b (a u64 tick count), split into 6-bit digits:
//!       | ...overflow... | d5 | d4 | d3 | d2 | d1 | d0 |
//!  Let `elapsed` be the wheel's current tick. A timer in bucket b lives at
//!  level L = the highest digit in which b and `elapsed` differ (0 if none),
//!  in slot d_L(b). When `elapsed` reaches the start of a level-L slot
//!  (L >= 1) the slot is *cascaded*: each timer is re-linked, relative to
//!  the new `elapsed`, into a strictly lower level.
//! ```
//!
//! Timers are stored in a slab (`Vec` of nodes + free list) and linked into
//! per-slot intrusive doubly-linked lists by `u32` index, so insert and cancel
//! are O(1). A node is 24 bytes + `Option<T>` (32 bytes + `T` in the worst
//! case). A [`TimerKey`] carries the slab index and a generation counter that
//! is bumped whenever a node is freed, so a stale key (fired, cancelled, or
//! whose node was reused) never touches anything.
//!
//! Every slot list also carries a `sorted` flag (sorted by exact deadline,
//! ties in insertion order). Appending in deadline order keeps it sorted
//! (the common case: fixed timeouts added as time moves forward, and
//! cascades of sorted lists); an out-of-order append clears the flag and the
//! list is stable-sorted (adaptive, so nearly sorted lists are cheap) the next
//! time its head is needed. This lets `next_deadline` report the *exact*
//! earliest deadline and lets `poll_expired` emit timers in deadline order.
//!
//! # Invariants
//!
//! * **Never early**: `poll_expired(now, ..)` returns a timer only if its
//!   deadline `<= now`. Deadlines are kept at nanosecond precision, so
//!   there is no early firing from rounding.
//! * **At most one tick late**: `poll_expired(now, ..)` returns *every* timer
//!   whose deadline `<= now` (a timer is never held back even by a fraction
//!   of a tick relative to poll time). [`TimerWheel::next_deadline`] rounds
//!   the earliest deadline *up* to the tick grid, so an event loop that
//!   sleeps until `next_deadline()` and then polls fires each timer less than
//!   one tick after its deadline (plus the OS's wake-up latency).
//! * A deadline already in the past (before the last poll) fires on the next
//!   `poll_expired`, whatever `now` it is given.
//! * Every armed timer's bucket is `>= elapsed`; occupied slots at level
//!   `L >= 1` are strictly after `elapsed`'s digit at that level, so the
//!   earliest timer is in the lowest occupied level's lowest occupied slot.
//!
//! # Costs
//!
//! * `insert`, `cancel`: O(1).
//! * `poll_expired`: O(levels) per non-empty slot reached, plus O(1) per
//!   timer fired or cascaded (each timer cascades at most `LEVELS` times,
//!   plus once out of the overflow list). Empty slots are skipped via the
//!   bitmaps, so a huge time gap costs nothing extra.
//! * `next_deadline`: O(levels), plus a sort of the earliest slot if an
//!   out-of-order insert landed in it since it was last sorted.

use std::fmt;
use std::time::{Duration, Instant};

/// Bits of bucket number resolved by one level.
const LEVEL_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << LEVEL_BITS;
/// Number of wheel levels (the overflow list comes on top of these).
const LEVELS: usize = 6;
/// Buckets whose number differs from `elapsed` at or above this bit go to
/// the overflow list.
const TOP_SHIFT: u32 = LEVEL_BITS * LEVELS as u32;
/// Index of the overflow list in `lists`.
const OVERFLOW: usize = LEVELS * SLOTS;
/// "No node" marker for the intrusive lists and the free list.
const NIL: u32 = u32::MAX;

/// Handle to an armed timer, returned by [`TimerWheel::insert`].
///
/// It names a slab index plus a generation, so a key whose timer has fired
/// or been cancelled never affects a timer that later reuses the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

/// Work counters, for complexity tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WheelStats {
    /// Slots processed by `poll_expired` (fired, partially checked, cascaded
    /// or re-examined). Empty slots skipped through the bitmaps don't count.
    pub slot_visits: u64,
    /// Timers moved from a higher level (or the overflow list) to a lower one.
    pub cascades: u64,
    /// Successful `insert` calls.
    pub inserts: u64,
    /// `cancel` calls that disarmed a timer.
    pub cancels: u64,
}

/// A slab node: either an armed timer (`value` is `Some`) linked into the
/// list `slot`, or a free node whose `next` links the free list.
struct Node<T> {
    /// Deadline in nanoseconds since the wheel's origin.
    deadline: u64,
    prev: u32,
    next: u32,
    generation: u32,
    /// Index into `TimerWheel::lists` of the list holding this timer.
    slot: u16,
    value: Option<T>,
}

/// Head of one slot's intrusive list.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    /// The list is in non-decreasing deadline order (ties in insertion order).
    sorted: bool,
}

const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
    sorted: true,
};

/// A hierarchical hashed timing wheel storing a `T` per timer.
///
/// See the [module documentation](self) for the layout and guarantees.
pub struct TimerWheel<T> {
    start: Instant,
    tick: Duration,
    tick_ns: u64,
    /// Current bucket: every timer in an earlier bucket has fired; this
    /// bucket may be partially fired.
    elapsed: u64,
    /// Largest `now` seen by `poll_expired`, in ns since `start`.
    now_ns: u64,
    nodes: Vec<Node<T>>,
    free_head: u32,
    len: usize,
    /// `LEVELS * SLOTS` slot lists followed by the overflow list.
    lists: Box<[List]>,
    occupied: [u64; LEVELS],
    /// Reused buffer for sorting a list.
    scratch: Vec<u32>,
    stats: WheelStats,
}

impl<T> TimerWheel<T> {
    /// Creates an empty wheel. `tick` is the resolution (e.g. 1 ms); `start`
    /// the wheel's time origin (deadlines before it count as `start`).
    ///
    /// # Panics
    /// If `tick` is zero or longer than `u64::MAX` nanoseconds.
    pub fn new(tick: Duration, start: Instant) -> Self {
        let tick_ns = u64::try_from(tick.as_nanos()).expect("timer tick too long");
        assert!(tick_ns > 0, "timer tick must be non-zero");
        TimerWheel {
            start,
            tick,
            tick_ns,
            elapsed: 0,
            now_ns: 0,
            nodes: Vec::new(),
            free_head: NIL,
            len: 0,
            lists: vec![EMPTY_LIST; OVERFLOW + 1].into_boxed_slice(),
            occupied: [0; LEVELS],
            scratch: Vec::new(),
            stats: WheelStats::default(),
        }
    }

    /// The resolution given to [`TimerWheel::new`].
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Work counters since creation.
    pub fn stats(&self) -> WheelStats {
        self.stats
    }

    /// Arms a timer. O(1). A deadline in the past fires on the next
    /// [`TimerWheel::poll_expired`].
    ///
    /// # Panics
    /// If more than `u32::MAX - 1` timers are armed at once.
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        let deadline = self.ns_since_start(deadline);
        // A bucket before `elapsed` has already been swept; park the timer in
        // the current bucket, which the next poll always processes.
        let bucket = self.bucket_of(deadline).max(self.elapsed);
        let slot = self.slot_for(bucket);
        let index = match self.free_head {
            NIL => {
                let index = u32::try_from(self.nodes.len())
                    .ok()
                    .filter(|&i| i != NIL)
                    .expect("too many timers");
                self.nodes.push(Node {
                    deadline,
                    prev: NIL,
                    next: NIL,
                    generation: 0,
                    slot: 0,
                    value: Some(value),
                });
                index
            }
            index => {
                let node = &mut self.nodes[index as usize];
                self.free_head = node.next;
                node.deadline = deadline;
                node.value = Some(value);
                index
            }
        };
        self.link(index, slot);
        self.len += 1;
        self.stats.inserts += 1;
        TimerKey {
            index,
            generation: self.nodes[index as usize].generation,
        }
    }

    /// Disarms a timer. O(1). Returns its value if it was still armed; a
    /// stale key (fired, cancelled, or from a reused slot) returns `None`
    /// and changes nothing.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let node = self.nodes.get(key.index as usize)?;
        if node.generation != key.generation || node.value.is_none() {
            return None;
        }
        self.unlink(key.index);
        self.stats.cancels += 1;
        Some(self.release(key.index))
    }

    /// The earliest deadline among armed timers, rounded up to the tick grid
    /// (never earlier than the true deadline), or `None` if none is armed.
    ///
    /// O(levels), plus sorting the earliest slot if it received an
    /// out-of-order insert since it was last sorted. Takes `&mut self` for
    /// that lazy sort.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let (list, _) = self.earliest()?;
        self.ensure_sorted(list);
        let head = self.lists[list].head;
        let deadline = self.nodes[head as usize].deadline;
        let rounded = u128::from(self.bucket_of(deadline)) * u128::from(self.tick_ns);
        let secs = u64::try_from(rounded / 1_000_000_000).unwrap_or(u64::MAX);
        // `rounded % 1e9` is below 1e9, so the cast is lossless.
        let rounded = Duration::new(secs, (rounded % 1_000_000_000) as u32);
        Some(
            self.start
                .checked_add(rounded)
                .unwrap_or_else(|| self.start + Duration::from_nanos(deadline)),
        )
    }

    /// Moves every timer whose deadline is `<= now` into `out`, in deadline
    /// order (ties in insertion order), cascading higher levels as time
    /// advances. Cost: O(levels) per non-empty slot reached plus O(1) per
    /// timer fired or cascaded; empty slots are skipped through the bitmaps.
    ///
    /// `now` earlier than a previous poll's is treated as that earlier poll's
    /// time (the wheel's clock never goes backwards).
    pub fn poll_expired(&mut self, now: Instant, out: &mut Vec<T>) {
        let now_ns = self.ns_since_start(now).max(self.now_ns);
        self.now_ns = now_ns;
        // Buckets before `target` lie entirely at or before `now`; `target`
        // itself may hold deadlines on both sides of `now`.
        let target = (now_ns / self.tick_ns).saturating_add(1);
        while let Some((list, start)) = self.earliest() {
            if start > target {
                break;
            }
            self.stats.slot_visits += 1;
            self.elapsed = start;
            if list < SLOTS {
                self.ensure_sorted(list);
                loop {
                    let head = self.lists[list].head;
                    if head == NIL || self.nodes[head as usize].deadline > now_ns {
                        break;
                    }
                    self.unlink(head);
                    out.push(self.release(head));
                }
                if self.lists[list].head != NIL {
                    // Only the current bucket can be left partially fired.
                    debug_assert_eq!(start, target);
                    break;
                }
            } else if list < OVERFLOW {
                self.cascade(list);
            } else {
                self.reexamine_overflow();
            }
        }
        self.elapsed = target;
    }

    fn ns_since_start(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The bucket of a deadline: the tick it rounds up to.
    fn bucket_of(&self, deadline_ns: u64) -> u64 {
        deadline_ns.div_ceil(self.tick_ns)
    }

    /// The list a timer in `bucket` (`>= elapsed`) belongs to right now.
    fn slot_for(&self, bucket: u64) -> usize {
        debug_assert!(bucket >= self.elapsed);
        let highest_diff = 63 - ((bucket ^ self.elapsed) | (SLOTS as u64 - 1)).leading_zeros();
        let level = (highest_diff / LEVEL_BITS) as usize;
        if level >= LEVELS {
            OVERFLOW
        } else {
            let digit = (bucket >> (level as u32 * LEVEL_BITS)) as usize & (SLOTS - 1);
            level * SLOTS + digit
        }
    }

    /// The list holding the earliest timers and the bucket where that list
    /// starts, or `None` if the wheel is empty.
    fn earliest(&mut self) -> Option<(usize, u64)> {
        for (level, &bits) in self.occupied.iter().enumerate() {
            if bits != 0 {
                let digit = u64::from(bits.trailing_zeros());
                let shift = level as u32 * LEVEL_BITS;
                let block = self.elapsed & !((1u64 << (shift + LEVEL_BITS)) - 1);
                let start = block | (digit << shift);
                debug_assert!(start >= self.elapsed);
                return Some((level * SLOTS + digit as usize, start));
            }
        }
        if self.lists[OVERFLOW].head == NIL {
            return None;
        }
        self.ensure_sorted(OVERFLOW);
        let head = self.lists[OVERFLOW].head;
        let bucket = self.bucket_of(self.nodes[head as usize].deadline);
        Some((OVERFLOW, (bucket >> TOP_SHIFT) << TOP_SHIFT))
    }

    /// Appends node `index` to list `list`.
    fn link(&mut self, index: u32, list: usize) {
        let tail = self.lists[list].tail;
        let deadline = self.nodes[index as usize].deadline;
        {
            let node = &mut self.nodes[index as usize];
            node.prev = tail;
            node.next = NIL;
            node.slot = list as u16;
        }
        if tail == NIL {
            self.lists[list] = List {
                head: index,
                tail: index,
                sorted: true,
            };
            if list < OVERFLOW {
                self.occupied[list / SLOTS] |= 1 << (list % SLOTS);
            }
        } else {
            let tail_node = &mut self.nodes[tail as usize];
            tail_node.next = index;
            let in_order = tail_node.deadline <= deadline;
            let l = &mut self.lists[list];
            l.tail = index;
            l.sorted &= in_order;
        }
    }

    /// Removes node `index` from the list it is in. Removal keeps a sorted
    /// list sorted.
    fn unlink(&mut self, index: u32) {
        let (prev, next, list) = {
            let node = &self.nodes[index as usize];
            (node.prev, node.next, node.slot as usize)
        };
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list].tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        if self.lists[list].head == NIL {
            self.lists[list] = EMPTY_LIST;
            if list < OVERFLOW {
                self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
            }
        }
    }

    /// Frees an unlinked node and returns its value, invalidating its keys.
    fn release(&mut self, index: u32) -> T {
        let node = &mut self.nodes[index as usize];
        let value = node.value.take().expect("released an unarmed timer");
        node.generation = node.generation.wrapping_add(1);
        node.prev = NIL;
        node.next = self.free_head;
        self.free_head = index;
        self.len -= 1;
        value
    }

    /// Stable-sorts list `list` by deadline unless it is known to be sorted.
    fn ensure_sorted(&mut self, list: usize) {
        if self.lists[list].sorted {
            return;
        }
        let mut order = std::mem::take(&mut self.scratch);
        order.clear();
        let mut cur = self.lists[list].head;
        while cur != NIL {
            order.push(cur);
            cur = self.nodes[cur as usize].next;
        }
        order.sort_by_key(|&i| self.nodes[i as usize].deadline);
        let mut prev = NIL;
        for &i in &order {
            let node = &mut self.nodes[i as usize];
            node.prev = prev;
            node.next = NIL;
            if prev != NIL {
                self.nodes[prev as usize].next = i;
            }
            prev = i;
        }
        self.lists[list] = List {
            head: order[0],
            tail: prev,
            sorted: true,
        };
        self.scratch = order;
    }

    /// Re-links every timer of a level >= 1 list (whose start `elapsed` has
    /// just reached) into lower levels, preserving list order.
    fn cascade(&mut self, list: usize) {
        let mut cur = self.lists[list].head;
        self.lists[list] = EMPTY_LIST;
        self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        while cur != NIL {
            let next = self.nodes[cur as usize].next;
            let bucket = self.bucket_of(self.nodes[cur as usize].deadline);
            let target = self.slot_for(bucket);
            debug_assert!(target / SLOTS < list / SLOTS);
            self.link(cur, target);
            self.stats.cascades += 1;
            cur = next;
        }
    }

    /// Moves the overflow timers that now fall within the wheel's range
    /// (the sorted list's prefix in `elapsed`'s 2^36-tick block) into it.
    fn reexamine_overflow(&mut self) {
        self.ensure_sorted(OVERFLOW);
        loop {
            let head = self.lists[OVERFLOW].head;
            if head == NIL {
                break;
            }
            let bucket = self.bucket_of(self.nodes[head as usize].deadline);
            if bucket >> TOP_SHIFT != self.elapsed >> TOP_SHIFT {
                break;
            }
            self.unlink(head);
            let target = self.slot_for(bucket);
            self.link(head, target);
            self.stats.cascades += 1;
        }
    }
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("tick", &self.tick)
            .field("len", &self.len)
            .field("elapsed_ticks", &self.elapsed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use std::collections::{BTreeMap, HashSet};

    const MS: Duration = Duration::from_millis(1);

    fn at(start: Instant, ns: u64) -> Instant {
        start + Duration::from_nanos(ns)
    }

    fn poll<T>(w: &mut TimerWheel<T>, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        w.poll_expired(now, &mut out);
        out
    }

    #[test]
    fn node_is_small() {
        assert!(std::mem::size_of::<Node<()>>() <= 32);
        assert!(std::mem::size_of::<Node<u64>>() <= 48);
        assert!(std::mem::size_of::<Node<usize>>() <= 48 + 8);
    }

    #[test]
    fn fires_in_deadline_order_across_levels() {
        let day = Duration::from_secs(86_400);
        let deadlines = [
            (MS, "1ms"),
            (70 * MS, "70ms"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(600), "10min"),
            (3 * day, "3days"),
        ];
        // 1 µs ticks push 3 days (2.6e11 ticks) into the overflow list.
        for tick in [MS, Duration::from_micros(1), Duration::from_nanos(1)] {
            let start = Instant::now();
            let mut w = TimerWheel::new(tick, start);
            // Insert in a scrambled order.
            for &i in &[3, 0, 4, 2, 1] {
                w.insert(start + deadlines[i].0, deadlines[i].1);
            }
            assert_eq!(w.len(), 5);
            let mut fired = Vec::new();
            for &(d, name) in &deadlines {
                // Just before the deadline: nothing new.
                assert!(poll(&mut w, start + d - Duration::from_nanos(1)).is_empty());
                assert_eq!(w.next_deadline(), Some(start + d));
                let got = poll(&mut w, start + d);
                assert_eq!(got, vec![name], "tick {tick:?}");
                fired.extend(got);
            }
            assert_eq!(fired, ["1ms", "70ms", "5s", "10min", "3days"]);
            assert!(w.is_empty());
            assert_eq!(w.next_deadline(), None);

            // All at once after a huge gap: still in order, few slot visits.
            let mut w = TimerWheel::new(tick, start);
            for &i in &[4, 1, 3, 0, 2] {
                w.insert(start + deadlines[i].0, deadlines[i].1);
            }
            assert_eq!(
                poll(&mut w, start + 4 * day),
                ["1ms", "70ms", "5s", "10min", "3days"]
            );
            let s = w.stats();
            assert!(s.slot_visits <= 5 * (LEVELS as u64 + 1), "{s:?}");
            assert!(s.cascades <= 5 * (LEVELS as u64 + 1), "{s:?}");
        }
    }

    #[test]
    fn never_early_at_most_one_tick_late() {
        let mut rng = StdRng::seed_from_u64(7);
        let start = Instant::now();
        let tick = MS;
        let tick_ns = 1_000_000u64;
        let mut w = TimerWheel::new(tick, start);
        let mut deadline_of = Vec::new();
        for i in 0..5_000usize {
            let d = rng.gen_range(1..10_000 * tick_ns);
            deadline_of.push(d);
            w.insert(at(start, d), i);
        }
        // Poll at random (sub-tick) times: exactly the due timers fire.
        let mut last = 0u64;
        let mut fired = vec![false; deadline_of.len()];
        while !w.is_empty() {
            let now = last + rng.gen_range(1..3 * tick_ns);
            for i in poll(&mut w, at(start, now)) {
                let d = deadline_of[i];
                assert!(d <= now, "fired early: deadline {d} now {now}");
                assert!(d > last, "fired late: deadline {d} was due at {last}");
                assert!(!fired[i]);
                fired[i] = true;
            }
            last = now;
        }
        assert!(fired.iter().all(|&f| f));

        // An event loop sleeping until next_deadline(): < 1 tick late.
        let mut w = TimerWheel::new(tick, start);
        for (i, &d) in deadline_of.iter().enumerate() {
            w.insert(at(start, d), i);
        }
        let mut count = 0;
        while let Some(wake) = w.next_deadline() {
            let now = wake.duration_since(start).as_nanos() as u64;
            let got = poll(&mut w, wake);
            assert!(!got.is_empty());
            for i in got {
                let d = deadline_of[i];
                assert!(d <= now && now - d < tick_ns, "deadline {d} fired at {now}");
                count += 1;
            }
        }
        assert_eq!(count, deadline_of.len());
    }

    #[test]
    fn past_deadlines_fire_on_next_poll() {
        let start = Instant::now();
        let mut w = TimerWheel::new(MS, start);
        assert!(poll(&mut w, start + 100 * MS).is_empty());
        // Before the origin, at the origin, and earlier in the current tick.
        w.insert(start + 50 * MS, 'b');
        w.insert(start.checked_sub(MS).unwrap_or(start), 'a');
        w.insert(start + 100 * MS, 'c');
        w.insert(start + 100 * MS + Duration::from_nanos(1), 'd');
        let nd = w.next_deadline().unwrap();
        assert!(nd <= start + 100 * MS, "past timers report a past deadline");
        // Even a poll "in the past" fires them.
        assert_eq!(poll(&mut w, start + 10 * MS), ['a', 'b', 'c']);
        assert_eq!(w.next_deadline(), Some(start + 101 * MS));
        assert_eq!(poll(&mut w, start + 101 * MS), ['d']);
    }

    #[test]
    fn cancel_semantics() {
        let start = Instant::now();
        let mut w = TimerWheel::new(MS, start);
        let a = w.insert(start + 10 * MS, 1);
        let b = w.insert(start + 20 * MS, 2);
        let c = w.insert(start + 5_000 * MS, 3);
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(w.cancel(a), None, "double cancel");
        assert_eq!(w.cancel(c), Some(3), "cancel from a higher level");
        assert_eq!(w.len(), 1);
        assert_eq!(poll(&mut w, start + 10 * MS), Vec::<i32>::new());
        assert_eq!(poll(&mut w, start + 20 * MS), [2]);
        assert_eq!(w.cancel(b), None, "cancel after firing");

        // Stale key after its slab slot is reused.
        let d = w.insert(start + 30 * MS, 4);
        assert_eq!(w.cancel(d), Some(4));
        let e = w.insert(start + 30 * MS, 5);
        assert_eq!(e.index, d.index, "slot reused");
        assert_ne!(e, d);
        assert_eq!(w.cancel(d), None);
        assert_eq!(w.len(), 1);
        assert_eq!(poll(&mut w, start + 10_000 * MS), [5]);
        assert_eq!(w.cancel(e), None);
        assert!(w.is_empty());
        assert_eq!(w.stats().cancels, 3);
        assert_eq!(w.stats().inserts, 5);
    }

    #[test]
    fn next_deadline_tracks_inserts_cancels_polls() {
        let start = Instant::now();
        let mut w = TimerWheel::new(MS, start);
        assert_eq!(w.next_deadline(), None);
        let us = Duration::from_micros(1);
        let a = w.insert(start + 300 * MS + 500 * us, "a");
        assert_eq!(w.next_deadline(), Some(start + 301 * MS), "rounded up");
        let b = w.insert(start + 7 * MS, "b");
        assert_eq!(w.next_deadline(), Some(start + 7 * MS), "exact on the grid");
        let c = w.insert(start + 90 * MS + us, "c");
        let d = w.insert(start + 80 * MS, "d");
        assert_eq!(w.cancel(b), Some("b"));
        // "c" and "d" share a level-1 slot; the later one was inserted first.
        assert_eq!(w.next_deadline(), Some(start + 80 * MS));
        assert_eq!(w.cancel(d), Some("d"));
        assert_eq!(w.next_deadline(), Some(start + 91 * MS));
        assert!(poll(&mut w, start + 90 * MS).is_empty());
        assert_eq!(w.next_deadline(), Some(start + 91 * MS));
        assert_eq!(poll(&mut w, start + 90 * MS + us), ["c"]);
        assert_eq!(w.next_deadline(), Some(start + 301 * MS));
        assert_eq!(w.cancel(c), None);
        assert_eq!(w.cancel(a), Some("a"));
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn many_timers_linear_work() {
        const N: usize = 100_000;
        let mut rng = StdRng::seed_from_u64(42);
        let start = Instant::now();
        let tick_ns = 1_000_000u64;
        let mut w = TimerWheel::new(MS, start);
        // Deadlines up to ~1 hour, log-uniformly spread so all levels are used.
        let mut deadline_of = Vec::with_capacity(N);
        let mut keys = Vec::with_capacity(N);
        for i in 0..N {
            let bits = rng.gen_range(10..42u32);
            let d = rng.gen_range(0..1u64 << bits);
            deadline_of.push(d);
            keys.push(w.insert(at(start, d), i));
        }
        let mut order: Vec<usize> = (0..N).collect();
        order.shuffle(&mut rng);
        let mut cancelled = HashSet::new();
        for &i in &order[..N / 2] {
            assert_eq!(w.cancel(keys[i]), Some(i));
            cancelled.insert(i);
        }
        assert_eq!(w.len(), N - N / 2);

        let max_deadline = *deadline_of.iter().max().unwrap();
        let mut now = 0u64;
        let mut polls = 0u64;
        let mut fired = vec![false; N];
        let mut last_deadline = 0u64;
        let mut out = Vec::new();
        while now <= max_deadline {
            now += rng.gen_range(1..2_000 * tick_ns);
            out.clear();
            w.poll_expired(at(start, now), &mut out);
            polls += 1;
            for &i in &out {
                assert!(!cancelled.contains(&i), "cancelled timer fired");
                assert!(!fired[i], "fired twice");
                fired[i] = true;
                let d = deadline_of[i];
                assert!(d <= now);
                assert!(d >= last_deadline, "out of deadline order");
                last_deadline = d;
            }
        }
        assert!(w.is_empty());
        let fired_count = fired.iter().filter(|&&f| f).count();
        assert_eq!(fired_count, N - N / 2);

        let s = w.stats();
        let ticks = now / tick_ns + 1;
        let n = N as u64;
        assert_eq!(s.inserts, n);
        assert_eq!(s.cancels, n / 2);
        assert!(s.cascades <= LEVELS as u64 * n, "{s:?}");
        // Each visit fires or cascades at least one timer, except at most
        // one partial check of the current tick per poll.
        assert!(
            s.slot_visits <= polls + s.cascades + fired_count as u64,
            "{s:?}"
        );
        assert!(
            s.slot_visits <= ticks + ticks / (SLOTS as u64 - 1) + polls,
            "{s:?}"
        );
    }

    #[test]
    fn repeated_polls_within_a_tick_are_cheap() {
        let start = Instant::now();
        let mut w = TimerWheel::new(MS, start);
        for i in 0..1000u64 {
            w.insert(start + 5 * MS + Duration::from_nanos(i * 997), i);
        }
        let before = w.stats();
        let mut fired = Vec::new();
        let mut polls = 0;
        for step in 0..1000u64 {
            let now = start + 4 * MS + Duration::from_nanos(step * 2_000);
            w.poll_expired(now, &mut fired);
            polls += 1;
        }
        assert!(fired.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(fired.len(), 1000);
        let s = w.stats();
        // One cascade of the level-1 slot at most, then one visit per poll.
        assert!(s.slot_visits - before.slot_visits <= polls + 1, "{s:?}");
    }

    #[test]
    fn ties_fire_in_insertion_order() {
        let start = Instant::now();
        let mut w = TimerWheel::new(MS, start);
        let d = start + 5_000 * MS;
        for i in 0..10 {
            w.insert(d, i);
            w.insert(start + 4_000 * MS + Duration::from_nanos(i), 100 + i);
        }
        assert!(poll(&mut w, start + 3_000 * MS).is_empty());
        for i in 10..20 {
            w.insert(d, i);
        }
        let got = poll(&mut w, d);
        assert_eq!(&got[10..], (0..20).collect::<Vec<_>>());
    }

    /// A time offset in tick units plus a quarter-tick fraction, so that
    /// same-bucket collisions and sub-tick orderings are common.
    #[derive(Debug, Clone, Copy)]
    struct Offset {
        ticks: u64,
        quarters: u64,
    }

    impl Offset {
        fn ns(self, tick_ns: u64) -> u64 {
            self.ticks * tick_ns + self.quarters * tick_ns / 4
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Insert at `now + offset` (or `now - offset` if `past`).
        Insert {
            offset: Offset,
            past: bool,
        },
        /// Cancel the n-th key ever issued (modulo), possibly stale.
        Cancel(usize),
        /// Advance time by the offset and poll.
        Poll(Offset),
        NextDeadline,
    }

    /// Log-uniform tick counts up to 2^max_bits (1 ns ticks reach the
    /// overflow list at 2^36), quarters in 0..4.
    fn offset(max_bits: u32) -> impl Strategy<Value = Offset> {
        (
            (0..=max_bits).prop_flat_map(|bits| 0..=(1u64 << bits)),
            0..4u64,
        )
            .prop_map(|(ticks, quarters)| Offset { ticks, quarters })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (offset(40), 0..10u8).prop_map(|(offset, p)| Op::Insert { offset, past: p == 0 }),
            2 => any::<usize>().prop_map(Op::Cancel),
            2 => offset(38).prop_map(Op::Poll),
            2 => Just(Op::NextDeadline),
        ]
    }

    /// Keeps model times well inside `Instant`'s and the wheel's range.
    const LIMIT: u64 = 1 << 62;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn matches_btreemap_model(
            tick_ns in prop_oneof![Just(1u64), Just(7), Just(1_000), Just(1_000_000)],
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            let start = Instant::now();
            let mut w = TimerWheel::new(Duration::from_nanos(tick_ns), start);
            // (deadline, seq) -> seq; armed keys by seq.
            let mut model: BTreeMap<(u64, u64), u64> = BTreeMap::new();
            let mut keys: Vec<(TimerKey, u64)> = Vec::new();
            let mut armed: BTreeMap<u64, u64> = BTreeMap::new(); // seq -> deadline
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Insert { offset, past } => {
                        let off = offset.ns(tick_ns);
                        let d = if past { now.saturating_sub(off) } else { (now + off).min(LIMIT) };
                        let seq = keys.len() as u64;
                        let key = w.insert(at(start, d), seq);
                        keys.push((key, seq));
                        model.insert((d, seq), seq);
                        armed.insert(seq, d);
                    }
                    Op::Cancel(n) => {
                        if keys.is_empty() { continue; }
                        let (key, seq) = keys[n % keys.len()];
                        let expect = armed.remove(&seq).map(|d| {
                            model.remove(&(d, seq));
                            seq
                        });
                        prop_assert_eq!(w.cancel(key), expect);
                    }
                    Op::Poll(step) => {
                        now = (now + step.ns(tick_ns)).min(LIMIT);
                        let mut got = Vec::new();
                        w.poll_expired(at(start, now), &mut got);
                        let due: Vec<(u64, u64)> =
                            model.range(..=(now, u64::MAX)).map(|(&k, _)| k).collect();
                        let mut expect = Vec::new();
                        for k in due {
                            model.remove(&k);
                            armed.remove(&k.1);
                            expect.push(k.1);
                        }
                        prop_assert_eq!(got, expect);
                    }
                    Op::NextDeadline => {
                        let expect = model.keys().next().map(|&(d, _)| {
                            let rounded = d.div_ceil(tick_ns) as u128 * tick_ns as u128;
                            start + Duration::from_nanos(rounded as u64)
                        });
                        prop_assert_eq!(w.next_deadline(), expect);
                    }
                }
                prop_assert_eq!(w.len(), model.len());
            }
            // Drain everything far in the future, in order.
            let mut got = Vec::new();
            w.poll_expired(at(start, u64::MAX / 2), &mut got);
            let expect: Vec<u64> = model.values().copied().collect();
            prop_assert_eq!(got, expect);
            prop_assert!(w.is_empty());
        }
    }
}
