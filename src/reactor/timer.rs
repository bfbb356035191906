//! Temporary heap-backed timer store with the timing wheel's API (replaced by
//! the hierarchical wheel).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey(u64);

pub struct TimerWheel<T> {
    tick: Duration,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    live: HashMap<u64, T>,
    seq: u64,
}

impl<T> TimerWheel<T> {
    pub fn new(tick: Duration, _start: Instant) -> Self {
        TimerWheel { tick, heap: BinaryHeap::new(), live: HashMap::new(), seq: 0 }
    }
    pub fn tick(&self) -> Duration {
        self.tick
    }
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        self.seq += 1;
        self.heap.push(Reverse((deadline, self.seq)));
        self.live.insert(self.seq, value);
        TimerKey(self.seq)
    }
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.live.remove(&key.0)
    }
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((d, k))) = self.heap.peek() {
            if self.live.contains_key(k) {
                return Some(*d);
            }
            self.heap.pop();
        }
        None
    }
    pub fn poll_expired(&mut self, now: Instant, out: &mut Vec<T>) {
        while let Some(Reverse((d, k))) = self.heap.peek().copied() {
            if d > now {
                break;
            }
            self.heap.pop();
            if let Some(v) = self.live.remove(&k) {
                out.push(v);
            }
        }
    }
    pub fn len(&self) -> usize {
        self.live.len()
    }
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}
