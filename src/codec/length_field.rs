//! Length-prefixed frames, shaped like netty's `LengthFieldBasedFrameDecoder`.
//!
//! A frame on the wire:
//!
//! ```text
//! | prefix (offset bytes) | length field (size bytes) | rest ... | [CRC-32, 4 bytes] |
//! |<------------------------ frame_len ------------------------->|
//!
//! frame_len = offset + size + value(length field) + length_adjustment
//! item      = frame[initial_bytes_to_strip .. frame_len]
//! ```
//!
//! * `value` is unsigned, big- or little-endian, 1, 2, 4 or 8 bytes.
//! * `length_adjustment` (may be negative) is added to the field's value to
//!   get the number of bytes after the length field; e.g. `-(size)` when the
//!   field counts itself, `+2` when a 2-byte header follows the field.
//! * A computed `frame_len` below `offset + size` (the length field's end)
//!   is malformed; one above `max_frame_length` is [`CodecError::FrameTooLarge`],
//!   reported as soon as the header has arrived. The arithmetic is done in
//!   128 bits, so an 8-byte field with its top bit set cannot overflow.
//! * With the CRC-32 option, a 4-byte trailer (same byte order as the length
//!   field) follows each frame: the CRC-32 (IEEE) of all `frame_len` bytes of
//!   the frame, header included. It is not counted in the length field nor in
//!   `max_frame_length`.

use super::{CodecError, Decoder, Encoder};

/// Byte order of the length field (and of the CRC trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Most significant byte first (network byte order). The default.
    BigEndian,
    /// Least significant byte first.
    LittleEndian,
}

/// Default `max_frame_length`: 8 MiB.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 << 20;

const CRC_LEN: usize = 4;

/// Builder for [`LengthFieldCodec`]. Defaults: offset 0, 4-byte big-endian
/// field, adjustment 0, strip the whole header (offset + size), max 8 MiB,
/// no CRC.
#[derive(Debug, Clone)]
pub struct LengthFieldBuilder {
    offset: usize,
    size: usize,
    order: ByteOrder,
    adjustment: i64,
    strip: Option<usize>,
    max_frame_length: usize,
    crc32: bool,
}

impl Default for LengthFieldBuilder {
    fn default() -> Self {
        LengthFieldBuilder {
            offset: 0,
            size: 4,
            order: ByteOrder::BigEndian,
            adjustment: 0,
            strip: None,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            crc32: false,
        }
    }
}

impl LengthFieldBuilder {
    /// Bytes before the length field.
    pub fn length_field_offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
    /// Width of the length field: 1, 2, 4 or 8 bytes.
    pub fn length_field_size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }
    /// Byte order of the length field and of the CRC-32 trailer. Default
    /// [`ByteOrder::BigEndian`].
    pub fn byte_order(mut self, order: ByteOrder) -> Self {
        self.order = order;
        self
    }
    /// Shorthand for `byte_order(ByteOrder::BigEndian)` (the default).
    pub fn big_endian(self) -> Self {
        self.byte_order(ByteOrder::BigEndian)
    }
    /// Shorthand for `byte_order(ByteOrder::LittleEndian)`.
    pub fn little_endian(self) -> Self {
        self.byte_order(ByteOrder::LittleEndian)
    }
    /// Added to the field's value to get the number of bytes that follow the
    /// length field.
    pub fn length_adjustment(mut self, adjustment: i64) -> Self {
        self.adjustment = adjustment;
        self
    }
    /// Bytes removed from the front of each decoded frame. Defaults to the
    /// whole header (`offset + size`).
    pub fn initial_bytes_to_strip(mut self, strip: usize) -> Self {
        self.strip = Some(strip);
        self
    }
    /// Largest accepted `frame_len` (CRC trailer not counted).
    pub fn max_frame_length(mut self, max: usize) -> Self {
        self.max_frame_length = max;
        self
    }
    /// Append/verify a CRC-32 trailer after each frame.
    pub fn crc32(mut self, on: bool) -> Self {
        self.crc32 = on;
        self
    }

    /// Checks the settings and makes the codec.
    ///
    /// # Errors
    /// [`CodecError::InvalidConfig`] if the length field size is not 1, 2, 4
    /// or 8, or if `offset + size` overflows `usize`. Other inconsistencies
    /// (such as stripping more bytes than a frame has) are only detectable
    /// per frame and are reported by `decode`/`encode` as
    /// [`CodecError::Malformed`].
    pub fn build(self) -> Result<LengthFieldCodec, CodecError> {
        if !matches!(self.size, 1 | 2 | 4 | 8) {
            return Err(CodecError::InvalidConfig(format!(
                "length field size must be 1, 2, 4 or 8 bytes, not {}",
                self.size
            )));
        }
        let Some(end) = self.offset.checked_add(self.size) else {
            return Err(CodecError::InvalidConfig(
                "length field offset too large".to_string(),
            ));
        };
        Ok(LengthFieldCodec {
            offset: self.offset,
            size: self.size,
            end,
            order: self.order,
            adjustment: self.adjustment,
            strip: self.strip.unwrap_or(end),
            max_frame_length: self.max_frame_length,
            crc32: self.crc32,
        })
    }
}

