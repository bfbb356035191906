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

/// Wait for child `pid` to exit, reap it, and describe how it ended
/// (`exit status 0`, `signal 9`), for logs.
pub fn reap_status(pid: u32) -> String {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if r == -1 {
            return format!("waitpid: {}", io::Error::last_os_error());
        }
        return if libc::WIFSIGNALED(status) {
            format!("signal {}", libc::WTERMSIG(status))
        } else {
            format!("exit status {}", libc::WEXITSTATUS(status))
        };
    }
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

/// Start `program` (a path) with `argv` (`argv[0]` included) and `env`
/// (`KEY=value` entries), with `stdio` pairs `(fd, target)` placed first
/// (`target` 0, 1 or 2), handing it `fds` as fds 3, 4, ... in order, and
/// with `LISTEN_PID` set to the child's own pid, as systemd's socket
/// passing protocol wants (`sd_listen_fds` ignores the fds unless
/// `LISTEN_PID` is the reader's pid, so a grandchild does not take them).
/// The pid is only known after `fork`, so it is written into an `env`
/// entry allocated before the fork: the child allocates nothing, takes no
/// lock and calls only async-signal-safe functions (the parent may have
/// other threads). The child gets every signal unblocked and SIGPIPE back
/// to its default, as `std::process::Command` does. Returns the pid once
/// the child has exec'd; an exec failure is returned as an error (the
/// child is reaped).
pub fn spawn_with_fds(
    program: &std::ffi::CStr,
    argv: &[std::ffi::CString],
    env: &[std::ffi::CString],
    stdio: &[(std::os::fd::RawFd, std::os::fd::RawFd)],
    fds: &[std::os::fd::RawFd],
) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    let n = fds.len() as libc::c_int;
    // Copies above every target number, so placing one fd at 3 + i cannot
    // overwrite another still to be placed.
    let high: Vec<OwnedFd> = fds
        .iter()
        .map(|&fd| super::dup_at_least(fd, 3 + n))
        .collect::<io::Result<_>>()?;
    let high_raw: Vec<libc::c_int> = high.iter().map(|f| f.as_raw_fd()).collect();
    // "LISTEN_PID=" and room for any pid (at most 10 digits) and the NUL.
    const PREFIX: &[u8] = b"LISTEN_PID=";
    let mut pid_entry = [0u8; 32];
    pid_entry[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(pid_entry.as_ptr().cast());
    env_ptrs.push(std::ptr::null());
    let pid_digits = pid_entry.as_mut_ptr();
    // The child reports a failed exec here (the pipe closes on a good one).
    let (err_read, err_write) = super::pipe()?;
    // SAFETY: fork has no memory arguments. The child runs only the block
    // below: stack writes, getpid, dup2, sigprocmask, signal, execve,
    // write and _exit, all async-signal-safe, on memory allocated before
    // the fork (`pid_entry`, the pointer arrays, `high_raw`, `stdio`) which
    // the child's copy of the address space still holds. The stdio
    // targets (0-2) are below every listener copy (>= 3 + n), and the
    // listener copies are placed after, so no placement clobbers a source.
    let pid = retry("fork", || unsafe { libc::fork() })?;
    if pid == 0 {
        // SAFETY: as above; every pointer is into memory made before fork.
        unsafe {
            let mut pid_now = libc::getpid() as u32;
            let mut digits = [0u8; 10];
            let mut len = 0;
            loop {
                digits[len] = b'0' + (pid_now % 10) as u8;
                len += 1;
                pid_now /= 10;
                if pid_now == 0 {
                    break;
                }
            }
            for i in 0..len {
                *pid_digits.add(PREFIX.len() + i) = digits[len - 1 - i];
            }
            *pid_digits.add(PREFIX.len() + len) = 0;
            let mut ok = true;
            for &(fd, target) in stdio {
                if libc::dup2(fd, target) < 0 {
                    ok = false;
                }
            }
            for (i, &fd) in high_raw.iter().enumerate() {
                // dup2 leaves the new fd without close-on-exec: it survives.
                if libc::dup2(fd, 3 + i as libc::c_int) < 0 {
                    ok = false;
                }
            }
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if ok {
                libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr());
            }
            let errno = *libc::__errno_location();
            let bytes = errno.to_ne_bytes();
            libc::write(err_write.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127);
        }
    }
    drop(err_write);
    drop(high);
    let pid = pid as u32;
    // Wait (blocking) for exec or its failure: the pipe is non-blocking,
    // so poll it first.
    let mut pfd = [super::fdset::PollFd {
        fd: err_read.as_raw_fd(),
        events: super::fdset::POLLIN,
        revents: 0,
    }];
    super::fdset::poll(&mut pfd, -1)?;
    let mut buf = [0u8; 4];
    match super::read(err_read.as_raw_fd(), &mut buf) {
        Ok(4) => {
            reap_blocking(pid);
            let errno = i32::from_ne_bytes(buf);
            Err(io::Error::new(
                io::Error::from_raw_os_error(errno).kind(),
                format!(
                    "execve {}: {}",
                    program.to_string_lossy(),
                    io::Error::from_raw_os_error(errno)
                ),
            ))
        }
        _ => Ok(pid),
    }
}
