//! Framing codecs: pure byte-level protocol layers, independent of the
//! event loop.
//!
//! A connection keeps one input buffer per peer. When bytes arrive it appends
//! them and calls [`Decoder::decode`] on the whole unconsumed buffer until it
//! returns `Ok(None)`; after each `Ok(Some((item, n)))` it drops the first `n`
//! bytes. An `Err` means the peer sent something malformed or oversized: the
//! connection reports the error and closes.
//!
//! ```
//! use evnet::codec::{Decoder, line::LineCodec};
//! let mut codec = LineCodec::new(b"\r\n", 1024);
//! let mut buf = b"hello\r\nwor".to_vec();
//! let mut lines = Vec::new();
//! while let Some((line, n)) = codec.decode(&buf).unwrap() {
//!     lines.push(line);
//!     buf.drain(..n);
//! }
//! assert_eq!(lines, vec![b"hello".to_vec()]);
//! assert_eq!(buf, b"wor");
//! ```
//!
//! Decoders may keep private progress between calls that return `Ok(None)`,
//! so that a frame arriving in many small pieces is scanned once, not once per
//! piece. This relies on the connection contract above: the next call sees the
//! same unconsumed bytes again, possibly with more appended. A caller that
//! throws its buffer away must call the decoder's `reset` (or make a new one).
//!
//! | codec | item | file |
//! |---|---|---|
//! | [`line::LineCodec`] | one line, delimiter removed | `line.rs` |
//! | [`length_field::LengthFieldCodec`] | one length-prefixed frame | `length_field.rs` |
//! | [`resp::CommandDecoder`] | one Redis command (`Vec<Vec<u8>>`) | `resp.rs` |
//! | [`framed::Framed`] | adapter: a handler receives whole frames | `framed.rs` |
//! | [`resp::ReplyEncoder`] / [`resp::ReplyDecoder`] | RESP2 values | `resp.rs` |

pub mod framed;
pub mod length_field;
pub mod line;
pub mod resp;

/// Why a frame could not be decoded (or encoded). After a decode error the
/// input stream is out of sync: the connection should be closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CodecError {
    /// The frame is (or claims to be) longer than the configured maximum.
    /// `len` is the claimed or already-buffered length, saturated to `u64`.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Length of the offending frame in bytes: the value its header
        /// claims, or what is already buffered without a complete frame.
        len: u64,
        /// The configured maximum frame length in bytes.
        max: usize,
    },
    /// The bytes do not follow the framing rules.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The frame's CRC-32 trailer does not match its contents.
    #[error("checksum mismatch: trailer says {expected:#010x}, frame hashes to {actual:#010x}")]
    Checksum {
        /// The CRC-32 the frame's trailer carries.
        expected: u32,
        /// The CRC-32 computed over the received frame.
        actual: u32,
    },
    /// A protocol error whose text is meant to be sent to the peer verbatim
    /// (RESP: the server replies `-ERR <text>\r\n` and closes). The text is
    /// exactly Redis's, e.g. `Protocol error: invalid bulk length`.
    #[error("{0}")]
    Protocol(String),
    /// A codec was built with parameters that cannot work.
    #[error("invalid codec configuration: {0}")]
    InvalidConfig(String),
}

/// What [`Decoder::decode`] returns.
pub type DecodeResult<T> = Result<Option<(T, usize)>, CodecError>;

/// Turns bytes from the front of an input buffer into items.
pub trait Decoder {
    /// What one decoded frame becomes (for example `Vec<u8>` for a line, or
    /// `Vec<Vec<u8>>` for a Redis command).
    type Item;
    /// Decode one frame from the front of `src`.
    ///
    /// * `Ok(Some((item, consumed)))`: a whole frame was there; the caller
    ///   drops the first `consumed` bytes (always `> 0`).
    /// * `Ok(None)`: more bytes are needed; the caller keeps `src` and calls
    ///   again with more bytes appended.
    /// * `Err(_)`: malformed or oversized input; close the connection.
    ///
    /// Implementations never allocate a frame's *claimed* size before its
    /// bytes have arrived, and report oversize as soon as it can be known.
    fn decode(&mut self, src: &[u8]) -> Result<Option<(Self::Item, usize)>, CodecError>;
}

/// Writes items as bytes.
pub trait Encoder<Item: ?Sized> {
    /// Append the encoding of `item` to `dst`. On error nothing is appended.
    fn encode(&mut self, item: &Item, dst: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// Test helpers shared by the codec tests.
#[cfg(test)]
pub(crate) mod testutil {
    use super::{CodecError, Decoder};

    /// Feed `bytes` to `dec` the way a connection would: in chunks split at
    /// `cuts` (positions, any order, out-of-range ones ignored), decoding as
    /// many items as possible after each chunk and keeping the unconsumed
    /// tail. Returns the items and the bytes left over at the end.
    pub fn decode_chunked<D: Decoder>(
        dec: &mut D,
        bytes: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<D::Item>, Vec<u8>), CodecError> {
        let mut points: Vec<usize> = cuts.iter().copied().filter(|&c| c < bytes.len()).collect();
        points.push(bytes.len());
        points.sort_unstable();
        points.dedup();
        let mut buf = Vec::new();
        let mut items = Vec::new();
        let mut start = 0;
        for end in points {
            buf.extend_from_slice(&bytes[start..end]);
            start = end;
            while let Some((item, n)) = dec.decode(&buf)? {
                assert!(n > 0, "decoder consumed nothing");
                assert!(n <= buf.len(), "decoder consumed more than it was given");
                buf.drain(..n);
                items.push(item);
            }
        }
        Ok((items, buf))
    }
}
