//! Sockets passed in by whoever started this process, and the sockets this
//! process would pass on.
//!
//! Inheriting follows systemd's socket-passing protocol, so one code path
//! serves socket activation and evnet's own upgrade (SIGUSR2, see
//! [`upgrade`](super::upgrade)):
//!
//! ```text
//!   LISTEN_PID=<our pid>    the fds are for this process (not a child that kept the env)
//!   LISTEN_FDS=<n>          they are fds 3 .. 3+n-1
//!   LISTEN_FDNAMES=a:b:...  optional names, one per fd (logged)
//! ```
//!
//! [`init`] takes them once, first thing in `main` (before any thread
//! exists, since it edits the environment): each fd is checked to be a
//! socket, made close-on-exec and non-blocking, and the variables are
//! removed so no child sees them. A server binding an address then asks
//! [`take_stream`] / [`take_datagram`] for an inherited socket whose own
//! address (`getsockname`) matches, instead of binding: a TCP address with
//! port 0 matches any port on that IP (an upgraded process is started with
//! the same `--addr 127.0.0.1:0` its parent resolved), a Unix path matches
//! that path. Several inherited sockets on one address (SO_REUSEPORT, one
//! per loop or per worker) are taken in the order they were passed, one
//! per bind. A matching socket of the wrong kind (a datagram socket for a
//! stream server, or one not listening) is an error naming the fd.
//!
//! The other half: every listener a server binds is [`hold`]-registered
//! (weakly: a listener closed by a drain drops out), so an upgrade can pass
//! [`held`] sockets, in bind order, to the new process.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};

use socket2::Type;

use super::Addr;
use crate::sys;

/// The pid the passed fds are meant for.
pub const LISTEN_PID: &str = "LISTEN_PID";
/// How many fds are passed (from fd 3 up).
pub const LISTEN_FDS: &str = "LISTEN_FDS";
/// Their names, `:`-separated.
pub const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
/// The first passed fd (`SD_LISTEN_FDS_START`).
pub const FIRST_FD: RawFd = 3;
/// More passed fds than this is taken for a corrupt environment.
const MAX_FDS: usize = 65_536;

/// One socket passed to this process, until a server takes it.
struct Passed {
    fd: Option<OwnedFd>,
    name: String,
    local: Option<Addr>,
    ty: Option<Type>,
    listening: bool,
}

