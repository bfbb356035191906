//! Sockets for tasks: [`TcpListener`], [`TcpStream`] and its owned halves,
//! with Go's deadlines.
//!
//! On a readiness loop every operation tries its system call first and
//! waits on the loop only on `WouldBlock` (see `ready.rs`). On the io_uring
//! proactor, streams are in completion mode (`ring.rs`): the ring's
//! multishot recv fills the stream's input, which reads copy out of, and
//! writes queue owned buffers the ring sends — a read future dropped
//! (by a timeout, say) never loses bytes the kernel delivered. Listeners and UDP sockets use readiness on
//! every loop. Deadlines are absolute and per direction,
//! as Go's `SetReadDeadline`/`SetWriteDeadline`:
//!
//! - once a direction's deadline has passed, its operations fail at once
//!   with `io::ErrorKind::TimedOut`, pending ones included (they are woken);
//! - successful I/O does not move a deadline; `None` clears it;
//! - moving a deadline while an operation waits takes effect for that
//!   operation: earlier wakes it sooner (at once if already past), later
//!   lets it wait on. A timer armed for an old deadline that fires finds
//!   the new one not yet due and the operation waits again: a stale timer
//!   never ends an operation early.
//!
//! The read half and the write half of a stream ([`TcpStream::into_split`])
//! can be used by two tasks at once, one reading and one writing.
//!
//! Dropping a socket closes its fd once the loop has forgotten it: right
//! after the poll in which it was dropped (when the task yields), never
//! before, so the fd number cannot be reused while the loop still names it.
//! A socket the loop never watched is closed at once.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::executor::{current, Local};
use super::ready::Dir;
use crate::sys;

/// A socket registered with the current loop's executor.
struct Io {
    local: Rc<Local>,
    key: u64,
    /// `Some` until dropped.
    sock: Option<Socket>,
    /// A stream in completion mode (on the proactor: `ring.rs`).
    ring: bool,
}

impl Io {
    /// A listener, a datagram socket, or a stream still connecting.
    fn new(sock: Socket) -> io::Result<Io> {
        let local = current().ok_or_else(|| {
            io::Error::other("evnet::rt sockets are made on an evnet loop (in a task or block_on)")
        })?;
        sock.set_nonblocking(true)?;
        let key = local.ios.borrow_mut().add(sock.as_raw_fd());
        Ok(Io {
            local,
            key,
            sock: Some(sock),
            ring: false,
        })
    }

    /// A connected stream: in completion mode on a proactor loop.
    fn stream(sock: Socket) -> io::Result<Io> {
        let mut io = Io::new(sock)?;
        io.ring = io.local.ios.borrow_mut().make_stream(io.key);
        Ok(io)
    }

    fn sock(&self) -> &Socket {
        self.sock.as_ref().expect("socket present until drop")
    }

