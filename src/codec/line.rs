//! Delimiter-terminated lines.
//!
//! Each frame is `line ++ delimiter`; the item is `line` (delimiter removed).
//! A line longer than the maximum is an error as soon as enough bytes have
//! arrived to know there is no delimiter within reach, so a peer that never
//! sends a delimiter cannot make the connection buffer forever.

use super::{CodecError, Decoder, Encoder};

/// Splits a byte stream into lines ended by a configurable delimiter
/// (`b"\n"`, `b"\r\n"`, `b"\0"`, ...).
#[derive(Debug, Clone)]
pub struct LineCodec {
    delim: Box<[u8]>,
    max_len: usize,
    /// Positions `< scanned` of the current input are known not to start a
    /// delimiter (progress kept between calls that return `Ok(None)`).
    scanned: usize,
}

impl LineCodec {
    /// Lines ended by `delim`, at most `max_len` bytes each (delimiter not
    /// counted).
    ///
    /// # Panics
    /// If `delim` is empty.
    pub fn new(delim: &[u8], max_len: usize) -> LineCodec {
        assert!(!delim.is_empty(), "LineCodec: empty delimiter");
        LineCodec {
            delim: delim.into(),
            max_len,
            scanned: 0,
        }
    }

    /// Lines ended by `\n`.
    pub fn lf(max_len: usize) -> LineCodec {
        LineCodec::new(b"\n", max_len)
    }

    /// Lines ended by `\r\n`.
    pub fn crlf(max_len: usize) -> LineCodec {
        LineCodec::new(b"\r\n", max_len)
    }

    /// The byte sequence that ends each line; removed from decoded items
    /// and appended by `encode`.
    pub fn delimiter(&self) -> &[u8] {
        &self.delim
    }

    /// Longest accepted line in bytes, delimiter not counted; a longer line
    /// fails with [`CodecError::FrameTooLarge`].
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Forget progress on a partly received line (call when the input buffer
    /// is discarded).
    pub fn reset(&mut self) {
        self.scanned = 0;
    }
}

/// Lines ended by `\n`, at most 64 KiB each (what a [`super::framed`]
/// handler gets when it names `LineCodec` as its codec).
impl Default for LineCodec {
    fn default() -> Self {
        LineCodec::lf(64 * 1024)
    }
}

/// First position `>= from` where `needle` starts in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        let p = i + off;
        if &hay[p + 1..p + needle.len()] == rest {
            return Some(p);
        }
        i = p + 1;
    }
    None
}

impl Decoder for LineCodec {
    type Item = Vec<u8>;

    fn decode(&mut self, src: &[u8]) -> Result<Option<(Vec<u8>, usize)>, CodecError> {
        let d = self.delim.len();
        // A delimiter starting beyond `max_len` means the line is too long, so
        // never look further than `max_len + d` bytes.
        let window = &src[..src.len().min(self.max_len.saturating_add(d))];
        if self.scanned > window.len() {
            // The caller handed us less than before: it did not keep its
            // buffer. Start over rather than skip unseen bytes.
            self.scanned = 0;
        }
        match find(window, &self.delim, self.scanned) {
            Some(p) => {
                self.scanned = 0;
                Ok(Some((src[..p].to_vec(), p + d)))
            }
            None if src.len() >= self.max_len.saturating_add(d) => {
                self.scanned = 0;
                Err(CodecError::FrameTooLarge {
                    len: src.len() as u64,
                    max: self.max_len,
                })
            }
            None => {
                self.scanned = (window.len() + 1).saturating_sub(d);
                Ok(None)
            }
        }
    }
}

impl Encoder<[u8]> for LineCodec {
    /// Writes `item ++ delimiter`. Fails (writing nothing) if the line is
    /// longer than the maximum or would not decode back to itself because it
    /// contains the delimiter.
    fn encode(&mut self, item: &[u8], dst: &mut Vec<u8>) -> Result<(), CodecError> {
        if item.len() > self.max_len {
            return Err(CodecError::FrameTooLarge {
                len: item.len() as u64,
                max: self.max_len,
            });
        }
        let start = dst.len();
        dst.reserve(item.len() + self.delim.len());
        dst.extend_from_slice(item);
        dst.extend_from_slice(&self.delim);
        // The first delimiter must be the one we appended (this also catches
        // a line whose tail overlaps with the delimiter's head, e.g. "xa"
        // with delimiter "aa").
        if find(&dst[start..], &self.delim, 0) != Some(item.len()) {
            dst.truncate(start);
            return Err(CodecError::Malformed(
                "line contains the delimiter".to_string(),
            ));
        }
        Ok(())
    }
}

