//! Signal-driven I/O (O_ASYNC + F_SETSIG) and fd classification, for the
//! `sigio` and `busy-poll` pollers.
//!
//! libc does not export the F_SETSIG / F_SETOWN_EX family for glibc targets;
//! the values below are the generic Linux ones (asm-generic/fcntl.h), the
//! same on x86-64 and aarch64.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::retry;

const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;

/// `struct f_owner_ex` from <fcntl.h>.
#[repr(C)]
struct FOwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// What an fd is, as far as readiness is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// A socket that is listening (SO_ACCEPTCONN).
    Listener,
    /// Any other socket.
    Socket,
    /// A pipe or FIFO (raises SIGIO like a socket).
    Fifo,
    /// A regular file or directory: always "ready", cannot be polled.
    File,
    /// Anything else (eventfd, signalfd, timerfd, tty...): pollable, but
    /// most of these never raise SIGIO.
    Other,
}

/// Classify `fd` with fstat (and SO_ACCEPTCONN for sockets).
pub fn fd_kind(fd: RawFd) -> io::Result<FdKind> {
    Ok(match super::file_mode(fd)? & libc::S_IFMT {
        libc::S_IFSOCK => {
            let mut on: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `on`/`len` describe a writable int for the option value.
            retry("getsockopt SO_ACCEPTCONN", || unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ACCEPTCONN,
                    (&mut on as *mut libc::c_int).cast(),
                    &mut len,
                )
            })?;
            if on != 0 {
                FdKind::Listener
            } else {
                FdKind::Socket
            }
        }
        libc::S_IFIFO => FdKind::Fifo,
        libc::S_IFREG | libc::S_IFDIR => FdKind::File,
        _ => FdKind::Other,
    })
}

/// The calling thread's kernel id.
pub fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// The first realtime signal the C library leaves to applications.
pub fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

fn getfl(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: F_GETFL takes no argument.
    retry("fcntl F_GETFL", || unsafe {
        libc::fcntl(fd, libc::F_GETFL)
    })
}

fn setfl(fd: RawFd, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: F_SETFL takes an int argument.
    retry("fcntl F_SETFL", || unsafe {
        libc::fcntl(fd, libc::F_SETFL, flags)
    })?;
    Ok(())
}

/// Make `fd` raise `signal` in thread `tid` on every readiness change:
/// F_SETSIG (a realtime signal queues one siginfo per event, carrying the fd
/// and poll band), F_SETOWN_EX to that thread, then O_ASYNC.
pub fn enable_async(fd: RawFd, tid: libc::pid_t, signal: i32) -> io::Result<()> {
    // SAFETY: F_SETSIG takes an int argument (the signal number).
    retry("fcntl F_SETSIG", || unsafe {
        libc::fcntl(fd, F_SETSIG, signal)
    })?;
    let owner = FOwnerEx {
        kind: F_OWNER_TID,
        pid: tid,
    };
    // SAFETY: F_SETOWN_EX reads a `struct f_owner_ex`, which `owner` is (repr(C)).
    retry("fcntl F_SETOWN_EX", || unsafe {
        libc::fcntl(fd, F_SETOWN_EX, &owner as *const FOwnerEx)
    })?;
    setfl(fd, getfl(fd)? | libc::O_ASYNC)
}

/// Stop signal-driven I/O on `fd` (clears O_ASYNC).
pub fn disable_async(fd: RawFd) -> io::Result<()> {
    setfl(fd, getfl(fd)? & !libc::O_ASYNC)
}

/// The parts of a `signalfd_siginfo` the sigio poller needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct SigInfo {
    /// The signal number: the realtime signal given to [`enable_async`] for
    /// one readiness event, or plain `SIGIO` when the kernel's realtime
    /// signal queue overflowed (events were lost; every fd must be
    /// rechecked).
    pub signo: i32,
    /// The fd that raised it (F_SETSIG signals only).
    pub fd: i32,
    /// POLLIN/POLLOUT/POLLERR/POLLHUP bits (F_SETSIG signals only).
    pub band: i64,
}

/// Read up to `out.len()` pending signals from a non-blocking signalfd;
/// returns how many (0 when none is pending).
pub fn signalfd_read_batch(fd: &OwnedFd, out: &mut [SigInfo]) -> io::Result<usize> {
    const BATCH: usize = 64;
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: signalfd_siginfo is plain data, valid when zeroed.
    let mut raw: [libc::signalfd_siginfo; BATCH] = unsafe { std::mem::zeroed() };
    let want = out.len().min(BATCH);
    // SAFETY: `raw` is a writable region of BATCH * size bytes; we ask for at most `want` entries.
    let r = retry("read signalfd", || unsafe {
        libc::read(fd.as_raw_fd(), raw.as_mut_ptr().cast(), want * size)
    });
    let n = match r {
        Ok(n) => n as usize / size,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    for (o, r) in out.iter_mut().zip(&raw[..n]) {
        *o = SigInfo {
            signo: r.ssi_signo as i32,
            fd: r.ssi_fd,
            band: r.ssi_band as i64,
        };
    }
    Ok(n)
}
