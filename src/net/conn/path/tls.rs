//! The TLS path: a rustls session layered over another path (readiness or
//! ring), so the handler reads and writes plaintext through the same
//! `Conn` API while the socket carries records.
//!
//! ```text
//!  handler ──plaintext──> staged ──flush_staged──> encrypt ──records──> inner path (core.out)
//!     ^                                   plain (behind a file region) ──pread, encrypt──^
//!     └──plaintext── rb <── rustls reader <── process_new_packets <── read_tls <── inner pull/complete
//! ```
//!
//! - The core's output queue holds only ciphertext, so backpressure and the
//!   high-water mark count what really waits for the socket.
//! - A file region (`send_file`) cannot go out with sendfile(2): it waits as
//!   plaintext in `plain` and is read and encrypted in bounded chunks
//!   (`CHUNK`) while less than `AHEAD` of ciphertext is queued; everything
//!   written behind it waits in `plain` too, so records leave in order.
//! - A graceful close (or `shutdown_write`) sends close_notify after the
//!   last plaintext; the peer's close_notify is the EOF, and a transport EOF
//!   without it closes with a protocol error (a truncation).
//! - Input is decrypted as it is pulled; while reading is paused, decrypted
//!   plaintext waits inside the session. On the ring, completions posted
//!   before a pause are still fed to the session (never stashed raw in the
//!   core's input tail, which holds plaintext only).

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::time::Duration;

use rustls::Connection;

use super::{Core, Input, IoPath};
use crate::net::conn::out::OutQueue;
use crate::net::conn::state::ReadState;
use crate::net::CloseReason;
use crate::poller::Event;
use crate::reactor::EventLoop;
use crate::ring::Completion;

/// Plaintext read from a file per encryption step.
const CHUNK: usize = 64 * 1024;
/// Keep encrypting queued plaintext while less than this much ciphertext
/// waits for the socket.
const AHEAD: usize = 256 * 1024;
/// Ciphertext kept while the session's plaintext waits to be read: a few
/// socket reads' worth at most.
const MAX_KEPT: usize = 1 << 20;

