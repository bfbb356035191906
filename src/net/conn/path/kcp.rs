//! The KCP path: one KCP conversation over a connected UDP socket of its
//! own. The table's KCP receiver ([`crate::kcp::receiver`]) makes the
//! socket when a peer's first PUSH arrives (bound to the server's address,
//! connected to the peer, so the kernel hands that peer's later datagrams
//! to it), and the connection then runs like a TCP one: the same
//! [`EventHandler`](crate::net::EventHandler) callbacks, queue, timeouts
//! and close.
//!
//! ```text
//!  datagrams -> Kcp::input -> (in order) -> pull -> on_message
//!  write -> window (Kcp::send) -> Kcp::flush -> datagrams
//!        \-> the core's queue while the window is full
//! ```
//!
//! What the window does not take waits in the core's output queue, so the
//! high-water mark, the write timeout and `on_write_complete` mean what
//! they mean on TCP; queued bytes move into the window as acknowledgements
//! open it. The path holds output (a close waits, `on_write_complete`
//! waits) until the peer has acknowledged everything. In message mode each
//! write is one message, sent into the engine whole.
//!
//! The engine's clock runs on a table timer the path asks for
//! ([`KcpPath::wake_at`]); a quiet session (nothing in flight or to
//! acknowledge) has none but its dead-peer deadline, and one tick a second
//! after it went quiet that gives back the engine's spare buffers. Nothing heard from
//! the peer for the idle bound, a dead link (a segment retransmitted
//! `dead_link` times), a heartbeat gone unanswered, or an ICMP error on
//! the socket closes the session.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Core, Input, IoPath};
use crate::kcp::engine::InputError;
use crate::kcp::receiver::BAD_DATAGRAM;
use crate::kcp::{Kcp, KcpConfig};
use crate::net::heartbeat::{Beat, Heartbeat};
use crate::net::{CloseReason, SharedBytes};
use crate::poller::{Event, Interest, Token};
use crate::reactor::{EventLoop, LoopStats, SourceId};
use crate::ring::Completion;
use crate::sys;
use crate::sys::udp::{OutMsg, RecvBatch};

/// recvmmsg calls per readable event before the rest waits for a later turn.
const READ_ROUNDS: usize = 8;
/// Datagrams per recvmmsg, and the room for each (a KCP datagram is at most
/// the peer's MTU; a longer one is cut and then refused as malformed).
const RX_SLOTS: usize = 32;
const RX_SLOT_LEN: usize = 64 * 1024;
/// A session quiet this long gives back the buffers its engine keeps for
/// reuse (an idle session should cost little).
const LEAN_AFTER: Duration = Duration::from_secs(1);
/// Largest piece of queued output (a file's, read with pread) moved into
/// the window at once.
const FILE_PIECE: usize = 64 * 1024;

