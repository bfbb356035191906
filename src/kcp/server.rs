//! KCP sessions on evnet loops: a [`KcpServer`] is a UDP server (batched
//! I/O, one SO_REUSEPORT socket per loop) whose datagram handler keeps a
//! session table and runs each session's [`Kcp`] engine on the loop's
//! timers, giving the user's [`KcpHandler`] the same callbacks as a TCP
//! [`EventHandler`](crate::net::EventHandler).
//!
//! This is a session table beside the stream connection core, not an
//! `IoPath` in `net/conn/path/`: a KCP session has no fd of its own (many
//! sessions share one socket, demultiplexed by peer address), so the
//! core's per-fd readiness, out queue and watchdog do not apply, and the
//! path seam is being reworked for TLS at the same time.
//!
//! Sessions are keyed by the peer's address. KCP has no handshake: the
//! first well-formed PUSH from a new address opens a session with the
//! conversation id it carries; a PUSH with another conversation id from the
//! same address means the client restarted, and replaces the old session.
//! KCP has no FIN either: a session closes when the handler closes it (once
//! everything it wrote is acknowledged), after `idle_timeout` with nothing
//! from the peer, when a segment is retransmitted `dead_link` times, or by
//! the optional heartbeat (a window probe, WASK, which any KCP peer answers
//! with WINS).
//!
//! The table is bounded ([`KcpServerBuilder::max_sessions`]): at the cap a
//! new peer takes the place of the session idle longest among the next 16
//! (round robin) if that one has been idle a second or more; otherwise its
//! datagram is dropped. Bad datagrams (too short, wrong length, unknown
//! command, another conversation) are dropped and cost only their session.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use super::engine::Kcp;
use super::segment::{Cmd, Header};
use crate::net::heartbeat::{Beat, Heartbeat, HeartbeatConfig};
use crate::net::udp::{DatagramHandler, UdpBatch, UdpServer, UdpServerBuilder, UdpSock};
use crate::net::{Buffer, CloseReason};

/// Session timers: every session is updated on one timer per socket,
/// every this often (the engines' flush interval is at least 10 ms).
const TICK: Duration = Duration::from_millis(5);
/// Sessions looked at for eviction when the table is full.
const EVICT_SCAN: usize = 16;
/// A session must have been idle this long to be evicted for a new one.
const EVICT_IDLE: Duration = Duration::from_secs(1);

/// The engine settings of a session: the reference's two common profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KcpMode {
    /// ikcp defaults: `nodelay(0, 40, 0, 0)` — RTO doubles, congestion
    /// window on, no fast resend.
    #[default]
    Normal,
    /// "Turbo": `nodelay(1, 10, 2, 1)` — 30 ms RTO floor, RTO grows by
    /// half, fast resend after 2 later ACKs, no congestion window.
    Fast,
}

/// Engine settings shared by the server and [`KcpClient`](super::KcpClient).
#[derive(Clone, Copy, Debug)]
pub struct KcpConfig {
    /// Normal or fast profile.
    pub mode: KcpMode,
    /// Largest datagram (default 1400).
    pub mtu: usize,
    /// Send window in segments (default 128).
    pub snd_wnd: u16,
    /// Receive window in segments (default 256).
    pub rcv_wnd: u16,
    /// Stream mode (default): a byte stream, like TCP. Off: message mode,
    /// `on_message` gets one whole message at a time.
    pub stream: bool,
    /// Retransmissions of one segment before the link is dead (default 20).
    pub dead_link: u32,
}

impl Default for KcpConfig {
    fn default() -> Self {
        KcpConfig {
            mode: KcpMode::Normal,
            mtu: 1400,
            snd_wnd: 128,
            rcv_wnd: 256,
            stream: true,
            dead_link: 20,
        }
    }
}

impl KcpConfig {
    /// A new engine for `conv` with these settings.
    pub fn engine(&self, conv: u32) -> Kcp {
        let mut k = Kcp::new(conv);
        match self.mode {
            KcpMode::Normal => k.set_nodelay(0, 40, 0, false),
            KcpMode::Fast => k.set_nodelay(1, 10, 2, true),
        }
        k.set_mtu(self.mtu);
        k.set_window(self.snd_wnd, self.rcv_wnd);
        k.set_stream(self.stream);
        k.set_dead_link(self.dead_link);
        k
    }
}