static INIT: Once = Once::new();
static PASSED: Mutex<Vec<Passed>> = Mutex::new(Vec::new());
/// Set by [`init`] from `EVNET_UPGRADE_READY_FD`: the pipe the process
/// that started us waits on (see [`upgrade`](super::upgrade)).
pub(crate) static READY_PIPE: Mutex<Option<OwnedFd>> = Mutex::new(None);
/// Listeners this process serves on, in bind order.
type Held = Weak<dyn AsRawFd + Send + Sync>;
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());
/// Unix socket files this process must not remove when it stops: inherited
/// ones (their owner, systemd or an older evnet, removes or reuses them).
static KEEP_PATHS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Set once the listeners were handed to a successor: it serves every path now.
static HANDED_OVER: AtomicBool = AtomicBool::new(false);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Take the sockets passed with `LISTEN_FDS` (when `LISTEN_PID` is this
/// process) and the upgrade's ready pipe, and remove those variables from
/// the environment. Call first thing in `main`, while the process has one
/// thread (it edits the environment). Runs once; returns how many sockets
/// were passed. An fd that is not a socket is left alone and logged.
pub fn init() -> usize {
    let mut count = 0;
    INIT.call_once(|| count = init_once());
    count
}

fn init_once() -> usize {
    let pid = std::env::var(LISTEN_PID).ok();
    let fds = std::env::var(LISTEN_FDS).ok();
    let names = std::env::var(LISTEN_FDNAMES).unwrap_or_default();
    let ready = std::env::var(super::upgrade::READY_ENV).ok();
    for var in [
        LISTEN_PID,
        LISTEN_FDS,
        LISTEN_FDNAMES,
        super::upgrade::READY_ENV,
    ] {
        std::env::remove_var(var);
    }
    let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    if !ours {
        return 0;
    }
    let n = match fds.map(|n| n.parse::<usize>()) {
        Some(Ok(n)) if n <= MAX_FDS => n,
        Some(_) => {
            tracing::warn!("{LISTEN_FDS} is not a number of fds; ignoring it");
            return 0;
        }
        None => 0,
    };
    let names: Vec<&str> = names.split(':').collect();
    let mut passed = lock(&PASSED);
    for i in 0..n {
        let raw = FIRST_FD + i as RawFd;
        let name = names.get(i).copied().unwrap_or("unknown").to_string();
        let Some(p) = adopt(raw, name) else { continue };
        tracing::info!(
            "inherited fd {raw} ({}): {}",
            p.name,
            p.local
                .as_ref()
                .map_or("unnamed socket".to_string(), |a| a.to_string())
        );
        passed.push(p);
    }
    drop(passed);
    if let Some(fd) = ready.and_then(|r| r.parse::<RawFd>().ok()) {
        if fd >= FIRST_FD && sys::file_mode(fd).is_ok() {
            // The parent passed this fd for us alone; close-on-exec keeps
            // it from our own children.
            let owned = own(fd);
            let _ = sys::socket::set_cloexec(owned.as_raw_fd());
            *lock(&READY_PIPE) = Some(owned);
        }
    }
    n
}

/// Take ownership of passed fd `raw` if it is a socket.
fn adopt(raw: RawFd, name: String) -> Option<Passed> {
    let mode = match sys::file_mode(raw) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("inherited fd {raw} ({name}): {e}; ignoring it");
            return None;
        }
    };
    if mode & libc::S_IFMT != libc::S_IFSOCK {
        tracing::warn!("inherited fd {raw} ({name}) is not a socket; ignoring it");
        return None;
    }
    let fd = own(raw);
    // Close-on-exec: children we start must not hold our listeners (a
    // worker or a successor gets them passed explicitly). Non-blocking:
    // systemd passes them blocking, and an accept must never block a loop.
    let _ = sys::socket::set_cloexec(fd.as_raw_fd());
    let _ = sys::socket::set_nonblocking(fd.as_raw_fd());
    let local = sys::socket::local_addr(raw)
        .ok()
        .and_then(|a| Addr::from_sockaddr(&a));
    let (ty, listening) = sys::socket::kind(raw);
    Some(Passed {
        fd: Some(fd),
        name,
        local,
        ty,
        listening,
    })
}

fn own(raw: RawFd) -> OwnedFd {
    sys::socket::own_passed_fd(raw)
}

/// Whether inherited address `have` serves the address `want` asked for.
fn matches(have: &Addr, want: &Addr) -> bool {
    match (have, want) {
        (Addr::Tcp(h), Addr::Tcp(w)) => h.ip() == w.ip() && (w.port() == 0 || h.port() == w.port()),
        (h, w) => h == w,
    }
}

/// An inherited socket bound to `want`, of type `ty` (and listening, for a
/// stream), if one was passed and not taken yet. `Err` when a socket on
/// that address was passed but is of another kind.
fn take(want: &Addr, ty: Type) -> io::Result<Option<OwnedFd>> {
    let mut passed = lock(&PASSED);
    let mut wrong = None;
    for p in passed.iter_mut() {
        let Some(fd) = &p.fd else { continue };
        if !p.local.as_ref().is_some_and(|l| matches(l, want)) {
            continue;
        }
        let stream = ty == Type::STREAM;
        if p.ty == Some(ty) && (p.listening || !stream) {
            if let Addr::Unix(path) = want {
                lock(&KEEP_PATHS).push(path.clone());
            }
            return Ok(p.fd.take());
        }
        wrong.get_or_insert((fd.as_raw_fd(), p.name.clone()));
    }
    match wrong {
        Some((fd, name)) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "inherited fd {fd} ({name}) for {want} is not a {}",
                if ty == Type::STREAM {
                    "listening stream socket"
                } else {
                    "datagram socket"
                }
            ),
        )),
        None => Ok(None),
    }
}

/// An inherited listening stream socket for `addr`, if one was passed
/// (see the module docs for the matching).
pub fn take_stream(addr: &Addr) -> io::Result<Option<OwnedFd>> {
    take(addr, Type::STREAM)
}