    /// Run `op` until it does not block: on `WouldBlock` leave the waker
    /// and wait. Fails with `TimedOut` once `dir`'s deadline has passed.
    /// `drained` says whether a result means the socket had no more to give
    /// (or no more room): then the next operation waits for an event first.
    fn poll<T>(
        &self,
        dir: Dir,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&Socket) -> io::Result<T>,
        drained: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        let (deadline, ready) = {
            let mut ios = self.local.ios.borrow_mut();
            if ios.is_closed(self.key) {
                return Poll::Ready(Err(closed()));
            }
            let at = ios.deadline(self.key, dir).and_then(|d| d.at);
            (at, ios.is_ready(self.key, dir))
        };
        if deadline.is_some_and(|at| at <= Instant::now()) {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        if !ready {
            return self.wait(dir, cx, deadline);
        }
        loop {
            match op(self.sock()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return self.wait(dir, cx, deadline);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(v) => {
                    if drained(&v) {
                        self.local.ios.borrow_mut().clear_ready(self.key, dir);
                    }
                    return Poll::Ready(Ok(v));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn wait<T>(
        &self,
        dir: Dir,
        cx: &mut Context<'_>,
        deadline: Option<Instant>,
    ) -> Poll<io::Result<T>> {
        if let Err(e) = self.local.ios.borrow_mut().wait(self.key, dir, cx.waker()) {
            return Poll::Ready(Err(e));
        }
        if let Some(at) = deadline {
            self.arm_deadline(dir, at, cx.waker());
        }
        Poll::Pending
    }

    /// A read into `buf`: short means drained.
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.ring {
            let room = buf.len();
            let take = |src: &[u8]| {
                buf[..src.len()].copy_from_slice(src);
                src.len()
            };
            return self.poll_ring(Dir::Read, cx, |ios, w| {
                ios.ring_read(self.key, room, take, w)
            });
        }
        let want = buf.len();
        self.poll(Dir::Read, cx, |mut s| s.read(buf), |&n| n > 0 && n < want)
    }

    /// A read into the unfilled part of a tokio `ReadBuf`, which is not
    /// zeroed first: the kernel (readiness) or the stream's input
    /// (completion mode) fills it.
    #[cfg(feature = "tokio-io")]
    pub(crate) fn poll_read_buf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.ring {
            let room = buf.remaining();
            let take = |src: &[u8]| {
                buf.put_slice(src);
                src.len()
            };
            return self.poll_ring(Dir::Read, cx, |ios, w| {
                ios.ring_read(self.key, room, take, w)
            });
        }
        let want = buf.remaining();
        self.poll(
            Dir::Read,
            cx,
            |s| sys::socket::recv_read_buf(s.as_raw_fd(), buf),
            |&n| n > 0 && n < want,
        )
    }

    /// A send of `buf`: short means the socket is full.
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.ring {
            return self.poll_write_vectored(cx, &[IoSlice::new(buf)]);
        }
        self.poll(
            Dir::Write,
            cx,
            |s| sys::socket::send(s.as_raw_fd(), buf),
            |&n| n < buf.len(),
        )
    }

    /// A send from several buffers (sendmsg).
    fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.ring {
            return self.poll_ring(Dir::Write, cx, |ios, w| ios.ring_write(self.key, bufs, w));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        self.poll(
            Dir::Write,
            cx,
            |mut s| s.write_vectored(bufs),
            |&n| n < total,
        )
    }

    /// A flush: nothing to wait for (the readiness path has no user-space
    /// buffer; completion-mode sends go on without the task), but a send
    /// error seen so far is reported.
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.ring {
            return Poll::Ready(Ok(()));
        }
        self.poll_ring(Dir::Write, cx, |ios, _| ios.ring_flush(self.key))
    }

    /// Shut down `how`; in completion mode the FIN follows the queued
    /// output.
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if !self.ring || how == Shutdown::Read {
            return self.sock().shutdown(how);
        }
        if how == Shutdown::Both {
            self.sock().shutdown(Shutdown::Read)?;
        }
        if self.local.ios.borrow_mut().ring_shutdown_write(self.key) {
            self.sock().shutdown(Shutdown::Write)?;
        }
        Ok(())
    }

    /// Close for every task (Go's `Close`).
    fn close(&self) {
        if self.ring {
            // FIN follows the queued output; readers wake to NotConnected.
            let _ = self.sock().shutdown(Shutdown::Read);
        } else {
            let _ = self.sock().shutdown(Shutdown::Both);
        }
        self.local.ios.borrow_mut().close(self.key);
    }

    /// A completion-mode operation, with the closed check and `dir`'s
    /// deadline around it.
    fn poll_ring<T>(
        &self,
        dir: Dir,
        cx: &mut Context<'_>,
        op: impl FnOnce(&mut super::ready::Registry, &Waker) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let deadline = {
            let mut ios = self.local.ios.borrow_mut();
            if ios.is_closed(self.key) {
                return Poll::Ready(Err(closed()));
            }
            ios.deadline(self.key, dir).and_then(|d| d.at)
        };
        if deadline.is_some_and(|at| at <= Instant::now()) {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        let r = op(&mut self.local.ios.borrow_mut(), cx.waker());
        if r.is_pending() {
            if let Some(at) = deadline {
                self.arm_deadline(dir, at, cx.waker());
            }
        }
        r
    }

    /// Make sure a timer wakes `waker` at `at`.
    fn arm_deadline(&self, dir: Dir, at: Instant, waker: &Waker) {
        let mut ios = self.local.ios.borrow_mut();
        let Some(d) = ios.deadline(self.key, dir) else {
            return;
        };
        match d.sleeper {
            Some(k) => self.local.update_sleeper(k, at, waker),
            None => d.sleeper = Some(self.local.add_sleeper(at, waker.clone())),
        }
    }

    fn set_deadline(&self, dir: Dir, at: Option<Instant>) {
        let mut ios = self.local.ios.borrow_mut();
        let waiter = ios.waiter(self.key, dir);
        let Some(d) = ios.deadline(self.key, dir) else {
            return;
        };
        d.at = at;
        match (at, d.sleeper) {
            (Some(at), Some(k)) => self.local.reset_sleeper(k, at),
            (None, Some(k)) => {
                self.local.remove_sleeper(k);
                d.sleeper = None;
            }
            (Some(at), None) => {
                // An operation already waiting needs the timer now.
                if let Some(w) = waiter {
                    if at <= Instant::now() {
                        w.wake();
                    } else {
                        d.sleeper = Some(self.local.add_sleeper(at, w));
                    }
                }
            }
            (None, None) => {}
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        let Some(sock) = self.sock.take() else { return };
        let mut ios = self.local.ios.borrow_mut();
        for dir in [Dir::Read, Dir::Write] {
            if let Some(k) = ios.deadline(self.key, dir).and_then(|d| d.sleeper.take()) {
                self.local.remove_sleeper(k);
            }
        }
        ios.remove(self.key, OwnedFd::from(sock));
    }
}

/// The listen(2) backlog of task listeners (the kernel caps it at
/// somaxconn).
pub(crate) const BACKLOG: i32 = 1024;

/// What operations on a closed stream fail with (Go's "use of closed
/// network connection").
fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream closed")
}