/// KCP session callbacks, as [`EventHandler`](crate::net::EventHandler)'s
/// for TCP. One instance serves every session of one loop; per-session
/// state lives in [`KcpHandler::Context`]. Callbacks run on the loop
/// thread and must not block.
pub trait KcpHandler: Sized + 'static {
    /// Per-session state, created with `Default` when the session opens.
    type Context: Default + 'static;

    /// A new session (its first datagram is about to be read).
    fn on_open(&mut self, _conn: &mut KcpConn<'_, Self>) {}

    /// Data arrived, in order: in stream mode all that is ready, in
    /// message mode one whole message. Consume what forms whole messages
    /// (`input.consume(n)`); the rest is presented again with more.
    fn on_message(&mut self, conn: &mut KcpConn<'_, Self>, input: &mut Buffer);

    /// The session is closed; writes now fail. Called exactly once per
    /// session that got `on_open`. A dead peer is
    /// [`CloseReason::IdleTimeout`]; a link whose segment went unacknowledged
    /// `dead_link` times, [`CloseReason::WriteTimeout`]; a client that
    /// restarted with another conversation, [`CloseReason::Reset`].
    fn on_close(&mut self, _conn: &mut KcpConn<'_, Self>, _reason: &CloseReason) {}
}

/// Where a session is in its life. `Open -> Closing -> (removed)`, or
/// `Open -> (removed)` on a timeout, a dead link or a replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// The handler closed it: writes fail; removed once the peer has
    /// acknowledged everything (or the idle timeout passes).
    Closing,
}

struct Session<C> {
    peer: SocketAddr,
    kcp: Kcp,
    ctx: C,
    input: Buffer,
    state: State,
    last_heard: Instant,
    heartbeat: Option<Heartbeat>,
}

/// One session during a callback: write into its send window, close it,
/// reach its context.
pub struct KcpConn<'a, H: KcpHandler> {
    s: &'a mut Session<H::Context>,
    high_water: usize,
}

impl<H: KcpHandler> KcpConn<'_, H> {
    /// Queue `data` into the send window (all of it, in stream mode). It
    /// leaves after the callback. Fails on a closing session, or in message
    /// mode for a message too large for the peer's window.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.s.state != State::Open {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "kcp session is closing",
            ));
        }
        self.s
            .kcp
            .send(data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("kcp send: {e:?}")))
    }

    /// Segments written and not yet acknowledged. Past the high-water mark
    /// the session stops taking received data (so the peer's window
    /// closes) until it drains.
    pub fn queued(&self) -> usize {
        self.s.kcp.waiting()
    }

    /// Whether [`queued`](Self::queued) is past the high-water mark.
    pub fn is_backed_up(&self) -> bool {
        self.s.kcp.waiting() > self.high_water
    }

    /// Close after everything written is acknowledged.
    pub fn close(&mut self) {
        self.s.state = State::Closing;
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.s.peer
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.s.kcp.conv()
    }

    /// The session's state.
    pub fn context(&mut self) -> &mut H::Context {
        &mut self.s.ctx
    }
}

/// Counters of one loop's session table.
#[derive(Clone, Copy, Debug, Default)]
pub struct KcpStats {
    /// Sessions open now.
    pub sessions: usize,
    /// Datagrams dropped as malformed or for another conversation.
    pub bad_datagrams: u64,
    /// New peers refused because the table was full.
    pub refused: u64,
    /// Sessions evicted to make room.
    pub evicted: u64,
}

#[derive(Clone)]
struct Settings {
    cfg: KcpConfig,
    idle_timeout: Duration,
    max_sessions: usize,
    heartbeat: Option<HeartbeatConfig>,
}

/// The datagram handler behind a [`KcpServer`]: one per socket.
struct Table<H: KcpHandler> {
    handler: H,
    set: Settings,
    sessions: Slab<Session<H::Context>>,
    by_peer: HashMap<SocketAddr, usize>,
    epoch: Instant,
    armed: bool,
    cursor: usize,
    stats: KcpStats,
    high_water: usize,
}

fn ms_since(epoch: Instant, now: Instant) -> u32 {
    now.saturating_duration_since(epoch).as_millis() as u32
}

impl<H: KcpHandler> Table<H> {
    fn close(&mut self, key: usize, reason: CloseReason) {
        let mut s = self.sessions.remove(key);
        if self.by_peer.get(&s.peer) == Some(&key) {
            self.by_peer.remove(&s.peer);
        }
        let mut conn = KcpConn::<H> {
            s: &mut s,
            high_water: self.high_water,
        };
        self.handler.on_close(&mut conn, &reason);
        self.stats.sessions = self.sessions.len();
    }

