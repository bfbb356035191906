//! A blocking KCP client over one connected UDP socket: for tools, tests
//! and the CLI (`evnet client --kcp`, `evnet load kcp`). The caller drives
//! it: [`KcpClient::poll`] waits for datagrams or the engine's next timer,
//! whichever comes first, so the engine's clock runs only while someone
//! polls.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::config::KcpConfig;
use super::engine::Kcp;
use crate::sys::fdset::{poll, PollFd, POLLIN};

/// One KCP conversation with a server.
pub struct KcpClient {
    sock: UdpSocket,
    kcp: Kcp,
    epoch: Instant,
    buf: Box<[u8]>,
    received: Vec<u8>,
}

impl KcpClient {
    /// Bind an ephemeral port, connect it to `server` and start
    /// conversation `conv` with settings `cfg`.
    pub fn connect(server: SocketAddr, conv: u32, cfg: &KcpConfig) -> io::Result<KcpClient> {
        let local = if server.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let sock = UdpSocket::bind(local)?;
        sock.connect(server)?;
        KcpClient::with_socket(sock, conv, cfg)
    }

    /// A client on a socket already connected to its server.
    pub fn with_socket(sock: UdpSocket, conv: u32, cfg: &KcpConfig) -> io::Result<KcpClient> {
        sock.set_nonblocking(true)?;
        let mut kcp = cfg.engine(conv);
        kcp.set_now(0);
        Ok(KcpClient {
            sock,
            kcp,
            epoch: Instant::now(),
            buf: vec![0u8; 65_536].into_boxed_slice(),
            received: Vec::new(),
        })
    }

    fn now_ms(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }

    fn flush(&mut self) {
        let now = self.now_ms();
        self.kcp.set_now(now);
        let sock = &self.sock;
        self.kcp.flush(&mut |d| {
            // A full socket buffer loses this datagram; KCP resends it.
            let _ = sock.send(d);
        });
    }

    /// Queue `data` and send what the window allows now.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.kcp
            .send(data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("kcp send: {e:?}")))?;
        self.flush();
        Ok(())
    }

    /// Wait at most `wait` for datagrams (less if the engine has a timer
    /// due), read all that arrived, run the engine, and move received data
    /// to [`received`](Self::received). Returns the bytes received now.
    pub fn poll(&mut self, wait: Duration) -> io::Result<usize> {
        let now = self.now_ms();
        let due = Duration::from_millis(u64::from(self.kcp.next_in(now)));
        let ms = wait.min(due).as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd {
            fd: self.sock.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        }];
        poll(&mut fds, ms)?;
        let mut input = false;
        // Bounded: the socket holds a finite number of datagrams.
        loop {
            match self.sock.recv(&mut self.buf) {
                Ok(n) => {
                    input = true;
                    self.kcp.set_now(self.now_ms());
                    // A bad datagram is dropped; the conversation goes on.
                    let _ = self.kcp.input(&self.buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP port unreachable from an earlier send: the server
                // may come back; KCP keeps resending.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                Err(e) => return Err(e),
            }
        }
        let before = self.received.len();
        let received = &mut self.received;
        while self
            .kcp
            .recv_with(|d| received.extend_from_slice(d))
            .is_some()
        {}
        let now = self.now_ms();
        if input {
            self.flush();
        } else {
            let sock = &self.sock;
            self.kcp.update(now, &mut |d| {
                let _ = sock.send(d);
            });
        }
        Ok(self.received.len() - before)
    }

    /// Poll until at least `n` bytes are in [`received`](Self::received)
    /// or `timeout` passes (`TimedOut`), or the link is dead.
    pub fn wait_for(&mut self, n: usize, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.received.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "kcp: {} of {n} bytes after {timeout:?}",
                        self.received.len()
                    ),
                ));
            }
            if self.kcp.is_dead() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "kcp: link dead (a segment was never acknowledged)",
                ));
            }
            self.poll(left.min(Duration::from_millis(50)))?;
        }
        Ok(())
    }

    /// Data received so far and not taken yet.
    pub fn received(&mut self) -> &mut Vec<u8> {
        &mut self.received
    }

    /// Segments not yet acknowledged.
    pub fn waiting(&self) -> usize {
        self.kcp.waiting()
    }

    /// The engine, for its settings and counters.
    pub fn engine(&mut self) -> &mut Kcp {
        &mut self.kcp
    }

    /// The local address (getsockname(2)).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The socket's fd, to wait on several clients at once.
    pub fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}