fn to_std(addr: &socket2::SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::Error::other("not an IP socket address"))
}

/// A TCP listener for tasks.
pub struct TcpListener {
    io: Io,
}

impl TcpListener {
    /// Bind and listen on `addr` (SO_REUSEADDR, a backlog of 1024; an IPv6
    /// address is v6-only), on the current loop.
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, false)
    }

    /// Like [`TcpListener::bind`]; with `reuse_port`, SO_REUSEPORT too, so
    /// that every loop can have a listener of its own on one port (the
    /// kernel spreads connections over them).
    pub fn bind_with(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
        let fd = crate::net::listen(&crate::net::Addr::Tcp(addr), BACKLOG, reuse_port)?;
        Ok(TcpListener {
            io: Io::new(Socket::from(fd))?,
        })
    }

    /// Take over a bound, listening std listener (made non-blocking here).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: Io::new(Socket::from(OwnedFd::from(listener)))?,
        })
    }

    /// Wait for the next connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll for the next connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (fd, peer) = match self.io.poll(
            Dir::Read,
            cx,
            |s| sys::socket::accept(s.as_raw_fd()),
            |_| false,
        ) {
            Poll::Ready(Ok(r)) => r,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let stream = TcpStream::from_socket(Socket::from(fd))?;
        Poll::Ready(Ok((stream, to_std(&peer)?)))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        to_std(&self.io.sock().local_addr()?)
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.sock().as_raw_fd()
    }
}

/// The reading methods of a task stream and of its read half. `self.io`
/// is the stream's `Rc<Io>`.
macro_rules! read_methods {
    () => {
        /// Read into `buf`; 0 means the peer closed its side.
        pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::future::poll_fn(|cx| self.io.poll_read(cx, buf)).await
        }

        /// Fill `buf` exactly (`UnexpectedEof` if the stream ends first).
        pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
            read_exact(&self.io, buf).await
        }

        /// Poll a read into `buf`.
        pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            self.io.poll_read(cx, buf)
        }

        /// Poll a read into a tokio `ReadBuf` (no zeroing first).
        #[cfg(feature = "tokio-io")]
        pub(crate) fn poll_read_buf(
            &self,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<usize>> {
            self.io.poll_read_buf(cx, buf)
        }

        /// Reads fail with `TimedOut` from `at` on (`None` clears); see the
        /// module doc for the exact rules.
        pub fn set_read_deadline(&self, at: Option<Instant>) {
            self.io.set_deadline(Dir::Read, at);
        }
    };
}

/// The writing methods of a task stream and of its write half.
macro_rules! write_methods {
    () => {
        /// Write some of `buf`; how much went.
        pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::future::poll_fn(|cx| self.io.poll_write(cx, buf)).await
        }

        /// Write all of `buf`.
        pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            write_all(&self.io, buf).await
        }

        /// Write from several buffers in one call (sendmsg); how much went.
        pub async fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            std::future::poll_fn(|cx| self.io.poll_write_vectored(cx, bufs)).await
        }

        /// Poll a write of `buf`.
        pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.io.poll_write(cx, buf)
        }

        /// Poll a vectored write.
        pub fn poll_write_vectored(
            &self,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.io.poll_write_vectored(cx, bufs)
        }

        /// Report a send error seen so far (on the proactor writes are
        /// queued for the ring, which sends them without the task; elsewhere
        /// they are in the kernel when `write` returns). Nothing to wait for.
        pub async fn flush(&mut self) -> io::Result<()> {
            std::future::poll_fn(|cx| self.io.poll_flush(cx)).await
        }

        /// Poll a flush.
        pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.io.poll_flush(cx)
        }

        /// Writes fail with `TimedOut` from `at` on (`None` clears).
        pub fn set_write_deadline(&self, at: Option<Instant>) {
            self.io.set_deadline(Dir::Write, at);
        }
    };
}

