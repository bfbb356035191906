//! poll(2) and select(2) wrappers.

use std::io;
use std::os::fd::RawFd;

use super::retry;

pub use libc::pollfd as PollFd;
pub use libc::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDHUP};

/// The largest fd number + 1 that an `fd_set` can hold.
pub const FD_SETSIZE: usize = libc::FD_SETSIZE;

/// `poll(2)` over `fds`; `timeout_ms` -1 blocks.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid mutable slice of pollfd structures.
    retry("poll", || unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms)
    })
    .map(|n| n as usize)
}

/// A bounds-checked `fd_set`: fds at or above `FD_SETSIZE` are refused
/// rather than written past the end (what FD_SET would do).
#[derive(Clone, Copy)]
pub struct FdSet(libc::fd_set);

impl Default for FdSet {
    fn default() -> Self {
        // SAFETY: fd_set is plain data; all-zero is the empty set (FD_ZERO).
        FdSet(unsafe { std::mem::zeroed() })
    }
}

impl FdSet {
    fn check(fd: RawFd) -> io::Result<()> {
        if fd < 0 || fd as usize >= FD_SETSIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "select: fd {fd} is outside 0..FD_SETSIZE ({FD_SETSIZE}); use poll or epoll"
                ),
            ));
        }
        Ok(())
    }

    /// Adds `fd` (FD_SET).
    ///
    /// # Errors
    /// `InvalidInput` if `fd` is negative or not below [`FD_SETSIZE`]
    /// (1024): such an fd cannot be watched with `select`; use poll or epoll.
    pub fn insert(&mut self, fd: RawFd) -> io::Result<()> {
        Self::check(fd)?;
        // SAFETY: 0 <= fd < FD_SETSIZE was checked above.
        unsafe { libc::FD_SET(fd, &mut self.0) };
        Ok(())
    }

    /// Removes `fd` (FD_CLR). An fd outside `0..FD_SETSIZE` cannot be in the
    /// set, so it is ignored.
    pub fn remove(&mut self, fd: RawFd) {
        if Self::check(fd).is_ok() {
            // SAFETY: 0 <= fd < FD_SETSIZE was checked above.
            unsafe { libc::FD_CLR(fd, &mut self.0) };
        }
    }

    /// True if `fd` is in the set (FD_ISSET); after [`select`] returns, the
    /// sets hold only the fds that are ready. Always false for an fd outside
    /// `0..FD_SETSIZE`.
    pub fn contains(&self, fd: RawFd) -> bool {
        // SAFETY: 0 <= fd < FD_SETSIZE is checked first.
        Self::check(fd).is_ok() && unsafe { libc::FD_ISSET(fd, &self.0) }
    }
}

/// `select(2)` over fds `0..nfds`; `None` blocks. The sets are updated in place.
pub fn select(
    nfds: RawFd,
    read: &mut FdSet,
    write: &mut FdSet,
    except: &mut FdSet,
    timeout: Option<std::time::Duration>,
) -> io::Result<usize> {
    let (r0, w0, e0) = (*read, *write, *except);
    loop {
        let mut tv = timeout.map(|d| libc::timeval {
            tv_sec: d.as_secs() as libc::time_t,
            tv_usec: d.subsec_micros() as libc::suseconds_t,
        });
        let tvp = tv
            .as_mut()
            .map_or(std::ptr::null_mut(), |t| t as *mut libc::timeval);
        // SAFETY: the sets are valid fd_sets holding only fds < FD_SETSIZE; tvp is null or valid.
        let r = unsafe { libc::select(nfds, &mut read.0, &mut write.0, &mut except.0, tvp) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if errno != libc::EINTR {
            return Err(super::sys_err("select", errno));
        }
        // select leaves the sets undefined on EINTR: restore them before retrying.
        (*read, *write, *except) = (r0, w0, e0);
    }
}