/// An inherited UDP socket bound to `addr`, if one was passed.
pub fn take_datagram(addr: std::net::SocketAddr) -> io::Result<Option<OwnedFd>> {
    take(&Addr::Tcp(addr), Type::DGRAM)
}

/// Close the passed sockets no server took, naming each in the log: a
/// listener nobody accepts on would leave its clients waiting.
pub fn close_unclaimed() -> usize {
    let mut passed = lock(&PASSED);
    let mut n = 0;
    for p in passed.iter_mut() {
        if let Some(fd) = p.fd.take() {
            tracing::warn!(
                "inherited fd {} ({}) matches no address served; closing it",
                fd.as_raw_fd(),
                p.name
            );
            n += 1;
        }
    }
    n
}

/// Record a listener this process serves on, to be passed on by an
/// upgrade. Weak: a listener closed by a drain is not passed.
pub fn hold<T: AsRawFd + Send + Sync + 'static>(fd: &Arc<T>) {
    let fd: Arc<dyn AsRawFd + Send + Sync> = fd.clone();
    let mut held = lock(&HELD);
    held.retain(|w| w.strong_count() > 0);
    held.push(Arc::downgrade(&fd));
}

/// The listeners this process serves on, in bind order (each once).
pub fn held() -> Vec<Arc<dyn AsRawFd + Send + Sync>> {
    let held = lock(&HELD);
    let mut out: Vec<Arc<dyn AsRawFd + Send + Sync>> = Vec::new();
    for fd in held.iter().filter_map(Weak::upgrade) {
        if !out.iter().any(|o| o.as_raw_fd() == fd.as_raw_fd()) {
            out.push(fd);
        }
    }
    out
}

/// A name for a passed socket in `LISTEN_FDNAMES` (which forbids `:`): its
/// address with `:` written as `_`, for logs.
pub fn fd_name(fd: RawFd) -> String {
    let addr = sys::socket::local_addr(fd)
        .ok()
        .and_then(|a| Addr::from_sockaddr(&a));
    match addr {
        Some(a) => a
            .to_string()
            .chars()
            .map(|c| if c == ':' || c.is_control() { '_' } else { c })
            .collect(),
        None => "unknown".to_string(),
    }
}

/// Record that a successor took over every listener: from now on no Unix
/// socket file is removed when this process stops.
pub fn mark_handed_over() {
    HANDED_OVER.store(true, Ordering::SeqCst);
}

/// Whether a stopping server may remove its Unix socket file at `path`:
/// not if the socket was inherited, nor after a handover.
pub fn may_remove_path(path: &std::path::Path) -> bool {
    !HANDED_OVER.load(Ordering::SeqCst) && !lock(&KEEP_PATHS).iter().any(|p| p == path)
}

/// For the servers' bind: an inherited stream listener matching `addr`,
/// or `None` to bind one.
pub(crate) fn stream_or_bind(addr: &Addr) -> io::Result<Option<OwnedFd>> {
    if !INIT.is_completed() {
        return Ok(None);
    }
    take_stream(addr)
}

/// For UDP binds: an inherited socket on `addr`, or `None` to bind one.
pub(crate) fn datagram_or_bind(addr: std::net::SocketAddr) -> io::Result<Option<OwnedFd>> {
    if !INIT.is_completed() {
        return Ok(None);
    }
    take_datagram(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_matches_any_port_on_the_same_ip_only() {
        let have = Addr::parse("127.0.0.1:4321").unwrap();
        assert!(matches(&have, &Addr::parse("127.0.0.1:0").unwrap()));
        assert!(matches(&have, &Addr::parse("127.0.0.1:4321").unwrap()));
        assert!(!matches(&have, &Addr::parse("127.0.0.1:4322").unwrap()));
        assert!(!matches(&have, &Addr::parse("127.0.0.2:0").unwrap()));
        let unix = Addr::parse("unix:/tmp/x.sock").unwrap();
        assert!(matches(&unix, &Addr::parse("unix:/tmp/x.sock").unwrap()));
        assert!(!matches(&unix, &Addr::parse("unix:/tmp/y.sock").unwrap()));
    }
}
