//! A byte buffer with a read cursor, for a connection's unconsumed input.
//!
//! ```text
//! +-------------------+------------------+------------------+
//! | consumed (gone)   |  readable bytes  |  spare capacity  |
//! +-------------------+------------------+------------------+
//! 0        <=       read       <=       len      <=      capacity
//! ```
//! `consume` only moves `read`; the consumed prefix is reclaimed by shifting
//! the readable bytes down when more room is needed (`reserve`) and for free
//! when everything has been consumed (`read = len = 0`).

/// Bytes received on a connection and not yet consumed by its handler.
/// [`EventHandler::on_message`](super::EventHandler::on_message) gets it,
/// reads [`as_slice`](Buffer::as_slice), and calls
/// [`consume`](Buffer::consume) for whole messages; the rest stays for the
/// next call. Owned by the connection's loop thread; not shared.
#[derive(Default, Clone)]
pub struct Buffer {
    data: Vec<u8>,
    read: usize,
}

impl Buffer {
    /// An empty buffer; allocates nothing until bytes are appended.
    pub fn new() -> Buffer {
        Buffer::default()
    }

    /// An empty buffer with room for `cap` bytes before it reallocates.
    pub fn with_capacity(cap: usize) -> Buffer {
        Buffer {
            data: Vec::with_capacity(cap),
            read: 0,
        }
    }

    /// The readable bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.data[self.read..]
    }

    /// The readable bytes, mutably: for decoding in place (unmasking,
    /// decrypting) before consuming them.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.data[self.read..]
    }

    /// Number of readable (not yet consumed) bytes.
    pub fn len(&self) -> usize {
        self.data.len() - self.read
    }

    /// True when every byte received has been consumed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop `n` readable bytes from the front (clamped to what is there).
    pub fn consume(&mut self, n: usize) {
        self.read += n.min(self.len());
        if self.read == self.data.len() {
            self.clear();
        }
    }

    /// Drop everything.
    pub fn clear(&mut self) {
        self.data.clear();
        self.read = 0;
    }

    /// Append bytes.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.data.extend_from_slice(bytes);
    }

    /// Make room for `additional` more bytes, reclaiming the consumed prefix first.
    pub fn reserve(&mut self, additional: usize) {
        if self.data.capacity() - self.data.len() >= additional {
            return;
        }
        if self.read > 0 {
            self.data.drain(..self.read);
            self.read = 0;
        }
        self.data.reserve(additional);
    }

    /// Bytes allocated, including the consumed prefix not yet reclaimed and
    /// the readable bytes; a measure of memory held, not of free space.
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }

    /// Take the readable bytes as a vector (cheap when nothing was consumed).
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.read > 0 {
            self.data.drain(..self.read);
        }
        self.data
    }
}

impl From<Vec<u8>> for Buffer {
    fn from(data: Vec<u8>) -> Buffer {
        Buffer { data, read: 0 }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Buffer(len={}, read={}, cap={})",
            self.len(),
            self.read,
            self.capacity()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_and_reclaim() {
        let mut b = Buffer::with_capacity(8);
        b.extend_from_slice(b"abcdef");
        b.consume(4);
        assert_eq!(b.as_slice(), b"ef");
        b.extend_from_slice(b"ghijkl");
        assert_eq!(b.as_slice(), b"efghijkl");
        b.consume(100);
        assert!(b.is_empty());
        assert_eq!(b.read, 0);
    }
}
