//! The output queue: what the socket has not taken yet, and a per-thread
//! pool of emptied queues.
//!
//! ```text
//!  chunks: [ Bytes(b0) | Shared(s1) | File{pos..end} | Bytes(b3) ... ]
//!            ^ head: b0[..head] already sent
//!  len = b0.len() - head + s1.len() + (end - pos) + ...  (+ a send in flight)
//! ```

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use crate::sys;

/// Writes at least this large skip the staging copy when nothing is queued.
pub(crate) const DIRECT_WRITE: usize = 16 * 1024;
/// Small writes are appended to the last queued chunk up to this size.
const COALESCE: usize = 64 * 1024;
/// iovecs per sendmsg.
const MAX_IOV: usize = 64;

/// Bytes that many connections may send at once without a copy (a large
/// stored value in many replies): see [`Conn::write_shared`](crate::net::Conn::write_shared).
/// They are held, never written, while queued or being sent.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// One piece of queued output.
pub(crate) enum Chunk {
    Bytes(Vec<u8>),
    /// Shared bytes, sent from where they are.
    Shared(SharedBytes),
    /// A file region sent with sendfile(2), never copied through user space.
    File {
        file: Arc<std::fs::File>,
        pos: u64,
        end: u64,
    },
}

impl Chunk {
    fn remaining(&self, head: usize) -> usize {
        match self {
            Chunk::Bytes(b) => b.len() - head,
            Chunk::Shared(s) => (**s).as_ref().len() - head,
            Chunk::File { pos, end, .. } => (end - pos) as usize,
        }
    }
}

/// Output the socket has not taken yet: chunks in order, the first one
/// partly sent up to `head` (bytes and shared chunks; file chunks advance
/// `pos`).
#[derive(Default)]
pub(crate) struct OutQueue {
    pub(crate) chunks: VecDeque<Chunk>,
    pub(crate) head: usize,
    /// Bytes not yet sent, in `chunks` and (proactor) in flight.
    pub(crate) len: usize,
    /// Proactor: a send (its buffer out of `chunks`, held by the ring) or a
    /// wait for room is in flight.
    pub(crate) busy: bool,
}

