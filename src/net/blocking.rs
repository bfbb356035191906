//! Blocking thread-per-connection serving: the baseline every event-driven
//! model is measured against. One OS thread per connection, blocking reads
//! and writes, no poller at all.

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