/// Decodes and encodes length-prefixed frames; see the module docs for the
/// layout. Stateless between calls (a partial frame costs one header read per
/// call, never a scan of the body).
#[derive(Debug, Clone)]
pub struct LengthFieldCodec {
    offset: usize,
    size: usize,
    end: usize,
    order: ByteOrder,
    adjustment: i64,
    strip: usize,
    max_frame_length: usize,
    crc32: bool,
}

impl LengthFieldCodec {
    /// A builder with the defaults listed on [`LengthFieldBuilder`], for
    /// layouts other than a plain big-endian length prefix.
    pub fn builder() -> LengthFieldBuilder {
        LengthFieldBuilder::default()
    }

    /// The common case: a big-endian `size`-byte length of the payload that
    /// follows it, header stripped from decoded items.
    ///
    /// # Panics
    /// If `size` is not 1, 2, 4 or 8.
    pub fn new(size: usize, max_frame_length: usize) -> LengthFieldCodec {
        LengthFieldCodec::builder()
            .length_field_size(size)
            .max_frame_length(max_frame_length)
            .build()
            .expect("LengthFieldCodec::new: bad length field size")
    }

    /// Bytes of header before the body: `offset + size`.
    pub fn header_len(&self) -> usize {
        self.end
    }

    /// Largest accepted frame in bytes, header included and CRC trailer not
    /// counted; longer frames fail with [`CodecError::FrameTooLarge`] on
    /// both decode and encode.
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    fn read_field(&self, b: &[u8]) -> u64 {
        let mut v: u64 = 0;
        match self.order {
            ByteOrder::BigEndian => {
                for &x in b {
                    v = (v << 8) | u64::from(x);
                }
            }
            ByteOrder::LittleEndian => {
                for &x in b.iter().rev() {
                    v = (v << 8) | u64::from(x);
                }
            }
        }
        v
    }

    fn write_uint(order: ByteOrder, v: u64, size: usize, dst: &mut Vec<u8>) {
        match order {
            ByteOrder::BigEndian => dst.extend_from_slice(&v.to_be_bytes()[8 - size..]),
            ByteOrder::LittleEndian => dst.extend_from_slice(&v.to_le_bytes()[..size]),
        }
    }

    /// The frame length a header announces, checked against the limits.
    fn frame_len(&self, value: u64) -> Result<usize, CodecError> {
        let total = self.end as i128 + i128::from(value) + i128::from(self.adjustment);
        if total < self.end as i128 {
            return Err(CodecError::Malformed(format!(
                "adjusted frame length {total} is less than the length field end offset {}",
                self.end
            )));
        }
        // No buffer can exceed isize::MAX bytes, whatever the configured max.
        if total > self.max_frame_length.min(isize::MAX as usize) as i128 {
            return Err(CodecError::FrameTooLarge {
                len: u64::try_from(total).unwrap_or(u64::MAX),
                max: self.max_frame_length,
            });
        }
        let len = total as usize; // <= max_frame_length, so it fits
        if self.strip > len {
            return Err(CodecError::Malformed(format!(
                "initial bytes to strip ({}) exceed the frame length {len}",
                self.strip
            )));
        }
        Ok(len)
    }

