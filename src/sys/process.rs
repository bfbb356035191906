//! Process-control calls for the multi-process supervisor (pidfds, kill,
//! parent-death signals) and for the process-per-connection model (fork,
//! keeping one fd in the child, reaping).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::retry;

/// `pidfd_open(2)`: an fd that becomes readable when process `pid` exits.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags (0) and returns a new fd or -1.
    let fd = retry("pidfd_open", || unsafe {
        libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0)
    })?;
    // SAFETY: a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// `kill(2)`: send `signal` to process `pid`.
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory arguments; a bad pid only makes it fail.
    retry("kill", || unsafe { libc::kill(pid as libc::pid_t, signal) })?;
    Ok(())
}

/// Ask the kernel to send `signal` to this process when the thread that
/// created it exits (prctl PR_SET_PDEATHSIG): workers must not outlive a
/// master that was SIGKILLed.
pub fn set_parent_death_signal(signal: i32) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes the signal number as its only argument.
    retry("prctl PR_SET_PDEATHSIG", || unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong)
    })?;
    Ok(())
}

/// The parent process id.
pub fn getppid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// Which side of a [`fork`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The new process.
    Child,
    /// The caller, with the child's pid.
    Parent(u32),
}

/// `fork(2)`. The child is a copy with one thread (the caller): until it
/// exits it should only do what needs no lock another thread may have
/// held (glibc's malloc is made safe across fork; std's I/O locks are not).
pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory arguments; the caller's contract above
    // covers what runs in the child.
    let pid = retry("fork", || unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid as u32)
    })
}

/// In a forked child: keep `fd` (as fd 3) and close every other fd above
/// stderr, so the child holds no copy of the parent's other sockets.
/// Returns the kept fd.
pub fn keep_only(fd: OwnedFd) -> io::Result<OwnedFd> {
    use std::os::fd::IntoRawFd;
    const KEEP: libc::c_int = 3;
    let raw = fd.into_raw_fd();
    if raw != KEEP {
        // SAFETY: dup2 onto fd 3 (closing whatever was there): both are
        // plain fd numbers; `raw` is ours and open.
        retry("dup2", || unsafe { libc::dup2(raw, KEEP) })?;
    }
    // SAFETY: close_range closes every fd from 4 up, `raw` among them when
    // it was not 3; nothing in this process uses them again (the child only
    // serves fd 3 and exits).
    retry("close_range", || unsafe {
        libc::syscall(libc::SYS_close_range, KEEP + 1, libc::c_uint::MAX, 0)
    })?;
    // SAFETY: fd 3 is open and now owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(KEEP) })
}

/// `_exit(2)`: end this process now, running no destructors or atexit
/// handlers (what a forked child must do).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and takes no pointers.
    unsafe { libc::_exit(code) }
}

/// Reap child `pid` if it has exited (`waitpid` with WNOHANG): true if it
/// is gone (reaped now, or not our child any more).
pub fn reap(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; WNOHANG never blocks.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    r == pid as libc::pid_t
        || (r == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
}

/// Wait for child `pid` to exit and reap it.
pub fn reap_blocking(pid: u32) {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if r != -1 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}