    /// Room for one more session: true if there is (after evicting one
    /// idle long enough).
    fn make_room(&mut self, now: Instant) -> bool {
        if self.sessions.len() < self.set.max_sessions {
            return true;
        }
        let cap = self.sessions.capacity().max(1);
        let mut oldest: Option<(usize, Instant)> = None;
        let mut looked = 0;
        let mut i = self.cursor;
        // Bounded: at most one lap of the slab's slots.
        for _ in 0..cap {
            i = (i + 1) % cap;
            if let Some(s) = self.sessions.get(i) {
                looked += 1;
                if oldest.is_none_or(|(_, t)| s.last_heard < t) {
                    oldest = Some((i, s.last_heard));
                }
                if looked == EVICT_SCAN {
                    break;
                }
            }
        }
        self.cursor = i;
        match oldest {
            Some((key, t)) if now.saturating_duration_since(t) >= EVICT_IDLE => {
                self.stats.evicted += 1;
                self.close(key, CloseReason::IdleTimeout);
                true
            }
            _ => {
                self.stats.refused += 1;
                false
            }
        }
    }

    /// Hand received data to the handler, then send what is due.
    fn service(&mut self, sock: &mut UdpSock<'_>, key: usize, now_ms: u32) {
        let high_water = self.high_water;
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let stream = self.set.cfg.stream;
        // Backpressure: while our own send queue is past the mark, leave
        // the data in the engine, so its window (and the peer's) closes.
        while s.state == State::Open && s.kcp.waiting() <= high_water {
            let mut input = std::mem::take(&mut s.input);
            let mut got = false;
            while s.kcp.recv_with(|d| input.extend_from_slice(d)).is_some() {
                got = true;
                if !stream {
                    break;
                }
            }
            if got {
                let mut conn = KcpConn::<H> { s, high_water };
                self.handler.on_message(&mut conn, &mut input);
            }
            s.input = input;
            if !got || stream {
                break;
            }
        }
        let peer = s.peer;
        s.kcp.set_now(now_ms);
        s.kcp.flush(&mut |d| {
            if let Err(e) = sock.send_to(peer, d) {
                tracing::debug!("kcp to {peer}: {e}");
            }
        });
    }

    fn tick(&mut self, sock: &mut UdpSock<'_>, now: Instant) {
        let now_ms = ms_since(self.epoch, now);
        let mut doomed: Vec<(usize, CloseReason)> = Vec::new();
        for (key, s) in self.sessions.iter_mut() {
            let peer = s.peer;
            let mut beat_ping = false;
            if let Some(hb) = &mut s.heartbeat {
                match hb.poll(now) {
                    Beat::Dead => {
                        doomed.push((key, CloseReason::IdleTimeout));
                        continue;
                    }
                    Beat::Ping => beat_ping = true,
                    Beat::Wait(_) => {}
                }
            }
            if beat_ping {
                s.kcp.ask_window();
            }
            s.kcp.update(now_ms, &mut |d| {
                let _ = sock.send_to(peer, d);
            });
            if now.saturating_duration_since(s.last_heard) >= self.set.idle_timeout {
                doomed.push((key, CloseReason::IdleTimeout));
            } else if s.kcp.is_dead() {
                doomed.push((key, CloseReason::WriteTimeout));
            } else if s.state == State::Closing && s.kcp.waiting() == 0 {
                doomed.push((key, CloseReason::Local));
            }
        }
        for (key, reason) in doomed {
            self.close(key, reason);
        }
        // Sessions that were backed up may take input again.
        let keys: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.state == State::Open && s.kcp.has_data())
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.service(sock, key, now_ms);
        }
    }
}

impl<H: KcpHandler> DatagramHandler for Table<H> {
    fn on_datagram(&mut self, sock: &mut UdpSock<'_>, peer: SocketAddr, data: &[u8]) {
        let now = sock.loop_ctx().now();
        let now_ms = ms_since(self.epoch, now);
        if !self.armed {
            self.armed = true;
            sock.timer(TICK, 0);
        }
        let Some(conv) = Header::conv_of(data) else {
            self.stats.bad_datagrams += 1;
            return;
        };
        let mut key = self.by_peer.get(&peer).copied();
        if let Some(k) = key {
            if self.sessions[k].kcp.conv() != conv {
                // Only a well-formed PUSH may replace a session, so a stray
                // datagram cannot end it.
                if !matches!(Header::decode(data), Ok((h, _)) if h.cmd == Cmd::Push) {
                    self.stats.bad_datagrams += 1;
                    return;
                }
                self.close(k, CloseReason::Reset);
                key = None;
            }
        }
        let key = match key {
            Some(k) => k,
            None => {
                // A session starts only with a well-formed PUSH.
                if !matches!(Header::decode(data), Ok((h, _)) if h.cmd == Cmd::Push) {
                    self.stats.bad_datagrams += 1;
                    return;
                }
                if !self.make_room(now) {
                    return;
                }
                let mut kcp = self.set.cfg.engine(conv);
                kcp.set_now(now_ms);
                let k = self.sessions.insert(Session {
                    peer,
                    kcp,
                    ctx: H::Context::default(),
                    input: Buffer::new(),
                    state: State::Open,
                    last_heard: now,
                    heartbeat: self.set.heartbeat.map(|c| Heartbeat::new(c, now)),
                });
                self.by_peer.insert(peer, k);
                self.stats.sessions = self.sessions.len();
                let high_water = self.high_water;
                let mut conn = KcpConn::<H> {
                    s: &mut self.sessions[k],
                    high_water,
                };
                self.handler.on_open(&mut conn);
                k
            }
        };
        let s = &mut self.sessions[key];
        s.last_heard = now;
        if let Some(hb) = &mut s.heartbeat {
            hb.on_inbound(now);
        }
        s.kcp.set_now(now_ms);
        if let Err(e) = s.kcp.input(data) {
            self.stats.bad_datagrams += 1;
            tracing::debug!("kcp from {peer}: {e:?}");
        }
        self.service(sock, key, now_ms);
    }