    /// Encode a frame whose pre-length-field bytes are `prefix` (must be
    /// exactly `offset` bytes) and whose bytes after the length field are
    /// `rest`. The field is written as `rest.len() - length_adjustment`.
    pub fn encode_with_prefix(
        &self,
        prefix: &[u8],
        rest: &[u8],
        dst: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        if prefix.len() != self.offset {
            return Err(CodecError::Malformed(format!(
                "prefix is {} bytes, the length field offset is {}",
                prefix.len(),
                self.offset
            )));
        }
        self.encode_inner(prefix, rest, dst)
    }

    fn encode_inner(
        &self,
        prefix: &[u8],
        rest: &[u8],
        dst: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let frame_len = self.end as u128 + rest.len() as u128;
        if frame_len > self.max_frame_length as u128 {
            return Err(CodecError::FrameTooLarge {
                len: u64::try_from(frame_len).unwrap_or(u64::MAX),
                max: self.max_frame_length,
            });
        }
        let value = rest.len() as i128 - i128::from(self.adjustment);
        let field_max: u64 = if self.size == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * self.size)) - 1
        };
        if value < 0 || value > i128::from(field_max) {
            return Err(CodecError::Malformed(format!(
                "length {value} does not fit a {}-byte length field",
                self.size
            )));
        }
        if self.strip as u128 > frame_len {
            return Err(CodecError::Malformed(format!(
                "frame of {frame_len} bytes is shorter than the {} bytes stripped on decode",
                self.strip
            )));
        }
        let start = dst.len();
        dst.reserve(frame_len as usize + if self.crc32 { CRC_LEN } else { 0 });
        if prefix.is_empty() {
            dst.resize(start + self.offset, 0);
        } else {
            dst.extend_from_slice(prefix);
        }
        Self::write_uint(self.order, value as u64, self.size, dst);
        dst.extend_from_slice(rest);
        if self.crc32 {
            let crc = crc32fast::hash(&dst[start..]);
            Self::write_uint(self.order, u64::from(crc), CRC_LEN, dst);
        }
        Ok(())
    }
}

impl Decoder for LengthFieldCodec {
    type Item = Vec<u8>;

    fn decode(&mut self, src: &[u8]) -> Result<Option<(Vec<u8>, usize)>, CodecError> {
        if src.len() < self.end {
            return Ok(None);
        }
        let value = self.read_field(&src[self.offset..self.end]);
        let len = self.frame_len(value)?;
        let total = len + if self.crc32 { CRC_LEN } else { 0 };
        if src.len() < total {
            return Ok(None);
        }
        if self.crc32 {
            let expected = self.read_field(&src[len..total]) as u32;
            let actual = crc32fast::hash(&src[..len]);
            if expected != actual {
                return Err(CodecError::Checksum { expected, actual });
            }
        }
        Ok(Some((src[self.strip..len].to_vec(), total)))
    }
}

impl Encoder<[u8]> for LengthFieldCodec {
    /// Encodes `item` as the bytes after the length field, with a zero-filled
    /// prefix when the field has an offset (use
    /// [`LengthFieldCodec::encode_with_prefix`] to supply one). With the
    /// default strip (the whole header) `decode(encode(x)) == x`.
    fn encode(&mut self, item: &[u8], dst: &mut Vec<u8>) -> Result<(), CodecError> {
        self.encode_inner(&[], item, dst)
    }
}