/// The methods every task stream has (TCP and Unix): reads, writes,
/// shutdown, close, deadlines, and the split into halves.
macro_rules! stream_methods {
    () => {
        read_methods!();
        write_methods!();

        /// Shut down one or both directions (`Write` sends FIN, after
        /// everything written).
        pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
            self.io.shutdown(how)
        }

        /// Close the stream, as Go's `Conn.Close`: both directions are shut
        /// down (the peer reads EOF after what was written), and every
        /// operation on it — pending in another task, or later — fails with
        /// `NotConnected`. The fd itself is released when the last handle
        /// (stream or half) is dropped, after the loop has forgotten it, so
        /// its number cannot be reused under a pending operation.
        pub fn close(&self) {
            self.io.close();
        }

        /// Both deadlines at once.
        pub fn set_deadline(&self, at: Option<Instant>) {
            self.set_read_deadline(at);
            self.set_write_deadline(at);
        }

        /// Whether reads and writes are io_uring operations (completion
        /// mode, on a proactor loop; see the module doc) rather than system
        /// calls made on readiness.
        pub fn uses_ring(&self) -> bool {
            self.io.ring
        }

        /// Split into a read half and a write half, for two tasks (one reading,
        /// one writing) on this loop.
        pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
            (
                OwnedReadHalf {
                    io: self.io.clone(),
                },
                OwnedWriteHalf { io: self.io },
            )
        }
    };
}

/// Connect `sock` to `addr` without blocking the loop: the socket is
/// writable once connected, or failed (the error is SO_ERROR).
async fn connect(sock: Socket, addr: socket2::SockAddr) -> io::Result<Rc<Io>> {
    sock.set_nonblocking(true)?;
    match sock.connect(&addr) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        // A Unix socket whose listener's backlog is full.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    let mut io = Io::new(sock)?;
    std::future::poll_fn(|cx| {
        let connected = |s: &Socket| match s.take_error()? {
            Some(e) => Err(e),
            None => match s.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Err(e) => Err(e),
            },
        };
        io.poll(Dir::Write, cx, connected, |_| false)
    })
    .await?;
    io.ring = io.local.ios.borrow_mut().make_stream(io.key);
    Ok(Rc::new(io))
}

/// A TCP connection for tasks: read, write, shut down, with deadlines.
pub struct TcpStream {
    io: Rc<Io>,
}

impl TcpStream {
    fn from_socket(sock: Socket) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: Rc::new(Io::stream(sock)?),
        })
    }

    /// Take over a connected std stream (made non-blocking here).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        TcpStream::from_socket(Socket::from(OwnedFd::from(stream)))
    }

    /// Connect to `addr`, waiting as long as the kernel does.
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
        Ok(TcpStream {
            io: connect(sock, addr.into()).await?,
        })
    }

    /// [`TcpStream::connect`] giving up after `timeout` (`TimedOut`).
    pub async fn connect_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        super::timeout(timeout, TcpStream::connect(addr)).await?
    }

    stream_methods!();

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        to_std(&self.io.sock().peer_addr()?)
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        to_std(&self.io.sock().local_addr()?)
    }

    /// TCP_NODELAY on or off.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.sock().set_nodelay(on)
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.sock().as_raw_fd()
    }
}

async fn read_exact(io: &Io, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::future::poll_fn(|cx| io.poll_read(cx, buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
    }
    Ok(())
}

async fn write_all(io: &Io, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::future::poll_fn(|cx| io.poll_write(cx, buf)).await?;
        buf = &buf[n..];
    }
    Ok(())
}

/// The read half of a [`TcpStream`].
pub struct OwnedReadHalf {
    io: Rc<Io>,
}

impl OwnedReadHalf {
    read_methods!();
}

/// The write half of a [`TcpStream`].
pub struct OwnedWriteHalf {
    io: Rc<Io>,
}

impl OwnedWriteHalf {
    write_methods!();

