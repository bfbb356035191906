//! Replacing a running server by a new process without closing a listener
//! (the graceful upgrade nginx does on SIGUSR2).
//!
//! ```text
//!  old process                                  new process (same program path, same args)
//!  start_successor: pipe, fork, exec  ───────>  fds 3.. = every held listener, in bind order
//!    env LISTEN_FDS=n LISTEN_FDNAMES=...        LISTEN_PID = its own pid (set between fork and exec)
//!        EVNET_UPGRADE_READY_FD=3+n             inherit::init takes them; servers bind to them
//!  Successor::wait_ready  <────"READY=1\n"────  notify_ready once it serves
//!  stop accepting, drain, exit 0                (accepts on the same sockets meanwhile)
//! ```
//!
//! The listening sockets are the same kernel objects in both processes, so
//! a connection waiting in an accept queue is accepted by whichever process
//! is accepting: none is refused or reset. A SO_REUSEPORT group keeps every
//! member (none is closed and bound again, which would reset its queue).
//! If the new process fails to exec, exits, closes the pipe or stays silent
//! past the timeout, it is killed and reaped, and the old one serves on.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::inherit;
use crate::sys;

/// The environment variable naming the fd a successor reports ready on.
pub const READY_ENV: &str = "EVNET_UPGRADE_READY_FD";
/// What a successor writes on the ready pipe.
const READY: &[u8] = b"READY=1\n";

/// A new process started by [`start_successor`], not yet known to serve.
#[derive(Debug)]
pub struct Successor {
    pid: u32,
    ready: OwnedFd,
}

/// Start `program` with `args` (not including argv\[0\]) and this process's
/// environment, passing it every listener [`inherit::held`] as `LISTEN_FDS`
/// and a pipe to report readiness on. Returns once it has exec'd.
pub fn start_successor(program: &Path, args: &[OsString]) -> io::Result<Successor> {
    let held = inherit::held();
    if held.is_empty() {
        return Err(io::Error::other("no listener to hand over"));
    }
    let (ready_read, ready_write) = sys::pipe()?;
    let mut fds: Vec<RawFd> = held.iter().map(|f| f.as_raw_fd()).collect();
    let names: Vec<String> = fds.iter().map(|&fd| inherit::fd_name(fd)).collect();
    let n = fds.len();
    fds.push(ready_write.as_raw_fd());
    let cstr = |b: &[u8]| {
        CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
    };
    let prog = cstr(program.as_os_str().as_bytes())?;
    let mut argv = vec![prog.clone()];
    for a in args {
        argv.push(cstr(a.as_bytes())?);
    }
    let ours = [
        inherit::LISTEN_PID,
        inherit::LISTEN_FDS,
        inherit::LISTEN_FDNAMES,
        READY_ENV,
    ];
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os() {
        if ours.iter().any(|o| k == *o) {
            continue;
        }
        let mut e = k.as_bytes().to_vec();
        e.push(b'=');
        e.extend_from_slice(v.as_bytes());
        env.push(cstr(&e)?);
    }
    env.push(cstr(format!("{}={n}", inherit::LISTEN_FDS).as_bytes())?);
    env.push(cstr(
        format!("{}={}", inherit::LISTEN_FDNAMES, names.join(":")).as_bytes(),
    )?);
    env.push(cstr(
        format!("{READY_ENV}={}", inherit::FIRST_FD + n as RawFd).as_bytes(),
    )?);
    let pid = sys::process::spawn_with_fds(&prog, &argv, &env, &[], &fds)?;
    drop(ready_write);
    Ok(Successor {
        pid,
        ready: ready_read,
    })
}

impl Successor {
    /// The new process's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Wait until the new process reports ready (`Ok(pid)`), or give up:
    /// it exited or closed the pipe first, or `timeout` passed. On giving
    /// up it is killed and reaped, and the error says why.
    pub fn wait_ready(self, timeout: Duration) -> io::Result<u32> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::with_capacity(READY.len());
        let why = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break format!("not ready after {timeout:?}");
            }
            let mut pfd = [sys::fdset::PollFd {
                fd: self.ready.as_raw_fd(),
                events: sys::fdset::POLLIN,
                revents: 0,
            }];
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            sys::fdset::poll(&mut pfd, ms)?;
            let mut buf = [0u8; 16];
            match sys::read(self.ready.as_raw_fd(), &mut buf) {
                Ok(0) => break "exited (or closed its ready pipe) before it was ready".to_string(),
                Ok(k) => {
                    got.extend_from_slice(&buf[..k]);
                    if got.starts_with(READY) {
                        return Ok(self.pid);
                    }
                    if got.len() >= READY.len() {
                        break format!(
                            "sent {:?} instead of READY=1",
                            String::from_utf8_lossy(&got)
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => break format!("ready pipe: {e}"),
            }
        };
        let _ = sys::process::kill(self.pid, libc::SIGKILL);
        sys::process::reap_blocking(self.pid);
        Err(io::Error::other(format!("new process {}: {why}", self.pid)))
    }
}

/// In a process started by [`start_successor`]: report that it serves (the
/// old process then stops accepting and drains). Returns `false` when this
/// process was not started by an upgrade (nothing to tell). Call once,
/// after every listener is being served.
pub fn notify_ready() -> io::Result<bool> {
    let Some(fd) = inherit::READY_PIPE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
        return Ok(false);
    };
    sys::write(fd.as_raw_fd(), READY)?;
    Ok(true)
}
