//! Application heartbeat: notice a dead peer in seconds, not the two hours
//! kernel keepalive takes with Linux defaults.
//!
//! After `idle` with nothing received, send a PING; then one every
//! `interval`; after `max_missed` PINGs with nothing received since the
//! first, the peer is dead. Any inbound data (not just a PONG) resets it.
//!
//! ```text
//! last inbound      first PING         PING #2 ...       dead
//!      |<--- idle --->|<-- interval -->|   ...   |<-- interval -->|
//!      t              t+idle                                      t+idle+max_missed*interval
//! ```
//!
//! The type is a pure state machine: a handler stamps inbound data with
//! [`Heartbeat::on_inbound`] and calls [`Heartbeat::poll`] from a connection
//! timer, re-arming it for the [`Beat::Wait`] it returns.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    pub idle: Duration,
    pub interval: Duration,
    pub max_missed: u32,
}

/// What the owner should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// Nothing yet; poll again after this long.
    Wait(Duration),
    /// Send a PING now, then poll again after the interval.
    Ping,
    /// `max_missed` PINGs went unanswered: close the connection.
    Dead,
}

#[derive(Clone, Debug)]
pub struct Heartbeat {
    cfg: HeartbeatConfig,
    last_inbound: Instant,
    last_ping: Option<Instant>,
    missed: u32,
}

impl Heartbeat {
    pub fn new(cfg: HeartbeatConfig, now: Instant) -> Heartbeat {
        Heartbeat {
            cfg,
            last_inbound: now,
            last_ping: None,
            missed: 0,
        }
    }

    pub fn config(&self) -> HeartbeatConfig {
        self.cfg
    }

    /// Anything arrived from the peer: it is alive.
    pub fn on_inbound(&mut self, now: Instant) {
        self.last_inbound = now;
        self.last_ping = None;
        self.missed = 0;
    }

    /// PINGs sent since the peer was last heard from.
    pub fn missed(&self) -> u32 {
        self.missed
    }

    pub fn poll(&mut self, now: Instant) -> Beat {
        let next = match self.last_ping {
            None => self.last_inbound + self.cfg.idle,
            Some(p) => p + self.cfg.interval,
        };
        if now < next {
            return Beat::Wait(next - now);
        }
        if self.missed >= self.cfg.max_missed {
            return Beat::Dead;
        }
        self.missed += 1;
        self.last_ping = Some(now);
        Beat::Ping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: HeartbeatConfig = HeartbeatConfig {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        max_missed: 3,
    };

    /// Drive the machine at exactly the instants it asks for.
    fn run(hb: &mut Heartbeat, mut now: Instant, answer_after: Option<u32>) -> (Instant, u32) {
        let mut pings = 0;
        for _ in 0..100 {
            match hb.poll(now) {
                Beat::Wait(d) => now += d,
                Beat::Ping => {
                    pings += 1;
                    if answer_after == Some(pings) {
                        hb.on_inbound(now);
                    }
                }
                Beat::Dead => return (now, pings),
            }
            if answer_after.is_some() && pings > 10 {
                return (now, pings);
            }
        }
        panic!("no verdict");
    }

    #[test]
    fn silent_peer_is_dead_at_idle_plus_missed_intervals() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(CFG, t0);
        let (dead_at, pings) = run(&mut hb, t0, None);
        assert_eq!(pings, 3);
        assert_eq!(dead_at - t0, CFG.idle + CFG.interval * CFG.max_missed);
    }

    #[test]
    fn answering_peer_is_never_dead() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(CFG, t0);
        let (_, pings) = run(&mut hb, t0, Some(1));
        assert!(
            pings > 10,
            "kept pinging an answering peer without declaring it dead"
        );
    }

    #[test]
    fn inbound_data_resets_the_count() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(CFG, t0);
        assert_eq!(hb.poll(t0 + CFG.idle), Beat::Ping);
        assert_eq!(hb.poll(t0 + CFG.idle + CFG.interval), Beat::Ping);
        hb.on_inbound(t0 + CFG.idle + CFG.interval);
        assert_eq!(hb.missed(), 0);
        assert_eq!(hb.poll(t0 + CFG.idle + CFG.interval), Beat::Wait(CFG.idle));
    }
}