impl Encoder<Vec<u8>> for LineCodec {
    fn encode(&mut self, item: &Vec<u8>, dst: &mut Vec<u8>) -> Result<(), CodecError> {
        Encoder::<[u8]>::encode(self, item.as_slice(), dst)
    }
}

impl Encoder<str> for LineCodec {
    fn encode(&mut self, item: &str, dst: &mut Vec<u8>) -> Result<(), CodecError> {
        Encoder::<[u8]>::encode(self, item.as_bytes(), dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::decode_chunked;
    use proptest::prelude::*;

    fn enc(c: &mut LineCodec, line: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut v = Vec::new();
        Encoder::<[u8]>::encode(c, line, &mut v)?;
        Ok(v)
    }

    #[test]
    fn find_works() {
        assert_eq!(find(b"abc\r\n", b"\r\n", 0), Some(3));
        assert_eq!(find(b"abc\r", b"\r\n", 0), None);
        assert_eq!(find(b"\r\r\n", b"\r\n", 0), Some(1));
        assert_eq!(find(b"aab", b"ab", 0), Some(1));
        assert_eq!(find(b"abab", b"ab", 1), Some(2));
        assert_eq!(find(b"", b"\n", 0), None);
        assert_eq!(find(b"\n", b"\n", 5), None);
        assert_eq!(find(b"x", b"", 0), None);
    }

    #[test]
    fn decodes_lines() {
        let mut c = LineCodec::crlf(16);
        assert_eq!(c.decode(b"").unwrap(), None);
        assert_eq!(c.decode(b"abc").unwrap(), None);
        assert_eq!(c.decode(b"abc\r").unwrap(), None);
        assert_eq!(c.decode(b"abc\r\n").unwrap(), Some((b"abc".to_vec(), 5)));
        assert_eq!(c.decode(b"\r\nx").unwrap(), Some((vec![], 2)));
        assert_eq!(c.decode(b"a\nb\r\n").unwrap(), Some((b"a\nb".to_vec(), 5)));
        let mut c = LineCodec::lf(16);
        assert_eq!(c.decode(b"a\r\nb\n").unwrap(), Some((b"a\r".to_vec(), 3)));
    }

    #[test]
    fn delimiter_split_across_calls() {
        let mut c = LineCodec::crlf(16);
        assert_eq!(c.decode(b"hello\r").unwrap(), None);
        assert_eq!(
            c.decode(b"hello\r\n").unwrap(),
            Some((b"hello".to_vec(), 7))
        );
        let mut c = LineCodec::new(b"END", 16);
        assert_eq!(c.decode(b"xyzE").unwrap(), None);
        assert_eq!(c.decode(b"xyzEN").unwrap(), None);
        assert_eq!(c.decode(b"xyzENEND").unwrap(), Some((b"xyzEN".to_vec(), 8)));
    }

    #[test]
    fn exact_max_is_accepted() {
        let mut c = LineCodec::crlf(4);
        assert_eq!(c.decode(b"abcd\r").unwrap(), None);
        assert_eq!(c.decode(b"abcd\r\n").unwrap(), Some((b"abcd".to_vec(), 6)));
        assert!(c.decode(b"abcde\r\n").is_err());
    }

    #[test]
    fn too_long_without_delimiter_fails_early() {
        let mut c = LineCodec::lf(8);
        assert_eq!(c.decode(&[b'x'; 8]).unwrap(), None);
        assert_eq!(
            c.decode(&[b'x'; 9]).unwrap_err(),
            CodecError::FrameTooLarge { len: 9, max: 8 }
        );
        let mut c = LineCodec::crlf(8);
        // 8 bytes + "\r" could still be a valid line.
        assert_eq!(c.decode(b"xxxxxxxx\r").unwrap(), None);
        assert!(matches!(
            c.decode(b"xxxxxxxxx\r"),
            Err(CodecError::FrameTooLarge { .. })
        ));
        // A huge buffer is rejected without scanning all of it.
        let mut c = LineCodec::lf(1024);
        let big = vec![b'y'; 10 << 20];
        assert!(matches!(
            c.decode(&big),
            Err(CodecError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn delimiter_far_beyond_max_is_an_error() {
        let mut c = LineCodec::lf(4);
        let mut v = vec![b'a'; 100];
        v.push(b'\n');
        assert!(matches!(
            c.decode(&v),
            Err(CodecError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn resumes_scanning_and_resets_on_shrunk_input() {
        let mut c = LineCodec::lf(1 << 20);
        let mut buf = Vec::new();
        for _ in 0..1000 {
            buf.extend_from_slice(&[b'z'; 100]);
            assert_eq!(c.decode(&buf).unwrap(), None);
        }
        buf.push(b'\n');
        let (line, n) = c.decode(&buf).unwrap().unwrap();
        assert_eq!(line.len(), 100_000);
        assert_eq!(n, 100_001);
        // Misuse: a different, shorter buffer still decodes correctly.
        assert_eq!(c.decode(b"zzzz").unwrap(), None);
        assert_eq!(c.decode(b"a\n").unwrap(), Some((b"a".to_vec(), 2)));
    }

    #[test]
    fn encoder_validates() {
        let mut c = LineCodec::crlf(5);
        assert_eq!(enc(&mut c, b"abc").unwrap(), b"abc\r\n");
        assert_eq!(enc(&mut c, b"").unwrap(), b"\r\n");
        assert_eq!(enc(&mut c, b"a\rb").unwrap(), b"a\rb\r\n");
        assert_eq!(enc(&mut c, b"ab\r").unwrap(), b"ab\r\r\n");
        assert!(matches!(
            enc(&mut c, b"a\r\nb"),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            enc(&mut c, b"abcdef"),
            Err(CodecError::FrameTooLarge { len: 6, max: 5 })
        ));
        let mut c = LineCodec::new(b"aa", 10);
        assert!(enc(&mut c, b"xa").is_err());
        assert!(enc(&mut c, b"ax").is_ok());
        let mut dst = b"keep".to_vec();
        assert!(Encoder::<[u8]>::encode(&mut c, b"xa", &mut dst).is_err());
        assert_eq!(dst, b"keep");
        Encoder::<str>::encode(&mut c, "hi", &mut dst).unwrap();
        assert_eq!(dst, b"keephiaa");
    }

    fn roundtrip(delim: &[u8], max: usize, lines: Vec<Vec<u8>>, cuts: Vec<usize>) {
        let mut c = LineCodec::new(delim, max);
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        for l in lines {
            if Encoder::<[u8]>::encode(&mut c, &l, &mut wire).is_ok() {
                sent.push(l);
            }
        }
        let (got, rest) = decode_chunked(&mut c, &wire, &cuts).unwrap();
        assert_eq!(got, sent);
        assert!(rest.is_empty());
    }

    fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                Just(b'a'),
                Just(b'b'),
                Just(b'\r'),
                Just(b'\n'),
                any::<u8>()
            ],
            0..40,
        )
    }

    proptest! {
        #[test]
        fn prop_roundtrip_crlf(lines in prop::collection::vec(line_bytes(), 0..20),
                               cuts in prop::collection::vec(0usize..800, 0..30)) {
            roundtrip(b"\r\n", 32, lines, cuts);
        }

        #[test]
        fn prop_roundtrip_lf(lines in prop::collection::vec(line_bytes(), 0..20),
                             cuts in prop::collection::vec(0usize..800, 0..30)) {
            roundtrip(b"\n", 64, lines, cuts);
        }

        #[test]
        fn prop_roundtrip_overlapping_delim(lines in prop::collection::vec(line_bytes(), 0..20),
                                            cuts in prop::collection::vec(0usize..800, 0..30)) {
            roundtrip(b"aba", 64, lines, cuts);
        }

        #[test]
        fn prop_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300),
                                     cuts in prop::collection::vec(0usize..300, 0..10)) {
            let mut c = LineCodec::crlf(16);
            if let Ok((items, rest)) = decode_chunked(&mut c, &bytes, &cuts) {
                prop_assert!(items.iter().all(|l| l.len() <= 16));
                prop_assert!(rest.len() < 18);
            }
        }
    }
}