thread_local! {
    /// The receive buffers every session on this thread reads with.
    static RX: RefCell<Option<Box<RecvBatch>>> = const { RefCell::new(None) };
    /// Datagrams one flush produced, sent with one sendmmsg (per thread:
    /// an idle session owns no send buffer).
    static TX: RefCell<(Vec<u8>, Vec<usize>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

pub(crate) struct KcpPath {
    kcp: Kcp,
    /// The engine's millisecond clock counts from here.
    epoch: Instant,
    stream: bool,
    /// Segments the path lets wait in the engine (queued or in flight).
    window: usize,
    idle_timeout: Duration,
    last_heard: Instant,
    heartbeat: Option<Heartbeat>,
    peer: SocketAddr,
    /// The socket was read to EAGAIN since the last readable event.
    drained: bool,
    /// The engine has something to send (input to acknowledge, new data).
    dirty: bool,
    /// Last datagram in or data out.
    last_active: Instant,
    /// The engine's spare buffers were given back, nothing since.
    lean: bool,
    /// The table timer running the engine: (tag, when it fires).
    pub(crate) timer: Option<(u64, Instant)>,
}

impl KcpPath {
    /// Register `fd` (a UDP socket connected to the peer) for conversation
    /// `conv`; returns the path and the fd's token.
    pub(crate) fn open(
        el: &mut EventLoop,
        fd: RawFd,
        owner: SourceId,
        sub: u64,
        cfg: &KcpConfig,
        conv: u32,
        peer: SocketAddr,
    ) -> io::Result<(Self, Token)> {
        // Readable only, and for good: acknowledgements must be read even
        // while the handler has paused reading (the window does the pausing).
        let token = el.register(fd, Some(Interest::READABLE), owner, sub)?;
        let now = el.now();
        let mut kcp = cfg.engine(conv);
        kcp.set_now(0);
        let path = KcpPath {
            kcp,
            epoch: now,
            stream: cfg.stream,
            window: usize::from(cfg.snd_wnd.max(1)),
            idle_timeout: cfg.idle_timeout,
            last_heard: now,
            heartbeat: cfg.heartbeat.map(|c| Heartbeat::new(c, now)),
            peer,
            drained: false,
            dirty: false,
            last_active: now,
            lean: false,
            timer: None,
        };
        Ok((path, token))
    }

    pub(crate) fn conv(&self) -> u32 {
        self.kcp.conv()
    }

    /// When the peer was last heard from.
    pub(crate) fn last_heard(&self) -> Instant {
        self.last_heard
    }

    fn ms(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_millis() as u32
    }

    /// One datagram from the peer (read here, or passed on by the receiver
    /// when it reached the server's socket first). Another conversation's
    /// PUSH means the peer restarted: this session ends (the peer resends,
    /// and its next datagram opens a new session).
    pub(crate) fn input(&mut self, core: &mut Core, el: &EventLoop, data: &[u8]) {
        let now = el.now();
        self.kcp.set_now(self.ms(now));
        match self.kcp.input(data) {
            Ok(()) => {
                self.last_heard = now;
                self.active(now);
                if let Some(hb) = &mut self.heartbeat {
                    hb.on_inbound(now);
                }
                self.dirty = true;
            }
            Err(InputError::WrongConv(_)) if crate::kcp::receiver::push_conv(data).is_some() => {
                core.doom.get_or_insert(CloseReason::Reset);
            }
            Err(e) => {
                LoopStats::add(&el.stats().kcp_dropped[BAD_DATAGRAM], 1);
                tracing::debug!("kcp: datagram refused: {e:?}");
            }
        }
    }

    /// Read the socket into the engine with recvmmsg, up to
    /// [`READ_ROUNDS`] calls; more left: look again next turn. Datagrams
    /// from anyone but the peer are dropped: until the socket was
    /// connected, it could take another peer's (its sender resends, to the
    /// server's socket now).
    fn read_socket(&mut self, core: &mut Core, el: &mut EventLoop) {
        let fd = core.fd.as_raw_fd();
        let mut batch = RX
            .with_borrow_mut(Option::take)
            .unwrap_or_else(|| Box::new(RecvBatch::new(RX_SLOTS, RX_SLOT_LEN)));
        for _ in 0..READ_ROUNDS {
            let n = match batch.recv(fd) {
                Ok(n) => n,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        // ECONNREFUSED: an ICMP port-unreachable came back
                        // for what was sent: the peer is gone.
                        core.fail(&e);
                    }
                    self.drained = true;
                    break;
                }
            };
            for i in 0..n {
                match batch.get(i) {
                    Some((from, data, _)) if from == self.peer => self.input(core, el, data),
                    _ => LoopStats::add(&el.stats().kcp_dropped[BAD_DATAGRAM], 1),
                }
            }
            if n < batch.slots() {
                self.drained = true;
                break;
            }
        }
        RX.with_borrow_mut(|b| *b = Some(batch));
        if !self.drained {
            el.defer(core.token, Event::new(core.token, Event::READABLE));
        }
    }

    fn active(&mut self, now: Instant) {
        self.last_active = now;
        self.lean = false;
    }

    /// Segments the window has room for, in bytes.
    fn room(&self) -> usize {
        self.window.saturating_sub(self.kcp.waiting()) * self.kcp.mss()
    }

    /// Stream mode: what the window takes of `data` goes in, the rest is
    /// queued (behind anything queued already).
    fn take(&mut self, core: &mut Core, el: &EventLoop, data: &[u8]) {
        if let Some(out) = core.out.as_mut() {
            return out.push(data);
        }
        let n = self.room().min(data.len());
        if n > 0 {
            // Stream mode takes any length.
            let _ = self.kcp.send(&data[..n]);
            self.dirty = true;
            self.active(el.now());
            core.note_sent(el, n as u64);
        }
        if n < data.len() {
            core.queue().push(&data[n..]);
        }
    }

    /// Message mode: `data` is one message.
    fn message(&mut self, core: &mut Core, el: &EventLoop, data: &[u8]) {
        match self.kcp.send(data) {
            Ok(()) => {
                self.dirty = true;
                self.active(el.now());
                core.note_sent(el, data.len() as u64);
            }
            Err(e) => {
                core.doom.get_or_insert(CloseReason::Protocol(format!(
                    "kcp: a {}-byte message cannot be sent: {e:?}",
                    data.len()
                )));
            }
        }
    }

    /// Move queued output into the window as far as it has room.
    fn feed(&mut self, core: &mut Core, el: &EventLoop) {
        let Some(out) = core.out.as_mut() else {
            return;
        };
        let mut moved = 0usize;
        let mut failed = None;
        while out.len > 0 {
            let room = self.room().min(FILE_PIECE);
            if room == 0 {
                break;
            }
            let kcp = &mut self.kcp;
            match out.take_front(room, |piece| {
                // Stream mode takes any length.
                let _ = kcp.send(piece);
                Ok(piece.len())
            }) {
                Ok(n) => moved += n,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if moved > 0 {
            self.dirty = true;
            self.active(el.now());
        }
        if let Some(e) = failed {
            core.fail(&e);
        }
        core.note_sent(el, moved as u64);
        core.release_drained();
    }

    /// Send what the engine has due (acknowledgements, new and resent
    /// segments).
    fn transmit(&mut self, core: &mut Core, el: &EventLoop) {
        self.dirty = false;
        self.kcp.set_now(self.ms(el.now()));
        self.emit(core, |k, out| k.flush(out));
    }

    /// Run the engine with `step` (a flush or a clock tick) and send the
    /// datagrams it produces in one sendmmsg. A full socket buffer drops
    /// them: KCP sends them again.
    fn emit(&mut self, core: &mut Core, step: impl FnOnce(&mut Kcp, &mut dyn FnMut(&[u8]))) {
        let fd = core.fd.as_raw_fd();
        let result = TX.with_borrow_mut(|(buf, lens)| {
            buf.clear();
            lens.clear();
            step(&mut self.kcp, &mut |d| {
                buf.extend_from_slice(d);
                lens.push(d.len());
            });
            send_all(fd, buf, lens)
        });
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::WouldBlock {
                core.fail(&e);
            }
        }
    }

    /// The engine's clock ticked: run it, resend what is due, ping a quiet
    /// peer, and end a session whose peer is gone.
    pub(crate) fn tick(&mut self, core: &mut Core, el: &mut EventLoop) {
        let now = el.now();
        if let Some(hb) = &mut self.heartbeat {
            match hb.poll(now) {
                Beat::Dead => {
                    core.doom.get_or_insert(CloseReason::IdleTimeout);
                    return;
                }
                Beat::Ping => {
                    self.kcp.ask_window();
                    self.dirty = true;
                }
                Beat::Wait(_) => {}
            }
        }
        if now.saturating_duration_since(self.last_heard) >= self.idle_timeout {
            core.doom.get_or_insert(CloseReason::IdleTimeout);
            return;
        }
        let ms = self.ms(now);
        self.emit(core, |k, out| k.update(ms, out));
        if self.kcp.is_dead() {
            core.doom.get_or_insert(CloseReason::WriteTimeout);
        }
        self.feed(core, el);
        if !self.lean && self.kcp.is_quiet() && now >= self.last_active + LEAN_AFTER {
            self.kcp.release_buffers();
            self.lean = true;
        }
    }

    /// When the path next needs [`tick`](Self::tick).
    pub(crate) fn wake_at(&self, now: Instant) -> Instant {
        let mut at = self.last_heard + self.idle_timeout;
        if let Some(hb) = &self.heartbeat {
            at = at.min(hb.next_at());
        }
        if !self.kcp.is_quiet() {
            let ms = self.kcp.next_in(self.ms(now));
            at = at.min(now + Duration::from_millis(u64::from(ms.max(1))));
        } else if !self.lean {
            at = at.min(self.last_active + LEAN_AFTER);
        }
        at
    }
}

/// Send the datagrams in `buf` (lengths in `lens`) on connected `fd`, in
/// batches; EAGAIN drops the rest.
fn send_all(fd: RawFd, buf: &[u8], lens: &[usize]) -> io::Result<()> {
    if let [_] = lens {
        // The common case (an echo, an acknowledgement): send(2), cheaper
        // than a batch of one.
        return sys::socket::send(fd, buf).map(drop);
    }
    let mut msgs = Vec::with_capacity(lens.len().min(sys::udp::MAX_BATCH));
    let mut at = 0;
    let mut i = 0;
    while i < lens.len() {
        msgs.clear();
        let mut off = at;
        for &len in lens[i..].iter().take(sys::udp::MAX_BATCH) {
            msgs.push(OutMsg {
                peer: None,
                data: &buf[off..off + len],
                segment: len,
            });
            off += len;
        }
        let sent = sys::udp::send_batch(fd, &msgs)?;
        if sent == 0 {
            return Ok(());
        }
        at += lens[i..i + sent].iter().sum::<usize>();
        i += sent;
    }
    Ok(())
}

impl IoPath for KcpPath {
    fn readable(&mut self, _core: &mut Core, _el: &mut EventLoop, _ev: Event) {
        self.drained = false;
    }

    fn pull(&mut self, core: &mut Core, el: &mut EventLoop, rb: &mut Vec<u8>) -> Input {
        if !self.drained {
            self.read_socket(core, el);
            // Acknowledgements may have opened the window.
            self.feed(core, el);
        }
        if !core.reading() {
            return Input::Stop;
        }
        let mut got = false;
        while self.kcp.recv_with(|d| rb.extend_from_slice(d)).is_some() {
            got = true;
            if !self.stream {
                break;
            }
        }
        if !got {
            return Input::Stop;
        }
        // Taking data out of the receive queue opens our window: say so.
        self.dirty = true;
        core.note_received(el, rb.len() as u64);
        Input::Data
    }

    fn budget_spent(&mut self, core: &mut Core, el: &mut EventLoop) {
        // The engine may hold more: no socket event will say so.
        el.defer(core.token, Event::new(core.token, Event::READABLE));
    }

    fn complete(
        &mut self,
        _core: &mut Core,
        el: &mut EventLoop,
        c: Completion,
        _rb: &mut Vec<u8>,
    ) -> Input {
        el.release(c);
        Input::Stop
    }

    fn write(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>, data: &[u8]) {
        if self.stream {
            // Stage: several writes in one callback become one send.
            if core.out.is_some() {
                core.queue().push(data);
            } else {
                staged.extend_from_slice(data);
            }
        } else {
            self.message(core, el, data);
        }
    }

    fn write_vec(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: Vec<u8>,
    ) {
        self.write(core, el, staged, &data);
    }

    fn write_file(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        file: Arc<std::fs::File>,
        start: u64,
        end: u64,
    ) {
        if !self.stream {
            let mut whole = vec![0; (end - start) as usize];
            match file.read_exact_at(&mut whole, start) {
                Ok(()) => self.message(core, el, &whole),
                Err(e) => core.fail(&e),
            }
            return;
        }
        // Behind what was staged, then into the window as it has room.
        self.flush_staged(core, el, staged);
        core.queue().push_file(file, start, end);
        self.feed(core, el);
    }

    fn write_shared(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: SharedBytes,
    ) {
        self.write(core, el, staged, (*data).as_ref());
    }

    fn write_now(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: &[u8],
    ) {
        self.write(core, el, staged, data);
    }

    fn write_vec_now(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: Vec<u8>,
    ) {
        self.write(core, el, staged, &data);
    }

    fn flush_staged(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>) {
        if staged.is_empty() {
            return;
        }
        if core.is_closed() || core.doom.is_some() {
            staged.clear();
            return;
        }
        if self.stream {
            self.take(core, el, staged);
        } else {
            // What `write_with` added in the callback: one message.
            self.message(core, el, staged);
        }
        staged.clear();
    }

    fn flush(&mut self, core: &mut Core, el: &mut EventLoop) {
        self.feed(core, el);
    }

    fn resumed(&mut self, core: &mut Core, el: &mut EventLoop) {
        // Data may wait in the engine.
        el.defer(core.token, Event::new(core.token, Event::READABLE));
    }

    fn settle(&mut self, core: &mut Core, el: &mut EventLoop) -> io::Result<()> {
        if self.dirty && !core.is_closed() {
            self.transmit(core, el);
        }
        Ok(())
    }

    fn close(&mut self, _core: &mut Core, _el: &mut EventLoop) {}

    fn holds_output(&self) -> bool {
        self.kcp.waiting() > 0
    }

    fn lingers(&self) -> bool {
        // No FIN to wait for: closed once the peer acknowledged everything.
        false
    }
}
