//! Counters the layers above keep per loop besides the byte and connection
//! counts: a latency histogram, and arrays of counters whose slots the net
//! and protocol layers assign (close reasons, accept errors, status
//! classes). The reactor never writes them; it only carries them in
//! [`LoopStats`](super::LoopStats) so that a scrape from another thread can
//! read every loop's values without asking the loop.
//!
//! Each counter has one writer, its loop's thread, so a relaxed load and
//! store is exact and no locked read-modify-write is needed; readers sum
//! the loops when they scrape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Slots in [`LoopStats::closed`](super::LoopStats::closed): one per kind
/// of `net::CloseReason`.
pub const CLOSE_SLOTS: usize = 10;
/// Slots in [`LoopStats::accept_errors`](super::LoopStats::accept_errors).
pub const ACCEPT_ERROR_SLOTS: usize = 5;
/// Slots in [`LoopStats::proxy_refused`](super::LoopStats::proxy_refused).
pub const PROXY_REFUSED_SLOTS: usize = 4;
/// Slots in [`LoopStats::kcp_dropped`](super::LoopStats::kcp_dropped).
pub const KCP_DROPPED_SLOTS: usize = 3;
/// Slots in [`LoopStats::responses`](super::LoopStats::responses): status
/// classes 1xx to 5xx.
pub const STATUS_CLASSES: usize = 5;

/// Upper bounds of the latency buckets, in nanoseconds (100 us to 10 s, the
/// 1-2.5-5 steps Prometheus client libraries use); a last bucket takes the
/// rest (`+Inf`).
pub const LATENCY_BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A latency histogram with fixed buckets ([`LATENCY_BOUNDS_NS`] and
/// `+Inf`). Buckets are kept non-cumulative (one store per observation);
/// a scrape adds them up.
#[derive(Default, Debug)]
pub struct Histogram {
    /// Observations per bucket; the last is past every bound.
    pub buckets: [AtomicU64; LATENCY_BOUNDS_NS.len() + 1],
    /// Sum of all observations, in nanoseconds.
    pub sum_ns: AtomicU64,
}

impl Histogram {
    /// Record one observation. Call only on the loop's thread (single
    /// writer, see the module doc).
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = LATENCY_BOUNDS_NS.partition_point(|&b| b < ns);
        add(&self.buckets[i], 1);
        add(&self.sum_ns, ns);
    }
}

/// Add `n` to a counter with a single writer.
pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_lands_in_the_first_bucket_whose_bound_holds_it() {
        let h = Histogram::default();
        for (d, bucket) in [
            (Duration::ZERO, 0),
            (Duration::from_micros(100), 0),
            (Duration::from_nanos(100_001), 1),
            (Duration::from_millis(1), 3),
            (Duration::from_secs(10), 15),
            (Duration::from_secs(11), 16),
        ] {
            let before = h.buckets[bucket].load(Ordering::Relaxed);
            h.record(d);
            assert_eq!(
                h.buckets[bucket].load(Ordering::Relaxed),
                before + 1,
                "{d:?}"
            );
        }
        let total: u64 = h.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 6);
        assert_eq!(
            h.sum_ns.load(Ordering::Relaxed),
            100_000 + 100_001 + 1_000_000 + 10_000_000_000 + 11_000_000_000
        );
    }
}
