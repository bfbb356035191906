//! A minimal, incremental HTTP/1.1 response parser for the load generator:
//! status line, headers, and the body's length (Content-Length, chunked, or
//! none for HEAD / 1xx / 204 / 304). The body is skipped, not kept.

use std::fmt;

/// Parsing one response, which may arrive in any number of pieces.
#[derive(Debug, Default)]
pub struct ResponseParser {
    state: State,
    status: u16,
    /// A response said `Connection: close`: the server closes after it.
    close: bool,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Head,
    /// Body bytes still to skip.
    Fixed(u64),
    /// Chunked: expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk: bytes left, then its CRLF.
    ChunkData(u64),
    ChunkCrlf,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
}

/// A response that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadResponse(pub String);

impl fmt::Display for BadResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad HTTP response: {}", self.0)
    }
}

impl std::error::Error for BadResponse {}

const MAX_HEADERS: usize = 64;

impl ResponseParser {
    /// A parser waiting for the start of a response.
    pub fn new() -> ResponseParser {
        ResponseParser::default()
    }

    /// Whether a response parsed so far said `Connection: close`: the
    /// server closes the connection after it, so no request may follow.
    pub fn closing(&self) -> bool {
        self.close
    }

    /// Feed bytes from the front of `buf`. Returns how many bytes were
    /// consumed and, if a response completed, its status. Call again with the
    /// rest (pipelined responses) until it consumes nothing.
    /// `head_request`: the response answers a HEAD (no body whatever the headers say).
    pub fn parse(
        &mut self,
        buf: &[u8],
        head_request: bool,
    ) -> Result<(usize, Option<u16>), BadResponse> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Head => {
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut resp = httparse::Response::new(&mut headers);
                    let n = match resp.parse(&buf[pos..]) {
                        Ok(httparse::Status::Complete(n)) => n,
                        Ok(httparse::Status::Partial) => return Ok((pos, None)),
                        Err(e) => return Err(BadResponse(e.to_string())),
                    };
                    let status = resp.code.unwrap_or(0);
                    let mut length: Option<u64> = None;
                    let mut chunked = false;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let v = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|s| s.trim().parse::<u64>().ok())
                                .ok_or_else(|| BadResponse("invalid Content-Length".into()))?;
                            if length.is_some_and(|l| l != v) {
                                return Err(BadResponse("conflicting Content-Length".into()));
                            }
                            length = Some(v);
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                            if v.split(',').any(|t| t.trim() == "close") {
                                self.close = true;
                            }
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                            chunked = v
                                .split(',')
                                .next_back()
                                .is_some_and(|t| t.trim() == "chunked");
                        }
                    }
                    pos += n;
                    self.status = status;
                    let no_body = head_request
                        || (100..200).contains(&status)
                        || status == 204
                        || status == 304;
                    self.state = if no_body {
                        State::Head
                    } else if chunked {
                        State::ChunkSize
                    } else if let Some(l) = length {
                        State::Fixed(l)
                    } else {
                        // Close-delimited bodies cannot be pipelined; a load
                        // generator treats them as broken.
                        return Err(BadResponse("response without a length".into()));
                    };
                    if let State::Head | State::Fixed(0) = self.state {
                        self.state = State::Head;
                        return Ok((pos, Some(status)));
                    }
                }
                State::Fixed(left) => {
                    let take = left.min((buf.len() - pos) as u64);
                    pos += take as usize;
                    if take == left {
                        self.state = State::Head;
                        return Ok((pos, Some(self.status)));
                    }
                    self.state = State::Fixed(left - take);
                    return Ok((pos, None));
                }
                State::ChunkSize => {
                    let Some(line) = line(&buf[pos..])? else {
                        return Ok((pos, None));
                    };
                    let hex = line.split(|&b| b == b';').next().unwrap_or(&[]);
                    let hex = std::str::from_utf8(hex)
                        .map_err(|_| BadResponse("chunk size".into()))?
                        .trim();
                    let size = u64::from_str_radix(hex, 16)
                        .map_err(|_| BadResponse(format!("chunk size {hex:?}")))?;
                    pos += line.len() + 2;
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(left) => {
                    let take = left.min((buf.len() - pos) as u64);
                    pos += take as usize;
                    if take < left {
                        self.state = State::ChunkData(left - take);
                        return Ok((pos, None));
                    }
                    self.state = State::ChunkCrlf;
                }
                State::ChunkCrlf => {
                    if buf.len() - pos < 2 {
                        return Ok((pos, None));
                    }
                    if &buf[pos..pos + 2] != b"\r\n" {
                        return Err(BadResponse("chunk not followed by CRLF".into()));
                    }
                    pos += 2;
                    self.state = State::ChunkSize;
                }
                State::Trailer => {
                    let Some(line) = line(&buf[pos..])? else {
                        return Ok((pos, None));
                    };
                    pos += line.len() + 2;
                    if line.is_empty() {
                        self.state = State::Head;
                        return Ok((pos, Some(self.status)));
                    }
                }
            }
        }
    }
}

/// A CRLF-terminated line (without the CRLF), if complete.
fn line(buf: &[u8]) -> Result<Option<&[u8]>, BadResponse> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(p) => Ok(Some(&buf[..p])),
        None if buf.len() > 4096 => Err(BadResponse("line too long".into())),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every complete status in `input`, fed in pieces of `step` bytes.
    fn statuses(input: &[u8], step: usize) -> Result<Vec<u16>, BadResponse> {
        let mut p = ResponseParser::new();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                let (n, status) = p.parse(&buf, false)?;
                buf.drain(..n);
                if let Some(s) = status {
                    out.push(s);
                }
                if n == 0 || buf.is_empty() {
                    break;
                }
            }
        }
        assert!(
            buf.is_empty(),
            "left over: {:?}",
            String::from_utf8_lossy(&buf)
        );
        Ok(out)
    }

    const CL: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    const CHUNKED: &[u8] =
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n";
    const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
    const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

    #[test]
    fn table() {
        let cases: &[(&str, &[u8], Vec<u16>)] = &[
            ("content-length", CL, vec![200]),
            ("chunked with extension and trailer", CHUNKED, vec![201]),
            ("empty body", NOT_FOUND, vec![404]),
            ("204 has no body", NO_CONTENT, vec![204]),
        ];
        for (name, input, want) in cases {
            for step in [1, 2, 3, 7, input.len()] {
                assert_eq!(&statuses(input, step).unwrap(), want, "{name}, step {step}");
            }
        }
    }

    #[test]
    fn pipelined_mix_split_everywhere() {
        let all: Vec<u8> = [CL, CHUNKED, NOT_FOUND, NO_CONTENT, CL].concat();
        for step in 1..=all.len() {
            assert_eq!(
                statuses(&all, step).unwrap(),
                vec![200, 201, 404, 204, 200],
                "step {step}"
            );
        }
    }

    #[test]
    fn head_response_has_no_body() {
        let mut p = ResponseParser::new();
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        assert_eq!(p.parse(r, true).unwrap(), (r.len(), Some(200)));
    }

    #[test]
    fn broken_responses() {
        for bad in [
            &b"HTTX/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        ] {
            assert!(
                statuses(bad, bad.len()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
