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

/// Heartbeat timing. A silent peer is declared dead
/// `idle + max_missed * interval` after it was last heard from. There is no
/// default: pick values from how fast a dead peer must be noticed and how
/// much PING traffic is acceptable (e.g. 10 s, 2 s, 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// How long the peer may stay silent before the first PING is sent.
    /// Any inbound data restarts this wait.
    pub idle: Duration,
    /// Time between PINGs once the peer has gone silent.
    pub interval: Duration,
    /// PINGs sent without anything received before the peer is declared
    /// dead. `0` declares it dead at `idle` without sending a PING.
    pub max_missed: u32,
}

/// What [`Heartbeat::poll`] tells its owner to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// Nothing yet; poll again after this long.
    Wait(Duration),
    /// Send a PING now, then poll again after the interval.
    Ping,
    /// `max_missed` PINGs went unanswered: close the connection.
    Dead,
}

/// The heartbeat state of one connection: when to PING and when to give up.
/// It has no clock and no I/O of its own (every call takes `now`), so it is
/// deterministic and can be driven from any timer, or tested without one.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    cfg: HeartbeatConfig,
    last_inbound: Instant,
    last_ping: Option<Instant>,
    missed: u32,
}

impl Heartbeat {
    /// Starts the machine as if the peer had just been heard from at `now`
    /// (normally when the connection opens): the first PING is due at
    /// `now + idle`.
    pub fn new(cfg: HeartbeatConfig, now: Instant) -> Heartbeat {
        Heartbeat {
            cfg,
            last_inbound: now,
            last_ping: None,
            missed: 0,
        }
    }

    /// The timing this heartbeat was created with.
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

    /// When [`poll`](Self::poll) has something to do next: the first PING,
    /// the next one, or the verdict.
    pub fn next_at(&self) -> Instant {
        match self.last_ping {
            None => self.last_inbound + self.cfg.idle,
            Some(p) => p + self.cfg.interval,
        }
    }

    /// Says what to do at `now`: [`Beat::Wait`] with the time left until the
    /// next deadline, [`Beat::Ping`] when a PING is due (counted as missed
    /// until something arrives; poll again right away for the next wait), or
    /// [`Beat::Dead`] once `max_missed` PINGs went unanswered. `Dead` is
    /// returned on every later poll until [`on_inbound`](Self::on_inbound).
    /// Polling early is harmless: it only returns the remaining wait.
    pub fn poll(&mut self, now: Instant) -> Beat {
        let next = self.next_at();
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

    /// Drive the machine at exactly the instants it asks for; an answering
    /// peer replies to every PING at once. Stops at a Dead verdict or after
    /// 20 PINGs.
    fn run(hb: &mut Heartbeat, mut now: Instant, answers: bool) -> (Instant, u32, bool) {
        let mut pings = 0;
        for _ in 0..1000 {
            match hb.poll(now) {
                Beat::Wait(d) => now += d,
                Beat::Ping => {
                    pings += 1;
                    if answers {
                        hb.on_inbound(now);
                    }
                }
                Beat::Dead => return (now, pings, true),
            }
            if pings >= 20 {
                return (now, pings, false);
            }
        }
        panic!("no verdict");
    }

    #[test]
    fn silent_peer_is_dead_at_idle_plus_missed_intervals() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(CFG, t0);
        let (dead_at, pings, dead) = run(&mut hb, t0, false);
        assert!(dead);
        assert_eq!(pings, 3);
        assert_eq!(dead_at - t0, CFG.idle + CFG.interval * CFG.max_missed);
    }

    #[test]
    fn answering_peer_is_never_dead() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(CFG, t0);
        let (_, pings, dead) = run(&mut hb, t0, true);
        assert!(!dead, "an answering peer was declared dead");
        assert_eq!(pings, 20);
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

/// A small length-prefixed protocol with heartbeat message types, used by
/// [`PingServer`] and [`PingClient`]: each frame is a 4-byte big-endian
/// length, then a kind byte, then the payload.
pub mod wire {
    /// Kind byte of an application payload; [`PingServer`](super::PingServer)
    /// echoes it back as a DATA frame.
    pub const DATA: u8 = 0;
    /// Kind byte of a heartbeat probe (empty payload); the receiver should
    /// answer with a PONG.
    pub const PING: u8 = 1;
    /// Kind byte of the answer to a PING (empty payload).
    pub const PONG: u8 = 2;
    /// Largest frame accepted (a bigger length field closes the connection).
    pub const MAX_FRAME: usize = 1 << 20;

    /// Append one frame to `out`.
    pub fn frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&((payload.len() + 1) as u32).to_be_bytes());
        out.push(kind);
        out.extend_from_slice(payload);
    }
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::codec::length_field::LengthFieldCodec;
use crate::codec::Decoder;
use crate::net::ConnTimer;
use crate::net::{Buffer, CloseReason, Conn, EventHandler};

/// Per-connection state of the heartbeat peers.
#[derive(Default)]
pub struct PeerState {
    codec: Option<LengthFieldCodec>,
    hb: Option<Heartbeat>,
    timer: Option<ConnTimer>,
}

