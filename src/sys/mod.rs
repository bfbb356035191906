//! The thin syscall layer: the only place (besides the io_uring backend) with
//! `unsafe` FFI. Every wrapper returns `io::Result`, names its syscall in the
//! error, and retries `EINTR` itself; `WouldBlock` is passed up as an
//! ordinary outcome for the caller to wait on.

pub mod alloc;
pub mod epoll;
pub mod fdset;
pub mod fs;
pub mod process;
pub mod sigio;
pub mod socket;
pub mod udp;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An OS error tagged with the syscall that produced it; `errno_of` recovers the code.
#[derive(Debug)]
pub struct SysError {
    /// Name of the failed call as written in the message, e.g. `"accept4"`
    /// or `"fcntl F_SETSIG"`.
    pub syscall: &'static str,
    /// The raw `errno` value (`libc::ECONNRESET`, ...).
    pub errno: i32,
}

impl std::fmt::Display for SysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.syscall,
            io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for SysError {}

/// Build the error for a failed syscall. `EAGAIN` stays a bare OS error so the
/// hot path (every drained socket ends in it) never allocates.
pub(crate) fn sys_err(syscall: &'static str, errno: i32) -> io::Error {
    if errno == libc::EAGAIN {
        return io::Error::from_raw_os_error(errno);
    }
    let kind = io::Error::from_raw_os_error(errno).kind();
    io::Error::new(kind, SysError { syscall, errno })
}

/// Run a syscall returning `-1` on error, retrying `EINTR` (the one place it is retried).
pub(crate) fn retry<T: Copy + PartialOrd + From<i8>>(
    syscall: &'static str,
    mut f: impl FnMut() -> T,
) -> io::Result<T> {
    loop {
        let r = f();
        if r < T::from(0) {
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if errno == libc::EINTR {
                continue;
            }
            return Err(sys_err(syscall, errno));
        }
        return Ok(r);
    }
}

/// The errno behind an error from these wrappers, if there is one.
pub fn errno_of(err: &io::Error) -> Option<i32> {
    err.raw_os_error()
        .or_else(|| err.get_ref()?.downcast_ref::<SysError>().map(|e| e.errno))
}

/// `read(2)` into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable region of `buf.len()` bytes for the call's duration.
    retry("read", || unsafe {
        libc::read(fd, buf.as_mut_ptr().cast(), buf.len())
    })
    .map(|n| n as usize)
}

/// `write(2)` of `buf` (for non-socket fds; sockets use [`socket::send`]).
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid readable region of `buf.len()` bytes.
    retry("write", || unsafe {
        libc::write(fd, buf.as_ptr().cast(), buf.len())
    })
    .map(|n| n as usize)
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    retry("pipe2", || unsafe {
        libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC)
    })?;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A non-blocking, close-on-exec eventfd with counter 0.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant flags.
    let fd = retry("eventfd", || unsafe {
        libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
    })?;
    // SAFETY: eventfd returned a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add 1 to an eventfd's counter. `WouldBlock` (counter saturated) means a
