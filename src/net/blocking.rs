//! Blocking serving: the baselines every event-driven model is measured
//! against. [`ThreadServer`] runs one OS thread per connection,
//! [`ProcessServer`] one forked process per connection; blocking reads and
//! writes, no poller at all.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Stack per connection thread: echo needs little, and the default 2 MiB of
/// reserved address space per thread is what makes this model fall over first.
const STACK: usize = 128 * 1024;

/// A thread-per-connection server; stops (and joins its accept thread) on drop.
pub struct ThreadServer {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    live: Arc<AtomicUsize>,
}

impl ThreadServer {
    /// Serve `listener`, running `serve(stream)` on a new thread per connection.
    pub fn start(
        listener: TcpListener,
        serve: impl Fn(TcpStream) -> io::Result<()> + Send + Sync + 'static,
    ) -> io::Result<ThreadServer> {
        listener.set_nonblocking(false)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicUsize::new(0));
        let serve = Arc::new(serve);
        let (s, l) = (stop.clone(), live.clone());
        let accept = std::thread::Builder::new()
            .name("evnet-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if s.load(Ordering::Acquire) {
                        break;
                    }
                    let stream = match stream {
                        Ok(st) => st,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!("accept: {e}");
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let serve = serve.clone();
                    let l2 = l.clone();
                    l2.fetch_add(1, Ordering::Relaxed);
                    let spawned = std::thread::Builder::new()
                        .stack_size(STACK)
                        .spawn(move || {
                            let _ = serve(stream);
                            l2.fetch_sub(1, Ordering::Relaxed);
                        });
                    if let Err(e) = spawned {
                        l.fetch_sub(1, Ordering::Relaxed);
                        tracing::warn!("cannot spawn a connection thread: {e}");
                    }
                }
            })?;
        Ok(ThreadServer {
            addr,
            stop,
            accept: Some(accept),
            live,
        })
    }

    /// The address the listener is bound to, with the actual port when it
    /// was bound to port 0.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Connections being served now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Stops accepting and joins the accept thread (it wakes the blocked
    /// `accept` with a connection of its own). Connection threads already
    /// running are not interrupted: each ends when its `serve` returns.
    /// Calling it again does nothing more; dropping the server calls it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Unblock accept() with a connection of our own.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Echo on a blocking stream until EOF.
pub fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
    }
}

/// How long the accept loop of a [`ProcessServer`] blocks before it looks
/// for exited children (and for a stop) again.
const REAP_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A process-per-connection server, the oldest model: the accept loop
/// forks a child for each connection, which serves it with blocking calls
/// and exits. The child keeps only the connection's fd (every other fd is
/// closed in it), so it holds no copy of the listener or of other
/// connections. The accept loop reaps exited children at least every
/// 100 ms, so a flood of short connections leaves no zombies; `stop` ends
/// and reaps the children still serving.
///
/// `serve` runs in the child, a copy of this process with one thread: it
/// may allocate (glibc's malloc is fork-safe) but should not take locks
/// other threads might have held at the fork (stdout, a logger).
pub struct ProcessServer {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    children: Arc<std::sync::Mutex<Vec<u32>>>,
    forked: Arc<AtomicUsize>,
}

impl ProcessServer {
    /// Serve `listener`, forking a child that runs `serve(stream)` per
    /// connection.
    pub fn start(
        listener: TcpListener,
        serve: fn(TcpStream) -> io::Result<()>,
    ) -> io::Result<ProcessServer> {
        use crate::sys::process::{self as proc, Forked};
        listener.set_nonblocking(false)?;
        // accept() gives up after this, so the loop can reap and see a stop.
        socket2::SockRef::from(&listener).set_read_timeout(Some(REAP_EVERY))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let children = Arc::new(std::sync::Mutex::new(Vec::new()));
        let forked = Arc::new(AtomicUsize::new(0));
        let (s, kids, count) = (stop.clone(), children.clone(), forked.clone());
        let accept = std::thread::Builder::new()
            .name("evnet-fork".into())
            .spawn(move || {
                let reap_exited = |k: &std::sync::Mutex<Vec<u32>>| {
                    k.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .retain(|&pid| !proc::reap(pid));
                };
                while !s.load(Ordering::Acquire) {
                    reap_exited(&kids);
                    let stream = match listener.accept() {
                        Ok((st, _)) => st,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) =>
                        {
                            continue
                        }
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    // The listener's accept timeout is inherited by the
                    // accepted socket: the child's reads must not time out.
                    if let Err(e) = stream.set_read_timeout(None) {
                        tracing::warn!("accepted socket: {e}");
                        continue;
                    }
                    match proc::fork() {
                        Ok(Forked::Child) => {
                            // The parent may block SIGTERM (to read it from a
                            // signalfd); the child must die of it.
                            let _ = crate::sys::unblock_all_signals();
                            let code = match proc::keep_only(stream.into()) {
                                Ok(fd) => i32::from(serve(TcpStream::from(fd)).is_err()),
                                Err(_) => 2,
                            };
                            proc::exit_now(code);
                        }
                        Ok(Forked::Parent(pid)) => {
                            // The child has the connection; this copy closes.
                            drop(stream);
                            count.fetch_add(1, Ordering::Relaxed);
                            kids.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
                        }
                        Err(e) => {
                            tracing::warn!("fork: {e}");
                            drop(stream);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                    }
                }
            })?;
        Ok(ProcessServer {
            addr,
            stop,
            accept: Some(accept),
            children,
            forked,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Children serving now (forked and not yet reaped).
    pub fn live(&self) -> usize {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Children forked so far.
    pub fn forked(&self) -> usize {
        self.forked.load(Ordering::Relaxed)
    }

    /// Pids of the children serving now.
    pub fn children(&self) -> Vec<u32> {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stop accepting (within 100 ms), then end the children still serving
    /// (SIGTERM) and reap them. Calling it again does nothing more; dropping
    /// the server calls it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(t) = self.accept.take() else { return };
        let _ = t.join();
        let kids = std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for pid in kids {
            let _ = crate::sys::process::kill(pid, libc::SIGTERM);
            crate::sys::process::reap_blocking(pid);
        }
    }
}

impl Drop for ProcessServer {
    fn drop(&mut self) {
        self.stop();
    }
}
