//! The echo service: every byte read is written back.
//!
//! A peer that sends but never reads cannot grow the server's memory past
//! the high-water mark: reading pauses there and resumes when the output
//! has drained.
//!
//! [`Echo`] is the callback handler; [`AsyncEcho`] is the same service as
//! one task per connection on the loops (`evnet echo --model async`).

use crate::net::{Buffer, Conn, EventHandler};

/// An [`EventHandler`] that writes every byte it reads back to the peer,
/// pausing reads while the output queue is above its high-water mark. Keeps
/// no per-connection state; useful as a benchmark target and a smoke test.
#[derive(Default)]
pub struct Echo;

impl EventHandler for Echo {
    type Context = ();

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        if conn.write(input.as_slice()).is_ok() {
            input.clear();
        }
    }

    fn on_high_water(&mut self, conn: &mut Conn<'_, Self>, _queued: usize) {
        conn.pause_read();
    }

    fn on_write_complete(&mut self, conn: &mut Conn<'_, Self>) {
        conn.resume_read();
    }
}

/// The same echo as one task per connection (Go's model): on each of its
/// loops an accept task spawns a task per connection that reads and writes
/// back until the peer's EOF, then shuts down its write side. Backpressure
/// is the task's own: while its write waits for the peer to read, it reads
/// nothing, so a peer that never reads holds at most one read buffer.
pub struct AsyncEcho {
    group: crate::reactor::LoopGroup,
    addr: std::net::SocketAddr,
}

/// Bytes one echo task reads at a time.
const ASYNC_ECHO_BUF: usize = 64 * 1024;

/// Echo `stream` until EOF (then FIN) or an error.
pub async fn echo_stream(mut stream: crate::rt::TcpStream) {
    let mut buf = vec![0u8; ASYNC_ECHO_BUF];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => {
                let _ = stream.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

impl AsyncEcho {
    /// Serve `addr` on `loops` loop threads built from `config` (its `id`
    /// is set per loop). With more than one loop every loop has its own
    /// SO_REUSEPORT listener on the port (the kernel spreads connections).
    pub fn start(
        addr: std::net::SocketAddr,
        loops: usize,
        config: crate::reactor::LoopConfig,
    ) -> std::io::Result<AsyncEcho> {
        let loops = loops.max(1);
        let mut listeners = Vec::with_capacity(loops);
        let mut bound = addr;
        for _ in 0..loops {
            let fd = crate::net::listen(&crate::net::Addr::Tcp(bound), 1024, loops > 1)?;
            let l = std::net::TcpListener::from(fd);
            bound = l.local_addr()?;
            listeners.push(Some(l));
        }
        let listeners = std::sync::Mutex::new(listeners);
        let group = crate::reactor::LoopGroup::builder()
            .name("evnet-async")
            .start(loops, move |id| {
                let mut el = crate::reactor::EventLoop::new(crate::reactor::LoopConfig {
                    id,
                    ..config.clone()
                })?;
                let std_listener = listeners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(id)
                    .and_then(Option::take)
                    .ok_or_else(|| std::io::Error::other("no listener for this loop"))?;
                crate::rt::spawn_in(&mut el, accept_loop(std_listener));
                Ok(el)
            })?;
        Ok(AsyncEcho { group, addr: bound })
    }

    /// The address served.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stop every loop (open connections are closed) and wait for them.
    pub fn stop(self) -> std::io::Result<()> {
        self.group.stop();
        self.group.join().map(drop)
    }
}

async fn accept_loop(listener: std::net::TcpListener) {
    let listener = match crate::rt::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("async echo: cannot watch the listener: {e}");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                crate::rt::spawn_local(echo_stream(stream));
            }
            Err(e) => {
                // Out of fds or memory: back off instead of spinning.
                tracing::warn!("async echo: accept: {e}");
                crate::rt::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