    /// Send FIN: the peer reads end of stream after what was written.
    pub fn shutdown(&self) -> io::Result<()> {
        self.io.shutdown(Shutdown::Write)
    }
}

/// A UDP socket for tasks: unconnected (`send_to`/`recv_from`) or
/// connected (`send`/`recv`), with Go's deadlines. Each receive takes one
/// datagram; a datagram longer than the buffer is truncated (as recv(2)).
pub struct UdpSocket {
    io: Io,
}

impl UdpSocket {
    /// Bind to `addr` on the current loop.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
        let sock = Socket::new(Domain::for_address(addr), Type::DGRAM.cloexec(), None)?;
        sock.bind(&addr.into())?;
        Ok(UdpSocket { io: Io::new(sock)? })
    }

    /// Take over a bound std socket (made non-blocking here).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: Io::new(Socket::from(OwnedFd::from(socket)))?,
        })
    }

    /// Send to, and receive only from, `addr` from now on.
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        self.io.sock().connect(&addr.into())
    }

    /// Send one datagram to `target`.
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let target = socket2::SockAddr::from(target);
        std::future::poll_fn(|cx| {
            self.io
                .poll(Dir::Write, cx, |s| s.send_to(buf, &target), |_| false)
        })
        .await
    }

    /// Receive one datagram: its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = std::future::poll_fn(|cx| {
            // A datagram shorter than the buffer says nothing of the next:
            // readiness is cleared only by WouldBlock.
            let recv = |s: &Socket| sys::socket::recv_from(s.as_raw_fd(), buf);
            self.io.poll(Dir::Read, cx, recv, |_| false)
        })
        .await?;
        Ok((n, to_std(&from)?))
    }

    /// Send one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.io.poll(Dir::Write, cx, |s| s.send(buf), |_| false)).await
    }

    /// Receive one datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.io.poll(Dir::Read, cx, |mut s| s.read(buf), |_| false)).await
    }

    /// Receives fail with `TimedOut` from `at` on (`None` clears).
    pub fn set_read_deadline(&self, at: Option<Instant>) {
        self.io.set_deadline(Dir::Read, at);
    }

    /// Sends fail with `TimedOut` from `at` on (`None` clears).
    pub fn set_write_deadline(&self, at: Option<Instant>) {
        self.io.set_deadline(Dir::Write, at);
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        to_std(&self.io.sock().local_addr()?)
    }
}

/// A Unix-domain stream listener for tasks.
pub struct UnixListener {
    io: Io,
}

impl UnixListener {
    /// Bind and listen on the socket path `path` (a backlog of 1024), as the
    /// servers' Unix listeners do: a stale socket file left there is
    /// replaced, a live one refused.
    pub fn bind(path: impl AsRef<std::path::Path>) -> io::Result<UnixListener> {
        let addr = crate::net::Addr::Unix(path.as_ref().to_path_buf());
        let fd = crate::net::listen(&addr, BACKLOG, false)?;
        Ok(UnixListener {
            io: Io::new(Socket::from(fd))?,
        })
    }

    /// Take over a bound, listening std listener.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: Io::new(Socket::from(OwnedFd::from(listener)))?,
        })
    }

    /// Wait for the next connection.
    pub async fn accept(&self) -> io::Result<UnixStream> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll for the next connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<UnixStream>> {
        let accept = |s: &Socket| sys::socket::accept(s.as_raw_fd());
        match self.io.poll(Dir::Read, cx, accept, |_| false) {
            Poll::Ready(Ok((fd, _))) => Poll::Ready(Ok(UnixStream {
                io: Rc::new(Io::stream(Socket::from(fd))?),
            })),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A Unix-domain stream for tasks: the same reads, writes, deadlines,
/// close and split as [`TcpStream`].
pub struct UnixStream {
    io: Rc<Io>,
}

impl UnixStream {
    /// Connect to the socket path `path`.
    pub async fn connect(path: impl AsRef<std::path::Path>) -> io::Result<UnixStream> {
        let sock = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        Ok(UnixStream {
            io: connect(sock, socket2::SockAddr::unix(path)?).await?,
        })
    }

    /// A connected pair (socketpair(2)).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        Ok((
            UnixStream {
                io: Rc::new(Io::stream(a)?),
            },
            UnixStream {
                io: Rc::new(Io::stream(b)?),
            },
        ))
    }

    /// Take over a connected std stream.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: Rc::new(Io::stream(Socket::from(OwnedFd::from(stream)))?),
        })
    }

    stream_methods!();
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.sock().as_raw_fd()
    }
}