/// wakeup is already pending, which is all a waker needs.
pub fn eventfd_signal(fd: RawFd) -> io::Result<()> {
    let one: u64 = 1;
    match write(fd, &one.to_ne_bytes()) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reset an eventfd's counter to zero.
pub fn eventfd_drain(fd: RawFd) -> io::Result<()> {
    let mut buf = [0u8; 8];
    match read(fd, &mut buf) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Block `signals` in the calling thread (threads it spawns inherit the
/// mask), so they are delivered only through a signalfd.
pub fn block_signals(signals: &[i32]) -> io::Result<()> {
    let set = sigset(signals);
    // SAFETY: `set` is an initialised sigset_t; the old mask is not requested.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Unblock every signal in the calling thread (a forked child must not keep
/// the parent's blocked SIGTERM: it would ignore being stopped).
pub fn unblock_all_signals() -> io::Result<()> {
    // SAFETY: sigset_t is plain data; sigfillset initialises it fully.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t we own.
    unsafe { libc::sigfillset(&mut set) };
    // SAFETY: `set` is initialised; the old mask is not requested.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it fully before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t we own.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: as above; an invalid signal number only makes sigaddset fail.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    set
}

/// A non-blocking signalfd for `signals` (which the caller must have blocked).
pub fn signalfd(signals: &[i32]) -> io::Result<OwnedFd> {
    let set = sigset(signals);
    // SAFETY: -1 asks for a new fd; `set` is a valid initialised sigset_t.
    let fd = retry("signalfd", || unsafe {
        libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
    })?;
    // SAFETY: signalfd returned a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Read one pending signal number from a signalfd; `Ok(None)` when none is pending.
pub fn signalfd_read(fd: &OwnedFd) -> io::Result<Option<i32>> {
    // SAFETY: signalfd_siginfo is plain data, valid when zeroed.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a writable region of exactly `size` bytes.
    let r = retry("read signalfd", || unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    });
    match r {
        Ok(n) if n as usize == size => Ok(Some(info.ssi_signo as i32)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Current soft and hard RLIMIT_NOFILE.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    retry("getrlimit", || unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim)
    })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Set the soft RLIMIT_NOFILE (clamped to the hard limit).
pub fn set_nofile_limit(soft: u64) -> io::Result<()> {
    let (_, hard) = nofile_limit()?;
    let lim = libc::rlimit {
        rlim_cur: soft.min(hard) as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid rlimit.
    retry("setrlimit", || unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim)
    })?;
    Ok(())
}

/// Raise the soft RLIMIT_NOFILE to the hard limit (servers want every fd they may have).
pub fn raise_nofile_limit() -> io::Result<u64> {
    let (_, hard) = nofile_limit()?;
    set_nofile_limit(hard)?;
    Ok(hard)
}

/// `fstat(2)`'s `st_mode` for `fd` (type and permission bits).
pub fn file_mode(fd: RawFd) -> io::Result<libc::mode_t> {
    // SAFETY: stat is plain data, valid when zeroed; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a writable stat; an invalid fd only makes fstat fail.
    retry("fstat", || unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_mode)
}

/// Whether `fd` is a regular file or directory: always "ready", so a
/// readiness poller has nothing to wait for (epoll refuses them with EPERM).
pub fn is_file_or_dir(fd: RawFd) -> io::Result<bool> {
    let kind = file_mode(fd)? & libc::S_IFMT;
    Ok(kind == libc::S_IFREG || kind == libc::S_IFDIR)
}

/// `sendfile(2)` from `file` at `*offset` into socket `out`, advancing `offset`.
pub fn sendfile(out: RawFd, file: RawFd, offset: &mut u64, count: usize) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: `off` is a valid off_t the kernel updates; fds are plain integers.
    let n = retry("sendfile", || unsafe {
        libc::sendfile(out, file, &mut off, count)
    })? as usize;
    *offset = off as u64;
    Ok(n)
}

/// User and system CPU time this process has used, in microseconds.
pub fn process_cpu_micros() -> u64 {
    // SAFETY: rusage is plain data, valid when zeroed.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid rusage to fill; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// Number of CPUs this process may run on.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Duplicate `fd` onto the lowest free number >= `min` (close-on-exec).
pub fn dup_at_least(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument and returns a new fd.
    let new = retry("fcntl F_DUPFD_CLOEXEC", || unsafe {
        libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min)
    })?;
    // SAFETY: a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Send `signal` to the calling thread only (tests of signalfd delivery).
pub fn raise_in_thread(signal: i32) -> io::Result<()> {
    // SAFETY: pthread_self is always valid; pthread_kill only delivers a signal.
    let rc = unsafe { libc::pthread_kill(libc::pthread_self(), signal) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}