    fn on_timer(&mut self, sock: &mut UdpSock<'_>, _tag: u64) {
        let now = sock.loop_ctx().now();
        self.tick(sock, now);
        sock.timer(TICK, 0);
    }
}

/// Builds a [`KcpServer`].
#[derive(Clone)]
pub struct KcpServerBuilder {
    addr: Option<SocketAddr>,
    loops: usize,
    batch: UdpBatch,
    set: Settings,
}

impl Default for KcpServerBuilder {
    fn default() -> Self {
        KcpServerBuilder {
            addr: None,
            loops: 1,
            batch: UdpBatch::Auto,
            set: Settings {
                cfg: KcpConfig::default(),
                idle_timeout: Duration::from_secs(30),
                max_sessions: 10_000,
                heartbeat: None,
            },
        }
    }
}

impl KcpServerBuilder {
    /// Defaults: one loop, normal mode, stream mode, 30 s idle timeout,
    /// 10,000 sessions per loop, no heartbeat.
    pub fn new() -> Self {
        Self::default()
    }
    /// The UDP address to serve.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }
    /// Loops, each with its own SO_REUSEPORT socket and session table.
    pub fn loops(mut self, n: usize) -> Self {
        self.loops = n.max(1);
        self
    }
    /// Engine settings of every session.
    pub fn config(mut self, cfg: KcpConfig) -> Self {
        self.set.cfg = cfg;
        self
    }
    /// Normal or fast engine profile.
    pub fn mode(mut self, mode: KcpMode) -> Self {
        self.set.cfg.mode = mode;
        self
    }
    /// A session with nothing from its peer for this long is closed
    /// ([`CloseReason::IdleTimeout`]): KCP has no FIN, so this is how a
    /// vanished client is noticed. Checked every 5 ms.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.set.idle_timeout = d;
        self
    }
    /// Most sessions per loop (at least 1).
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.set.max_sessions = n.max(1);
        self
    }
    /// Probe a silent peer with window asks (WASK) and close the session
    /// after `max_missed` unanswered ones.
    pub fn heartbeat(mut self, cfg: HeartbeatConfig) -> Self {
        self.set.heartbeat = Some(cfg);
        self
    }
    /// How the UDP sockets move datagrams.
    pub fn batch(mut self, batch: UdpBatch) -> Self {
        self.batch = batch;
        self
    }

    /// Bind, start the loops and serve; `factory` makes one handler per loop.
    pub fn start<H, F>(self, factory: F) -> io::Result<KcpServer>
    where
        H: KcpHandler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let addr = self.addr.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "kcp server has no address")
        })?;
        let set = self.set.clone();
        // Stop taking input past a few windows of unacknowledged output.
        let high_water = usize::from(set.cfg.snd_wnd) * 4;
        let udp = UdpServerBuilder::new()
            .bind(addr)
            .loops(self.loops)
            .batch(self.batch)
            .start(move |id| Table {
                handler: factory(id),
                set: set.clone(),
                sessions: Slab::new(),
                by_peer: HashMap::new(),
                epoch: Instant::now(),
                armed: false,
                cursor: 0,
                stats: KcpStats::default(),
                high_water,
            })?;
        Ok(KcpServer { udp })
    }
}

/// A running KCP server. Dropping it stops the loops.
pub struct KcpServer {
    udp: UdpServer,
}

impl KcpServer {
    /// A builder with the defaults.
    pub fn builder() -> KcpServerBuilder {
        KcpServerBuilder::new()
    }
    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.udp.local_addr()
    }
    /// Stop and join the loops.
    pub fn shutdown(self) -> io::Result<()> {
        self.udp.shutdown()
    }
}

/// Echo: every byte of a session is written back to it.
#[derive(Default)]
pub struct KcpEcho;

impl KcpHandler for KcpEcho {
    type Context = ();
    fn on_message(&mut self, conn: &mut KcpConn<'_, Self>, input: &mut Buffer) {
        if conn.write(input.as_slice()).is_ok() {
            input.clear();
        }
    }
}