impl Encoder<Vec<u8>> for LengthFieldCodec {
    fn encode(&mut self, item: &Vec<u8>, dst: &mut Vec<u8>) -> Result<(), CodecError> {
        self.encode_inner(&[], item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::decode_chunked;
    use proptest::prelude::*;

    fn b() -> LengthFieldBuilder {
        LengthFieldCodec::builder()
    }

    #[test]
    fn builder_validates() {
        assert!(matches!(
            b().length_field_size(3).build(),
            Err(CodecError::InvalidConfig(_))
        ));
        assert!(b().length_field_offset(usize::MAX).build().is_err());
        for s in [1, 2, 4, 8] {
            assert_eq!(b().length_field_size(s).build().unwrap().header_len(), s);
        }
    }

    // The examples from netty's LengthFieldBasedFrameDecoder documentation.
    #[test]
    fn netty_example_strip_none() {
        // 2-byte length, 0x000C "HELLO, WORLD", strip 0.
        let mut c = b()
            .length_field_size(2)
            .initial_bytes_to_strip(0)
            .build()
            .unwrap();
        let wire = b"\x00\x0cHELLO, WORLD";
        assert_eq!(c.decode(wire).unwrap(), Some((wire.to_vec(), 14)));
    }

    #[test]
    fn netty_example_strip_header() {
        let mut c = b().length_field_size(2).build().unwrap();
        assert_eq!(
            c.decode(b"\x00\x0cHELLO, WORLD").unwrap(),
            Some((b"HELLO, WORLD".to_vec(), 14))
        );
    }

    #[test]
    fn netty_example_length_includes_header() {
        // 0x000E = 14 = 2 (field) + 12 (body), adjustment -2.
        let mut c = b()
            .length_field_size(2)
            .length_adjustment(-2)
            .initial_bytes_to_strip(0)
            .build()
            .unwrap();
        let wire = b"\x00\x0eHELLO, WORLD";
        assert_eq!(c.decode(wire).unwrap(), Some((wire.to_vec(), 14)));
    }

    #[test]
    fn netty_example_prefix_before_length() {
        // 2-byte header, then a 4-byte length.
        let mut c = b()
            .length_field_offset(2)
            .length_field_size(4)
            .initial_bytes_to_strip(0)
            .build()
            .unwrap();
        let wire = b"\xca\xfe\x00\x00\x00\x0cHELLO, WORLD";
        assert_eq!(c.decode(wire).unwrap(), Some((wire.to_vec(), 18)));
    }

    #[test]
    fn netty_example_header_after_length() {
        // length 0x0C, then 2-byte header, then body: adjustment +2.
        let mut c = b()
            .length_field_size(4)
            .length_adjustment(2)
            .initial_bytes_to_strip(0)
            .build()
            .unwrap();
        let wire = b"\x00\x00\x00\x0c\xca\xfeHELLO, WORLD";
        assert_eq!(c.decode(wire).unwrap(), Some((wire.to_vec(), 18)));
    }

    #[test]
    fn netty_example_hdr1_len_hdr2() {
        // HDR1 (1) | LEN (2) | HDR2 (1) | body; length = body only,
        // adjustment 1, strip 3 -> HDR2 + body.
        let mut c = b()
            .length_field_offset(1)
            .length_field_size(2)
            .length_adjustment(1)
            .initial_bytes_to_strip(3)
            .build()
            .unwrap();
        let wire = b"\xca\x00\x0c\xfeHELLO, WORLD";
        assert_eq!(
            c.decode(wire).unwrap(),
            Some((b"\xfeHELLO, WORLD".to_vec(), 16))
        );
    }

    #[test]
    fn little_endian_and_widths() {
        let mut c = b().length_field_size(8).little_endian().build().unwrap();
        let mut wire = 3u64.to_le_bytes().to_vec();
        wire.extend_from_slice(b"abcX");
        assert_eq!(c.decode(&wire).unwrap(), Some((b"abc".to_vec(), 11)));
        let mut c = b().length_field_size(1).build().unwrap();
        assert_eq!(c.decode(b"\x00").unwrap(), Some((vec![], 1)));
        let mut c = b().length_field_size(2).little_endian().build().unwrap();
        assert_eq!(c.decode(b"\x01\x00z").unwrap(), Some((b"z".to_vec(), 3)));
    }

    #[test]
    fn incomplete_returns_none() {
        let mut c = b().length_field_size(4).build().unwrap();
        assert_eq!(c.decode(b"").unwrap(), None);
        assert_eq!(c.decode(b"\x00\x00\x00").unwrap(), None);
        assert_eq!(c.decode(b"\x00\x00\x00\x05abcd").unwrap(), None);
    }

    #[test]
    fn oversize_is_reported_from_the_header_alone() {
        let mut c = b()
            .length_field_size(4)
            .max_frame_length(1024)
            .build()
            .unwrap();
        assert_eq!(
            c.decode(b"\x00\x00\x04\x00").unwrap_err(),
            CodecError::FrameTooLarge {
                len: 1028,
                max: 1024
            }
        );
        assert_eq!(c.decode(b"\x00\x00\x03\xfc").unwrap(), None); // 1020 + 4 = max
        let mut c = b()
            .length_field_size(4)
            .max_frame_length(1 << 30)
            .build()
            .unwrap();
        assert!(matches!(
            c.decode(b"\xff\xff\xff\xff"),
            Err(CodecError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn eight_byte_length_with_top_bit_set() {
        let mut c = b()
            .length_field_size(8)
            .max_frame_length(usize::MAX)
            .build()
            .unwrap();
        for v in [1u64 << 63, u64::MAX, (1u64 << 63) + 12345] {
            let err = c.decode(&v.to_be_bytes()).unwrap_err();
            assert!(matches!(err, CodecError::FrameTooLarge { .. }), "{err:?}");
        }
        // With an adjustment that brings it back into range, it's fine.
        let mut c = b()
            .length_field_size(8)
            .length_adjustment(i64::MIN)
            .build()
            .unwrap();
        let mut wire = (1u64 << 63).to_be_bytes().to_vec();
        wire.push(b'!');
        assert_eq!(c.decode(&wire).unwrap(), Some((vec![], 8)));
    }

    #[test]
    fn negative_adjusted_length_is_malformed() {
        let mut c = b()
            .length_field_size(2)
            .length_adjustment(-5)
            .build()
            .unwrap();
        assert!(matches!(
            c.decode(b"\x00\x04"),
            Err(CodecError::Malformed(_))
        ));
        assert_eq!(c.decode(b"\x00\x05").unwrap(), Some((vec![], 2)));
        let mut c = b()
            .length_field_size(8)
            .length_adjustment(i64::MIN)
            .build()
            .unwrap();
        assert!(matches!(c.decode(&[0; 8]), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn strip_beyond_frame_is_malformed() {
        let mut c = b()
            .length_field_size(1)
            .initial_bytes_to_strip(5)
            .build()
            .unwrap();
        assert!(matches!(c.decode(b"\x02ab"), Err(CodecError::Malformed(_))));
        assert_eq!(c.decode(b"\x04abcd").unwrap(), Some((vec![], 5)));
    }

    #[test]
    fn crc_trailer() {
        let mut c = b().length_field_size(2).crc32(true).build().unwrap();
        let mut wire = Vec::new();
        c.encode(&b"hello"[..], &mut wire).unwrap();
        let crc = crc32fast::hash(b"\x00\x05hello");
        assert_eq!(&wire[..7], b"\x00\x05hello");
        assert_eq!(&wire[7..], &crc.to_be_bytes());
        assert_eq!(c.decode(&wire[..10]).unwrap(), None);
        assert_eq!(c.decode(&wire).unwrap(), Some((b"hello".to_vec(), 11)));
        let mut bad = wire.clone();
        bad[3] ^= 1;
        assert_eq!(
            c.decode(&bad).unwrap_err(),
            CodecError::Checksum {
                expected: crc,
                actual: crc32fast::hash(b"\x00\x05hdllo")
            }
        );
        let mut c = b()
            .length_field_size(2)
            .little_endian()
            .crc32(true)
            .build()
            .unwrap();
        let mut wire = Vec::new();
        c.encode(&b"x"[..], &mut wire).unwrap();
        assert_eq!(&wire[3..], &crc32fast::hash(b"\x01\x00x").to_le_bytes());
    }

    #[test]
    fn encoder_writes_header_and_checks_limits() {
        let mut c = b()
            .length_field_size(1)
            .max_frame_length(300)
            .build()
            .unwrap();
        let mut dst = Vec::new();
        c.encode(&b"abc"[..], &mut dst).unwrap();
        assert_eq!(dst, b"\x03abc");
        assert!(matches!(
            c.encode(&vec![0u8; 256][..], &mut dst),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            c.encode(&vec![0u8; 300][..], &mut dst),
            Err(CodecError::FrameTooLarge { len: 301, max: 300 })
        ));
        assert_eq!(dst, b"\x03abc");

        let mut c = b()
            .length_field_offset(2)
            .length_field_size(2)
            .length_adjustment(-4)
            .initial_bytes_to_strip(0)
            .build()
            .unwrap();
        let mut dst = Vec::new();
        c.encode(&b"ab"[..], &mut dst).unwrap();
        assert_eq!(dst, b"\x00\x00\x00\x06ab");
        dst.clear();
        c.encode_with_prefix(b"\x07\x08", b"ab", &mut dst).unwrap();
        assert_eq!(dst, b"\x07\x08\x00\x06ab");
        assert_eq!(c.decode(&dst).unwrap(), Some((dst.clone(), 6)));
        assert!(c.encode_with_prefix(b"\x07", b"ab", &mut dst).is_err());

        // Positive adjustment larger than the body: negative field value.
        let mut c = b()
            .length_field_size(2)
            .length_adjustment(3)
            .build()
            .unwrap();
        assert!(c.encode(&b"ab"[..], &mut Vec::new()).is_err());
        // Strip beyond what the frame would hold.
        let mut c = b()
            .length_field_size(2)
            .initial_bytes_to_strip(5)
            .build()
            .unwrap();
        assert!(c.encode(&b"a"[..], &mut Vec::new()).is_err());
        assert!(c.encode(&b"abc"[..], &mut Vec::new()).is_ok());
    }

    /// Encoder-independent expected item: build the frame by hand.
    fn expected_item(c: &LengthFieldCodec, prefix: &[u8], rest: &[u8]) -> Vec<u8> {
        let mut frame = prefix.to_vec();
        let value = (rest.len() as i128 - i128::from(c.adjustment)) as u64;
        match c.order {
            ByteOrder::BigEndian => frame.extend_from_slice(&value.to_be_bytes()[8 - c.size..]),
            ByteOrder::LittleEndian => frame.extend_from_slice(&value.to_le_bytes()[..c.size]),
        }
        frame.extend_from_slice(rest);
        frame[c.strip..].to_vec()
    }

    fn configs() -> Vec<LengthFieldCodec> {
        vec![
            LengthFieldCodec::new(4, 1 << 16),
            b().length_field_size(1)
                .max_frame_length(200)
                .build()
                .unwrap(),
            b().length_field_size(2)
                .little_endian()
                .crc32(true)
                .build()
                .unwrap(),
            b().length_field_size(8)
                .crc32(true)
                .initial_bytes_to_strip(0)
                .build()
                .unwrap(),
            b().length_field_offset(3)
                .length_field_size(2)
                .length_adjustment(-5)
                .initial_bytes_to_strip(1)
                .build()
                .unwrap(),
            b().length_field_offset(1)
                .length_field_size(4)
                .little_endian()
                .length_adjustment(2)
                .initial_bytes_to_strip(5)
                .crc32(true)
                .build()
                .unwrap(),
        ]
    }

    proptest! {
        #[test]
        fn prop_roundtrip(cfg in 0usize..6,
                          frames in prop::collection::vec(
                              (prop::collection::vec(any::<u8>(), 0..8),
                               prop::collection::vec(any::<u8>(), 0..150)), 0..12),
                          cuts in prop::collection::vec(0usize..2500, 0..30)) {
            let mut c = configs().swap_remove(cfg);
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for (prefix, rest) in frames {
                let prefix: Vec<u8> = prefix.iter().copied().cycle().take(c.offset).collect();
                let prefix = if prefix.len() == c.offset { prefix } else { vec![0; c.offset] };
                if c.encode_with_prefix(&prefix, &rest, &mut wire).is_ok() {
                    want.push(expected_item(&c, &prefix, &rest));
                }
            }
            let (got, tail) = decode_chunked(&mut c, &wire, &cuts).unwrap();
            prop_assert_eq!(got, want);
            prop_assert!(tail.is_empty());
        }

        #[test]
        fn prop_garbage_never_panics(cfg in 0usize..6,
                                     bytes in prop::collection::vec(any::<u8>(), 0..400),
                                     cuts in prop::collection::vec(0usize..400, 0..10)) {
            let mut c = configs().swap_remove(cfg);
            let _ = decode_chunked(&mut c, &bytes, &cuts);
        }

        #[test]
        fn prop_corruption_is_detected_with_crc(rest in prop::collection::vec(any::<u8>(), 1..100),
                                                flip in any::<prop::sample::Index>(),
                                                bit in 0u8..8) {
            let mut c = b().length_field_size(4).max_frame_length(1000).crc32(true).build().unwrap();
            let mut wire = Vec::new();
            c.encode(&rest[..], &mut wire).unwrap();
            let i = flip.index(wire.len());
            wire[i] ^= 1 << bit;
            // Either an error, or (a length-field flip that makes the frame
            // longer) a request for more bytes: never a wrong frame.
            prop_assert!(!matches!(c.decode(&wire), Ok(Some(_))), "corrupted frame accepted");
        }
    }
}
