//! epoll(7) wrappers.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::retry;

pub use libc::epoll_event as EpollEvent;
pub use libc::{
    EPOLLERR, EPOLLET, EPOLLEXCLUSIVE, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLRDHUP,
};

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub fn create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with a constant flag.
    let fd = retry("epoll_create1", || unsafe {
        libc::epoll_create1(libc::EPOLL_CLOEXEC)
    })?;
    // SAFETY: a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl(op)`; `events`/`data` are ignored for `EPOLL_CTL_DEL`.
pub fn ctl(epfd: RawFd, op: i32, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
    let name = match op {
        libc::EPOLL_CTL_ADD => "epoll_ctl add",
        libc::EPOLL_CTL_MOD => "epoll_ctl mod",
        _ => "epoll_ctl del",
    };
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    retry(name, || unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) })?;
    Ok(())
}

/// `epoll_wait` into `buf`'s spare capacity; `timeout_ms` -1 blocks.
pub fn wait(epfd: RawFd, buf: &mut Vec<EpollEvent>, timeout_ms: i32) -> io::Result<usize> {
    buf.clear();
    let cap = buf.capacity().min(i32::MAX as usize) as i32;
    // SAFETY: the kernel writes at most `cap` events into the vector's capacity.
    let n = retry("epoll_wait", || unsafe {
        libc::epoll_wait(epfd, buf.as_mut_ptr(), cap, timeout_ms)
    })? as usize;
    // SAFETY: epoll_wait initialised the first `n <= cap` entries.
    unsafe { buf.set_len(n) };
    Ok(n)
}