thread_local! {
    /// Ciphertext on its way in (read from the socket) and out (records
    /// to send): one buffer each per loop thread, so an idle connection
    /// owns none.
    static CIPHER_IN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static CIPHER_OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub(crate) struct Tls<P> {
    inner: P,
    session: Connection,
    /// Ciphertext read but not yet taken by the session (it takes more only
    /// once its decrypted plaintext has been read).
    cipher_in: Vec<u8>,
    /// Plaintext that waits behind a file or shared region not encrypted
    /// yet; `None` when nothing does (the common case).
    plain: Option<Box<OutQueue>>,
    /// Send close_notify once `plain` is empty.
    notify: bool,
    /// The transport's EOF was read.
    eof: bool,
    /// The session was told of it (after the kept ciphertext).
    eof_told: bool,
    /// Plaintext was written before the handshake finished (the session
    /// holds it until then): close_notify and the FIN wait for it.
    early: bool,
    handshake_timeout: Duration,
}

impl<P: IoPath> Tls<P> {
    pub(crate) fn new(inner: P, mut session: Connection, handshake_timeout: Duration) -> Tls<P> {
        // The core's queue bounds output; rustls holds only what one write
        // encrypts before it is moved there.
        session.set_buffer_limit(None);
        Tls {
            inner,
            session,
            cipher_in: Vec::new(),
            plain: None,
            notify: false,
            eof: false,
            eof_told: false,
            early: false,
            handshake_timeout,
        }
    }

    pub(crate) fn handshaking(&self) -> bool {
        self.session.is_handshaking()
    }

    pub(crate) fn handshake_timeout(&self) -> Option<Duration> {
        Some(self.handshake_timeout)
    }

    /// Move the records the session has ready to the inner path (sent now,
    /// or queued behind what waits).
    fn send_records(&mut self, core: &mut Core, el: &mut EventLoop) {
        if !self.session.wants_write() {
            return;
        }
        let mut buf = CIPHER_OUT.with_borrow_mut(std::mem::take);
        while self.session.wants_write() {
            if let Err(e) = self.session.write_tls(&mut buf) {
                core.fail(&e);
                break;
            }
        }
        // The inner path sends it, queues what the socket does not take, or
        // (ring) hands the buffer to the kernel and leaves a spare here.
        self.inner.flush_staged(core, el, &mut buf);
        buf.clear();
        CIPHER_OUT.with_borrow_mut(|b| {
            if b.capacity() < buf.capacity() {
                *b = buf;
            }
        });
    }

    /// Encrypt `data` now (nothing waits in `plain`).
    fn encrypt(&mut self, core: &mut Core, el: &mut EventLoop, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.early |= self.session.is_handshaking();
        if let Err(e) = self.session.writer().write_all(data) {
            return core.fail(&e);
        }
        self.send_records(core, el);
    }

    /// Plaintext written during a callback goes out now, or behind what
    /// waits in `plain`.
    fn take_staged(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>) {
        match self.plain.as_mut() {
            Some(p) => p.push(staged),
            None => self.encrypt(core, el, staged),
        }
        staged.clear();
    }

    /// Encrypt waiting plaintext while little ciphertext is queued, then
    /// send; close_notify goes out behind the last of it.
    fn refill(&mut self, core: &mut Core, el: &mut EventLoop) {
        // Bounded: 1,024 chunks (64 MiB) per event at most.
        for _ in 0..1024 {
            if core.is_closed() || core.doom.is_some() {
                return;
            }
            let Some(plain) = self.plain.as_mut() else {
                break;
            };
            if core.queued() >= AHEAD {
                return;
            }
            if plain.len == 0 {
                OutQueue::put_spare(self.plain.take());
                break;
            }
            let r = next_plain(plain, &mut self.session);
            if let Err(e) = r {
                return core.fail(&e);
            }
            self.send_records(core, el);
            self.inner.flush(core, el);
        }
        if self.notify && self.plain.is_none() && !core.is_closed() && !self.early_pending() {
            self.notify = false;
            self.session.send_close_notify();
            self.send_records(core, el);
        }
    }

    /// Feed ciphertext to the session; returns how much it took. Stops
    /// early when decrypted plaintext waits to be read (the session takes
    /// no more until it is). A broken record dooms the connection (after
    /// the session's alert is sent).
    fn feed(&mut self, core: &mut Core, el: &mut EventLoop, mut data: &[u8]) -> usize {
        let total = data.len();
        while !data.is_empty() {
            match self.session.read_tls(&mut data) {
                Ok(0) => break,
                Ok(_) => {}
                // The session's plaintext is full: read it first.
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => {
                    core.fail(&e);
                    break;
                }
            }
            match self.session.process_new_packets() {
                Ok(state) => {
                    if state.plaintext_bytes_to_read() > 0 {
                        break;
                    }
                }
                Err(e) => {
                    self.broken(core, el, e);
                    return total;
                }
            }
        }
        // Handshake messages, key updates, alerts.
        self.send_records(core, el);
        total - data.len()
    }

    /// Ciphertext just read: behind what is kept, if anything is (records
    /// must reach the session in order), else fed now with the rest kept.
    fn absorb(&mut self, core: &mut Core, el: &mut EventLoop, data: &[u8]) {
        if !self.cipher_in.is_empty() {
            if self.cipher_in.len() > MAX_KEPT {
                // The session takes nothing while its plaintext is read:
                // a peer cannot make this grow past a few reads.
                core.doom
                    .get_or_insert(CloseReason::Protocol("tls: input backed up".into()));
                return;
            }
            self.cipher_in.extend_from_slice(data);
            return;
        }
        let n = self.feed(core, el, data);
        if n < data.len() {
            self.cipher_in.extend_from_slice(&data[n..]);
        }
    }

    /// Ciphertext from the transport (`read` fills the loop's buffer, with
    /// at least `room` spare): fed to the session, or kept behind what is
    /// kept; an EOF is noted, and the session hears of it once the
    /// ciphertext before it has gone in.
    fn read_transport(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        room: usize,
        read: impl FnOnce(&mut P, &mut Core, &mut EventLoop, &mut Vec<u8>) -> Input,
    ) -> Input {
        let mut cin = CIPHER_IN.with_borrow_mut(std::mem::take);
        cin.clear();
        cin.reserve(room);
        let got = read(&mut self.inner, core, el, &mut cin);
        match got {
            Input::Data => self.absorb(core, el, &cin),
            Input::Eof => self.eof = true,
            Input::Tail | Input::Stop => {}
        }
        cin.clear();
        CIPHER_IN.with_borrow_mut(|b| *b = cin);
        got
    }

    /// Tell the session the transport ended (a truncated record or a
    /// missing close_notify shows up when the plaintext is read).
    fn tell_eof(&mut self, core: &mut Core, el: &mut EventLoop) {
        self.eof_told = true;
        let _ = self.session.read_tls(&mut &[][..]);
        if let Err(e) = self.session.process_new_packets() {
            self.broken(core, el, e);
        }
    }

    /// The session refused the peer's records: its alert goes out, then
    /// the connection closes with the reason.
    fn broken(&mut self, core: &mut Core, el: &mut EventLoop, e: rustls::Error) {
        self.send_records(core, el);
        core.doom
            .get_or_insert(CloseReason::Protocol(format!("tls: {e}")));
    }

    /// Decrypted plaintext into `rb`, or what the session's state says
    /// instead: `None` when it has nothing and needs more ciphertext.
    fn plaintext(&mut self, core: &mut Core, rb: &mut Vec<u8>) -> Option<Input> {
        let mut reader = self.session.reader();
        loop {
            let room = rb.capacity() - rb.len();
            match reader.fill_buf() {
                Ok([]) if rb.is_empty() => return Some(Input::Eof),
                Ok([]) => return Some(Input::Data),
                Ok(chunk) => {
                    let n = chunk.len().min(room.max(1));
                    rb.extend_from_slice(&chunk[..n]);
                    reader.consume(n);
                    if rb.len() >= rb.capacity() {
                        return Some(Input::Data);
                    }
                }
                Err(_) if !rb.is_empty() => return Some(Input::Data),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => {
                    // A transport EOF without close_notify: the peer's
                    // data may have been cut short.
                    let why = if e.kind() == io::ErrorKind::UnexpectedEof {
                        "tls: peer closed without close_notify".to_string()
                    } else {
                        format!("tls: {e}")
                    };
                    core.doom.get_or_insert(CloseReason::Protocol(why));
                    return Some(Input::Stop);
                }
            }
        }
    }

    /// Plaintext from what the session holds and the kept ciphertext,
    /// without reading the socket.
    fn buffered_input(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        rb: &mut Vec<u8>,
    ) -> Option<Input> {
        for _ in 0..64 {
            if let Some(input) = self.plaintext(core, rb) {
                return Some(input);
            }
            if core.doom.is_some() {
                return Some(Input::Stop);
            }
            if self.cipher_in.is_empty() {
                if self.eof && !self.eof_told {
                    self.tell_eof(core, el);
                    continue;
                }
                return None;
            }
            let kept = std::mem::take(&mut self.cipher_in);
            let n = self.feed(core, el, &kept);
            self.cipher_in = kept;
            self.cipher_in.drain(..n);
            if n == 0 {
                return None;
            }
        }
        None
    }

    /// Plaintext written during the handshake still waits for it to end.
    fn early_pending(&self) -> bool {
        self.early && self.session.is_handshaking()
    }

    /// Whether input waits inside this layer (a pull will find it without
    /// the socket).
    fn holds_input(&mut self) -> bool {
        !self.cipher_in.is_empty()
            || self
                .session
                .process_new_packets()
                .is_ok_and(|s| s.plaintext_bytes_to_read() > 0)
    }
}

/// Encrypt the next piece of `plain` (a bounded chunk of a file, or what
/// was written behind it).
fn next_plain(plain: &mut OutQueue, session: &mut Connection) -> io::Result<()> {
    plain
        .take_front(CHUNK, |piece| session.writer().write(piece))
        .map(drop)
}

impl<P: IoPath> IoPath for Tls<P> {
    fn readable(&mut self, core: &mut Core, el: &mut EventLoop, ev: Event) {
        self.inner.readable(core, el, ev);
    }

    fn pull(&mut self, core: &mut Core, el: &mut EventLoop, rb: &mut Vec<u8>) -> Input {
        // Bounded: each turn either returns or feeds a socket read.
        for _ in 0..64 {
            if !core.reading() {
                // Paused (plaintext waits in the session) or doomed.
                return Input::Stop;
            }
            if let Some(input) = self.buffered_input(core, el, rb) {
                return input;
            }
            if self.eof {
                // EOF seen and nothing left: the reader reported it above.
                return Input::Stop;
            }
            let room = rb.capacity().max(16 * 1024);
            let got = self.read_transport(core, el, room, |inner, core, el, cin| {
                inner.pull(core, el, cin)
            });
            if matches!(got, Input::Tail | Input::Stop) {
                // The transport has nothing now; plaintext decrypted from
                // an earlier read may still be there.
                return self.plaintext(core, rb).unwrap_or(Input::Stop);
            }
        }
        Input::Stop
    }

    fn budget_spent(&mut self, core: &mut Core, el: &mut EventLoop) {
        self.inner.budget_spent(core, el);
        if self.holds_input() {
            // Decrypted input left over: come back for it whatever the
            // trigger mode (the socket may have nothing new to announce).
            el.defer(core.token, Event::new(core.token, Event::READABLE));
        }
    }

    fn complete(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        c: Completion,
        rb: &mut Vec<u8>,
    ) -> Input {
        // Records that arrive while paused go into the session, not into
        // the core's (plaintext) input tail.
        let paused = core.read == ReadState::Paused;
        if paused {
            core.read = ReadState::Reading;
        }
        self.read_transport(core, el, 0, |inner, core, el, cin| {
            let got = inner.complete(core, el, c, cin);
            if paused && core.read == ReadState::Reading {
                core.read = ReadState::Paused;
            }
            got
        });
        if self.plain.is_some() || self.notify {
            self.refill(core, el);
        }
        if !core.reading() {
            return Input::Stop;
        }
        let input = self.buffered_input(core, el, rb).unwrap_or(Input::Stop);
        if input == Input::Data && self.holds_input() {
            el.defer(core.token, Event::new(core.token, Event::READABLE));
        }
        input
    }

    fn write(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>, data: &[u8]) {
        if let Some(p) = self.plain.as_mut() {
            p.push(data);
        } else if data.len() >= super::super::out::DIRECT_WRITE {
            self.take_staged(core, el, staged);
            self.encrypt(core, el, data);
        } else {
            staged.extend_from_slice(data);
        }
    }

    fn write_vec(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: Vec<u8>,
    ) {
        // Encryption copies anyway: nothing to gain from owning it.
        self.write(core, el, staged, &data);
    }

    fn write_file(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        file: std::sync::Arc<std::fs::File>,
        start: u64,
        end: u64,
    ) {
        self.take_staged(core, el, staged);
        if start < end {
            self.plain
                .get_or_insert_with(OutQueue::take_spare)
                .push_file(file, start, end);
        }
        self.refill(core, el);
    }

    fn write_shared(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: crate::net::SharedBytes,
    ) {
        self.take_staged(core, el, staged);
        match self.plain.as_mut() {
            Some(p) => p.push_shared(data),
            None => self.encrypt(core, el, (*data).as_ref()),
        }
        self.refill(core, el);
    }

    fn staged_grew(&mut self, _core: &mut Core, _staged: &mut Vec<u8>, _from: usize) {
        // Plaintext stays staged until the callback returns.
    }

    fn write_now(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: &[u8],
    ) {
        self.take_staged(core, el, staged);
        self.encrypt(core, el, data);
    }

    fn write_vec_now(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: Vec<u8>,
    ) {
        self.write_now(core, el, staged, &data);
    }

    fn flush_staged(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>) {
        if core.is_closed() || core.doom.is_some() {
            staged.clear();
            return;
        }
        if !staged.is_empty() {
            self.take_staged(core, el, staged);
        }
        if self.notify {
            self.refill(core, el);
        }
    }

    fn flush(&mut self, core: &mut Core, el: &mut EventLoop) {
        self.inner.flush(core, el);
        if self.plain.is_some() || self.notify {
            self.refill(core, el);
        }
    }

    fn resumed(&mut self, core: &mut Core, el: &mut EventLoop) {
        self.inner.resumed(core, el);
        if self.holds_input() || self.eof {
            el.defer(core.token, Event::new(core.token, Event::READABLE));
        }
    }

    fn closing(&mut self, _core: &mut Core) {
        self.notify = true;
    }

    fn prepare(&mut self, core: &mut Core, el: &mut EventLoop) {
        let stalled = self.plain.is_some() && core.out.is_none();
        if (stalled || self.notify) && !core.is_closed() && core.doom.is_none() {
            // Plaintext waits with nothing queued to bring a writable event,
            // or a close_notify waited for the handshake: go on now.
            self.refill(core, el);
        }
    }

    fn settle(&mut self, core: &mut Core, el: &mut EventLoop) -> io::Result<()> {
        self.inner.settle(core, el)
    }

    fn holds_output(&self) -> bool {
        self.plain.is_some() || self.notify
    }

    fn close(&mut self, core: &mut Core, el: &mut EventLoop) {
        OutQueue::put_spare(self.plain.take());
        self.inner.close(core, el);
    }
}