/// Decode every whole frame in `input`, calling `f(kind, payload)`.
/// A malformed frame closes the connection with a protocol reason.
fn frames<H: EventHandler<Context = PeerState>>(
    conn: &mut Conn<'_, H>,
    input: &mut Buffer,
    mut f: impl FnMut(&mut Conn<'_, H>, u8, &[u8]),
) {
    loop {
        let codec = conn
            .context()
            .codec
            .get_or_insert_with(|| LengthFieldCodec::new(4, wire::MAX_FRAME));
        match codec.decode(input.as_slice()) {
            Ok(Some((frame, used))) => {
                input.consume(used);
                if let Some((&kind, payload)) = frame.split_first() {
                    f(conn, kind, payload);
                }
            }
            Ok(None) => return,
            Err(e) => {
                input.clear();
                conn.close_with(CloseReason::Protocol(e.to_string()));
                return;
            }
        }
    }
}

/// Arm (or re-arm) the heartbeat: send due PINGs, schedule the next check,
/// or close a dead peer and tell `on_dead`.
fn drive<H: EventHandler<Context = PeerState> + Beating>(h: &mut H, conn: &mut Conn<'_, H>) {
    let now = std::time::Instant::now();
    let Some(hb) = conn.context().hb.as_mut() else {
        return;
    };
    let mut beat = hb.poll(now);
    while beat == Beat::Ping {
        let mut out = Vec::with_capacity(5);
        wire::frame(wire::PING, b"", &mut out);
        let _ = conn.write(&out);
        beat = conn
            .context()
            .hb
            .as_mut()
            .map_or(Beat::Dead, |hb| hb.poll(now));
    }
    match beat {
        Beat::Wait(d) => {
            let id = conn.run_after(d, |h: &mut H, c| drive(h, c));
            conn.context().timer = Some(id);
        }
        Beat::Dead => {
            let missed = conn.context().hb.as_ref().map_or(0, |hb| hb.missed());
            h.peer_dead(conn);
            conn.close_with(CloseReason::Protocol(format!(
                "heartbeat: {missed} PINGs unanswered"
            )));
        }
        Beat::Ping => unreachable!("loop above consumes pings"),
    }
}

/// What a heartbeat-driving handler is told.
pub trait Beating {
    /// The peer missed its heartbeats; the connection closes next.
    fn peer_dead(&mut self, conn: &mut Conn<'_, Self>)
    where
        Self: EventHandler + Sized;
}

/// Server side of the heartbeat example: echoes DATA frames, answers PING
/// with PONG, and (if configured) drops clients that go silent. `mute`
/// makes it stop answering altogether, to demonstrate dead-peer detection.
pub struct PingServer {
    /// PING clients that go silent and close them when they miss too many;
    /// `None` never drops a silent client.
    pub heartbeat: Option<HeartbeatConfig>,
    /// While `true`, all input is discarded unanswered (and does not count
    /// as a sign of life). Shared so another thread can flip it at any time;
    /// takes effect from the next batch of input on each loop.
    pub mute: Arc<AtomicBool>,
}

impl Beating for PingServer {
    fn peer_dead(&mut self, _conn: &mut Conn<'_, Self>) {}
}

impl EventHandler for PingServer {
    type Context = PeerState;

    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        if let Some(cfg) = self.heartbeat {
            conn.context().hb = Some(Heartbeat::new(cfg, std::time::Instant::now()));
            drive(self, conn);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        if self.mute.load(Ordering::Relaxed) {
            input.clear();
            return;
        }
        let now = std::time::Instant::now();
        frames(conn, input, |conn, kind, payload| {
            if let Some(hb) = conn.context().hb.as_mut() {
                hb.on_inbound(now);
            }
            let mut out = Vec::with_capacity(payload.len() + 5);
            match kind {
                wire::PING => wire::frame(wire::PONG, b"", &mut out),
                wire::DATA => wire::frame(wire::DATA, payload, &mut out),
                _ => return,
            }
            let _ = conn.write(&out);
        });
    }
}

/// Client side of the heartbeat example: sends PINGs per its heartbeat and
/// reports through `events` every DATA payload, PONG and the dead verdict.
pub struct PingClient {
    /// When to PING the server and when to declare it dead.
    pub heartbeat: HeartbeatConfig,
    /// Where observations go, in order, from the loop thread. Send errors
    /// (the receiver was dropped) are ignored.
    pub events: std::sync::mpsc::Sender<PeerEvent>,
}

/// What a [`PingClient`] observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// The connection is established; heartbeat timing starts now.
    Open,
    /// The payload of a frame other than PONG: normally an echoed DATA
    /// frame. A PING from a server with its own heartbeat on also arrives
    /// here, as an empty payload (the client does not answer it).
    Data(Vec<u8>),
    /// The server answered a PING.
    Pong,
    /// The server missed `max_missed` PINGs in a row.
    Dead,
    /// The connection closed, for this reason (after a [`PeerEvent::Dead`]
    /// it is [`CloseReason::Protocol`]). Always the last event.
    Closed(CloseReason),
}

impl Beating for PingClient {
    fn peer_dead(&mut self, _conn: &mut Conn<'_, Self>) {
        let _ = self.events.send(PeerEvent::Dead);
    }
}

impl EventHandler for PingClient {
    type Context = PeerState;

    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        conn.context().hb = Some(Heartbeat::new(self.heartbeat, std::time::Instant::now()));
        let _ = self.events.send(PeerEvent::Open);
        drive(self, conn);
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        let now = std::time::Instant::now();
        let events = self.events.clone();
        frames(conn, input, |conn, kind, payload| {
            if let Some(hb) = conn.context().hb.as_mut() {
                hb.on_inbound(now);
            }
            let _ = events.send(match kind {
                wire::PONG => PeerEvent::Pong,
                _ => PeerEvent::Data(payload.to_vec()),
            });
        });
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        if let Some(t) = conn.context().timer.take() {
            conn.cancel_timer(t);
        }
        let _ = self.events.send(PeerEvent::Closed(reason.clone()));
    }
}
