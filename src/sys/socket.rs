//! Socket calls: what `socket2` covers is used through it; the hot-path calls
//! it lacks in the shape we need (accept4 with flags, send/sendmsg with
//! MSG_NOSIGNAL) are wrapped here.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use socket2::{SockAddr, SockRef};

use super::retry;

/// `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`: the new socket and its peer address.
pub fn accept(listener: RawFd) -> io::Result<(OwnedFd, SockAddr)> {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage`/`len` describe a writable buffer large enough for any address.
    let fd = retry("accept4", || unsafe {
        libc::accept4(
            listener,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: accept4 returned a fresh fd we now own, and filled `len` bytes of `storage`.
    Ok(unsafe { (OwnedFd::from_raw_fd(fd), SockAddr::new(storage, len)) })
}

/// `recvfrom(2)` into `buf`: one datagram's length (truncated to `buf`)
/// and its sender.
pub fn recv_from(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `buf` is writable for its length; `storage`/`len` describe a
    // writable buffer large enough for any address.
    let n = retry("recvfrom", || unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    // SAFETY: recvfrom filled `len` bytes of `storage` with the sender.
    Ok((n as usize, unsafe { SockAddr::new(storage, len) }))
}

/// `recv(2)` into the spare capacity of `buf`, extending its length by what
/// was read. (On a socket, `recv` skips the VFS layer that `read` goes
/// through: no file-permission hook or access notification per call.)
pub fn recv_spare(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let cap = spare.len();
    let ptr = spare.as_mut_ptr();
    // SAFETY: `ptr..ptr+cap` is the vector's unused, writable capacity.
    let n = retry("recv", || unsafe { libc::recv(fd, ptr.cast(), cap, 0) })? as usize;
    // SAFETY: the kernel initialised exactly `n <= cap` bytes past the old length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// `recv(2)` of at most `len` bytes into the spare capacity of `buf`
/// (reserved here), extending its length by what was read; with `peek`
/// (`MSG_PEEK`) the bytes stay queued on the socket.
pub fn recv_upto(fd: RawFd, buf: &mut Vec<u8>, len: usize, peek: bool) -> io::Result<usize> {
    buf.reserve(len);
    let spare = buf.spare_capacity_mut();
    let cap = spare.len().min(len);
    let ptr = spare.as_mut_ptr();
    let flags = if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: `ptr..ptr+cap` is the vector's unused, writable capacity.
    let n = retry("recv", || unsafe { libc::recv(fd, ptr.cast(), cap, flags) })? as usize;
    // SAFETY: the kernel initialised exactly `n <= cap` bytes past the old length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// `recv(2)` into the unfilled part of a tokio `ReadBuf` without zeroing
/// it first (tokio's own streams read into uninitialised memory the same
/// way); the bytes read are marked filled.
#[cfg(feature = "tokio-io")]
pub fn recv_read_buf(fd: RawFd, buf: &mut tokio::io::ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: only written by the kernel below, never read; no
    // uninitialised byte is exposed.
    let unfilled = unsafe { buf.unfilled_mut() };
    let cap = unfilled.len();
    let ptr = unfilled.as_mut_ptr();
    // SAFETY: `ptr..ptr+cap` is writable memory the ReadBuf lends us.
    let n = retry("recv", || unsafe { libc::recv(fd, ptr.cast(), cap, 0) })? as usize;
    // SAFETY: the kernel initialised exactly `n <= cap` bytes at the start
    // of the unfilled region.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Ok(n)
}

/// `send(MSG_NOSIGNAL)`: a peer that has gone away gives EPIPE, never SIGPIPE.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid readable region of `buf.len()` bytes.
    retry("send", || unsafe {
        libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)
    })
    .map(|n| n as usize)
}

/// Gathered send (`sendmsg` with MSG_NOSIGNAL: writev cannot suppress SIGPIPE).
pub fn sendv(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: msghdr is plain data, valid when zeroed (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec on Unix (std guarantees it).
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
    // SAFETY: msg points at `msg_iovlen` valid iovecs that outlive the call.
    retry("sendmsg", || unsafe {
        libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL)
    })
    .map(|n| n as usize)
}

/// Run `f` with a socket2 view of an open socket fd (for setting options).
pub fn with_sock<R>(fd: RawFd, f: impl FnOnce(SockRef<'_>) -> R) -> R {
    let b = borrow(fd);
    f(SockRef::from(&b))
}

fn sock(fd: &impl AsFd) -> SockRef<'_> {
    SockRef::from(fd)
}

/// Borrow a raw fd for the duration of one call made on it here.
fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: every caller in this module passes an fd its own caller owns
    // and keeps open across the call, and drops the borrow before returning.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// `shutdown(SHUT_WR)`: send FIN after what is queued in the kernel.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    sock(&borrow(fd)).shutdown(std::net::Shutdown::Write)
}

/// TCP_DEFER_ACCEPT on a listener: the kernel hands over a connection only
/// once its first data has arrived (or `secs` have passed), so the accept
/// and the first read come with one wake-up.
pub fn set_defer_accept(fd: RawFd, secs: u32) -> io::Result<()> {
    let v = secs as libc::c_int;
    // SAFETY: `v` is a live c_int for the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The pending socket error (SO_ERROR), cleared by reading it.
pub fn take_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    sock(&borrow(fd)).take_error()
}

/// The connected peer's address (`getpeername`). For a Unix-domain peer that
/// never bound, the address is unnamed.
///
/// # Errors
/// `ENOTCONN` if the socket is not connected (yet, or any more).
pub fn peer_addr(fd: RawFd) -> io::Result<SockAddr> {
    sock(&borrow(fd)).peer_addr()
}

/// The address the socket is bound to (`getsockname`): with the real port
/// after binding port 0, and unnamed for an unbound Unix-domain socket.
pub fn local_addr(fd: RawFd) -> io::Result<SockAddr> {
    sock(&borrow(fd)).local_addr()
}

/// Own an fd passed to this process at exec (`LISTEN_FDS`): nothing else
/// in the process refers to it.
pub fn own_passed_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the passing protocol gives this process the fd and nothing
    // else in it holds the number (callers take each passed fd once).
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Set close-on-exec on `fd` (`fcntl F_SETFD`).
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    with_sock(fd, |s| s.set_cloexec(true))
        .map_err(|e| io::Error::new(e.kind(), format!("fcntl F_SETFD {fd}: {e}")))
}

/// Make `fd` non-blocking (`fcntl F_SETFL O_NONBLOCK`).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    with_sock(fd, |s| s.set_nonblocking(true))
        .map_err(|e| io::Error::new(e.kind(), format!("fcntl F_SETFL {fd}: {e}")))
}

/// A socket's type (SO_TYPE) and whether it is listening (SO_ACCEPTCONN);
/// `None` if it cannot be asked.
pub fn kind(fd: RawFd) -> (Option<socket2::Type>, bool) {
    with_sock(fd, |s| (s.r#type().ok(), s.is_listener().unwrap_or(false)))
}
