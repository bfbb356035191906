//! The KCP segment header: 24 bytes, little-endian, as ikcp.c puts it on
//! the wire.
//!
//! ```text
//!  0        4     5     6        8        12       16       20       24
//!  | conv   | cmd | frg | wnd    | ts     | sn     | una    | len    | data (len bytes)
//! ```
//! A datagram holds any number of segments back to back.

/// Bytes of one segment header.
pub const OVERHEAD: usize = 24;

/// What a segment carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// Data (81).
    Push,
    /// Acknowledges one segment (82).
    Ack,
    /// Asks for the peer's window (83).
    WindowAsk,
    /// Tells our window (84).
    WindowTell,
}

impl Cmd {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Cmd::Push => 81,
            Cmd::Ack => 82,
            Cmd::WindowAsk => 83,
            Cmd::WindowTell => 84,
        }
    }

    /// The command for a wire value, or `None` for an unknown one.
    pub fn from_u8(v: u8) -> Option<Cmd> {
        match v {
            81 => Some(Cmd::Push),
            82 => Some(Cmd::Ack),
            83 => Some(Cmd::WindowAsk),
            84 => Some(Cmd::WindowTell),
            _ => None,
        }
    }
}

/// One decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Conversation id: both ends must agree.
    pub conv: u32,
    /// The command.
    pub cmd: Cmd,
    /// Fragments of this message still to come (0 = last or only one).
    pub frg: u8,
    /// The sender's free receive window, in segments.
    pub wnd: u16,
    /// The sender's clock when sent (echoed back in ACKs for the RTT).
    pub ts: u32,
    /// Sequence number.
    pub sn: u32,
    /// Every segment before this one has been received by the sender.
    pub una: u32,
    /// Bytes of data after the header.
    pub len: u32,
}

/// Why a datagram's segments stopped being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Fewer than 24 bytes where a header should be.
    Truncated,
    /// `len` says more data than the datagram has left.
    BadLength,
    /// A cmd that is none of 81..=84.
    UnknownCmd(u8),
}

impl Header {
    /// The conversation id of a datagram, if it is long enough to hold a
    /// header.
    pub fn conv_of(buf: &[u8]) -> Option<u32> {
        (buf.len() >= OVERHEAD).then(|| u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]))
    }

    /// Decode the header at the start of `buf` and return it with its data.
    pub fn decode(buf: &[u8]) -> Result<(Header, &[u8]), Malformed> {
        if buf.len() < OVERHEAD {
            return Err(Malformed::Truncated);
        }
        let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let cmd = Cmd::from_u8(buf[4]).ok_or(Malformed::UnknownCmd(buf[4]))?;
        let h = Header {
            conv: u32_at(0),
            cmd,
            frg: buf[5],
            wnd: u16::from_le_bytes([buf[6], buf[7]]),
            ts: u32_at(8),
            sn: u32_at(12),
            una: u32_at(16),
            len: u32_at(20),
        };
        let rest = &buf[OVERHEAD..];
        if h.len as usize > rest.len() {
            return Err(Malformed::BadLength);
        }
        Ok((h, &rest[..h.len as usize]))
    }

    /// Append the 24 header bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.conv.to_le_bytes());
        out.push(self.cmd.to_u8());
        out.push(self.frg);
        out.extend_from_slice(&self.wnd.to_le_bytes());
        out.extend_from_slice(&self.ts.to_le_bytes());
        out.extend_from_slice(&self.sn.to_le_bytes());
        out.extend_from_slice(&self.una.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_in_little_endian() {
        let h = Header {
            conv: 0x0403_0201,
            cmd: Cmd::Push,
            frg: 3,
            wnd: 0x0605,
            ts: 7,
            sn: 8,
            una: 9,
            len: 2,
        };
        let mut b = Vec::new();
        h.encode(&mut b);
        b.extend_from_slice(b"hi");
        assert_eq!(&b[..8], &[1, 2, 3, 4, 81, 3, 5, 6]);
        assert_eq!(Header::decode(&b), Ok((h, &b"hi"[..])));
    }

    #[test]
    fn malformed_headers_are_named() {
        let mut b = Vec::new();
        Header {
            conv: 1,
            cmd: Cmd::Ack,
            frg: 0,
            wnd: 0,
            ts: 0,
            sn: 0,
            una: 0,
            len: 10,
        }
        .encode(&mut b);
        assert_eq!(Header::decode(&b[..23]), Err(Malformed::Truncated));
        assert_eq!(Header::decode(&b), Err(Malformed::BadLength));
        b[4] = 99;
        assert_eq!(Header::decode(&b), Err(Malformed::UnknownCmd(99)));
    }
}