thread_local! {
    /// Emptied queues kept for reuse on this thread's loop: in the proactor
    /// model every reply goes through a queue while its send is in flight.
    /// (The boxes themselves are what is kept: a connection holds a box.)
    #[allow(clippy::vec_box)]
    static SPARE_QUEUES: std::cell::RefCell<Vec<Box<OutQueue>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare queues kept per thread.
const SPARE_QUEUES_MAX: usize = 64;

impl OutQueue {
    pub(crate) fn take_spare() -> Box<OutQueue> {
        SPARE_QUEUES
            .with_borrow_mut(|v| v.pop())
            .unwrap_or_default()
    }

    /// Drop a connection's queue, keeping the allocation for the next one.
    pub(crate) fn put_spare(q: Option<Box<OutQueue>>) {
        let Some(mut q) = q else { return };
        if q.chunks.capacity() > 16 {
            return;
        }
        q.chunks.clear();
        q.head = 0;
        q.len = 0;
        q.busy = false;
        SPARE_QUEUES.with_borrow_mut(|v| {
            if v.len() < SPARE_QUEUES_MAX {
                v.push(q);
            }
        });
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            // An empty chunk would stall the send loop (nothing to advance).
            return;
        }
        self.len += data.len();
        if let Some(Chunk::Bytes(last)) = self.chunks.back_mut() {
            if last.len() + data.len() <= COALESCE {
                last.extend_from_slice(data);
                return;
            }
        }
        self.chunks.push_back(Chunk::Bytes(data.to_vec()));
    }

    pub(crate) fn push_vec(&mut self, data: Vec<u8>) {
        if data.len() < DIRECT_WRITE {
            return self.push(&data);
        }
        self.len += data.len();
        self.chunks.push_back(Chunk::Bytes(data));
    }

    pub(crate) fn push_shared(&mut self, data: SharedBytes) {
        if (*data).as_ref().is_empty() {
            return;
        }
        self.len += (*data).as_ref().len();
        self.chunks.push_back(Chunk::Shared(data));
    }

    pub(crate) fn push_file(&mut self, file: Arc<std::fs::File>, pos: u64, end: u64) {
        self.len += (end - pos) as usize;
        self.chunks.push_back(Chunk::File { file, pos, end });
    }

    /// Account for `n` bytes of leading bytes and shared chunks sent.
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let first = self.chunks.front().map_or(0, |c| c.remaining(self.head));
            if n >= first {
                n -= first;
                self.chunks.pop_front();
                self.head = 0;
            } else {
                self.head += n;
                n = 0;
            }
        }
    }

    /// Hand up to `max` bytes from the front of the queue to `sink`, which
    /// returns how many it took, and move past them; a file region is read
    /// (pread) first. For a layer that transforms the output (TLS, KCP)
    /// rather than writing it to the socket. Returns what `sink` took, 0
    /// when nothing is queued.
    pub(crate) fn take_front(
        &mut self,
        max: usize,
        sink: impl FnOnce(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let head = self.head;
        let n = match self.chunks.front_mut() {
            None => return Ok(0),
            Some(Chunk::Bytes(b)) => {
                let s = &b[head..];
                sink(&s[..s.len().min(max)])?
            }
            Some(Chunk::Shared(s)) => {
                let s = &(**s).as_ref()[head..];
                sink(&s[..s.len().min(max)])?
            }
            Some(Chunk::File { file, pos, end }) => {
                let want = ((*end - *pos) as usize).min(max);
                let mut buf = Vec::with_capacity(want);
                if sys::fs::pread_append(file, &mut buf, want, *pos)? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ));
                }
                let n = sink(&buf)?;
                *pos += n as u64;
                self.len -= n;
                if *pos >= *end {
                    self.chunks.pop_front();
                }
                return Ok(n);
            }
        };
        self.advance(n);
        Ok(n)
    }

    /// The leading bytes and shared chunks as iovecs (stops at a file chunk).
    fn slices(&self) -> Vec<IoSlice<'_>> {
        self.chunks
            .iter()
            .take(MAX_IOV)
            .map_while(|c| match c {
                Chunk::Bytes(b) => Some(b.as_slice()),
                Chunk::Shared(s) => Some((**s).as_ref()),
                Chunk::File { .. } => None,
            })
            .enumerate()
            .map(|(i, c)| IoSlice::new(if i == 0 { &c[self.head..] } else { c }))
            .collect()
    }

    /// Send from the front of the queue once; `Ok(0)` means a file ended early.
    pub(crate) fn send_some(&mut self, fd: RawFd) -> io::Result<usize> {
        let single =
            self.chunks.len() == 1 || matches!(self.chunks.get(1), Some(Chunk::File { .. }));
        match self.chunks.front_mut() {
            Some(Chunk::File { file, pos, end }) => {
                let want = ((*end - *pos) as usize).min(1 << 20);
                let n = sys::sendfile(fd, file.as_raw_fd(), pos, want)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ));
                }
                self.len -= n;
                if *pos >= *end {
                    self.chunks.pop_front();
                }
                Ok(n)
            }
            Some(Chunk::Bytes(b)) if single => {
                let n = sys::socket::send(fd, &b[self.head..])?;
                self.advance(n);
                Ok(n)
            }
            Some(Chunk::Shared(b)) if single => {
                let n = sys::socket::send(fd, &(**b).as_ref()[self.head..])?;
                self.advance(n);
                Ok(n)
            }
            Some(Chunk::Bytes(_) | Chunk::Shared(_)) => {
                let n = sys::socket::sendv(fd, &self.slices())?;
                self.advance(n);
                Ok(n)
            }
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    /// Owned and shared chunks leave in order through partial sends, and
    /// empty pieces add nothing (an empty chunk would stall the send loop).
    #[test]
    fn shared_chunks_go_out_in_order_and_empty_pieces_are_dropped() {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let shared: Arc<Vec<u8>> = Arc::new((0..=255u8).cycle().take(300_000).collect());
        let mut q = OutQueue::default();
        q.push(b"");
        q.push_shared(Arc::new(Vec::new()));
        assert!(q.chunks.is_empty() && q.len == 0);
        q.push(b"head:");
        q.push_shared(shared.clone());
        q.push(b":mid:");
        q.push_shared(shared.clone());
        q.push(b":end");
        let mut want = b"head:".to_vec();
        want.extend_from_slice(&shared);
        want.extend_from_slice(b":mid:");
        want.extend_from_slice(&shared);
        want.extend_from_slice(b":end");
        assert_eq!(q.len, want.len());
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        for _ in 0..10_000 {
            if q.len == 0 {
                break;
            }
            match q.send_some(a.as_raw_fd()) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("send: {e}"),
            }
            let n = b.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(q.len, 0);
        drop(a);
        b.read_to_end(&mut got).unwrap();
        assert!(got == want, "bytes out of order");
        // The queue let go of the shared bytes.
        assert_eq!(Arc::strong_count(&shared), 1);
    }
}
