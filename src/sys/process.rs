//! Process-control calls for the multi-process supervisor: pidfds, kill,
//! parent-death signals.

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
