//! The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's
//! `proxy-protocol.txt` specifies them: a load balancer in front of the
//! server starts each connection with a header naming the original client,
//! so the server can report it instead of the balancer's address.
//!
//! This file is the pure part: [`parse`] a header from the bytes received
//! so far, and the [`ProxyProtocol`] policy a server is built with (which
//! source networks may send one, how long and how large it may be). The
//! connections' side (reading the header before anything else, then
//! opening the connection with the client's address) is
//! `net/conn/preamble.rs`.
//!
//! ```text
//!  v1: "PROXY " ("TCP4" | "TCP6" | "UNKNOWN") [SP src SP dst SP sport SP dport] CRLF   <= 107 bytes
//!  v2: sig(12) = \r\n\r\n\0\r\nQUIT\n | ver<<4|cmd (1) | family<<4|proto (1) | len (2, BE) | len bytes
//!      family AF_INET:  src ip(4) dst ip(4) sport(2) dport(2), then TLVs (ignored)
//!      family AF_INET6: src ip(16) dst ip(16) sport(2) dport(2), then TLVs (ignored)
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// The longest version 1 header, CRLF included (the spec's bound).
pub const V1_MAX: usize = 107;

/// The version 2 signature.
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8; 6] = b"PROXY ";

/// The default cap on a header's size: a v2 header with its addresses and
/// a few TLVs (HAProxy sends none unless configured to); a larger one
/// closes the connection.
pub const DEFAULT_MAX_HEADER: usize = 512;

/// The default time a trusted peer has to send its whole header.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a complete header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The balancer relayed a connection from `source` (the client) to
    /// `destination` (the address the client connected to).
    Proxy {
        /// The original client.
        source: SocketAddr,
        /// The address the client connected to (the balancer's).
        destination: SocketAddr,
    },
    /// v2 `LOCAL`, v1 `UNKNOWN`, or an address family that is not IP (a
    /// Unix socket, unspecified): the connection's own addresses stand.
    Local,
}

/// Why a header was refused: the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The bytes start with neither signature.
    #[error("no PROXY protocol header")]
    Missing,
    /// A version 1 header that breaks the grammar.
    #[error("malformed PROXY v1 header: {0}")]
    V1(&'static str),
    /// A version 2 header that breaks the format.
    #[error("malformed PROXY v2 header: {0}")]
    V2(&'static str),
    /// Longer than the cap (or v1's 107 bytes) and not complete.
    #[error("PROXY header longer than {0} bytes")]
    TooLong(usize),
}

/// Parse a header at the start of `buf` (everything received so far).
/// `Ok(None)`: not complete yet, read more; `Ok(Some((n, header)))`: the
/// header is the first `n` bytes (what follows is the application's). A
/// header over `max` bytes is refused.
pub fn parse(buf: &[u8], max: usize) -> Result<Option<(usize, ProxyHeader)>, ProxyError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    match first {
        b'P' => {
            prefix_of(buf, V1_PREFIX)?;
            parse_v1(buf, max.min(V1_MAX))
        }
        b'\r' => {
            prefix_of(buf, V2_SIG)?;
            parse_v2(buf, max)
        }
        _ => Err(ProxyError::Missing),
    }
}

/// `buf` and `sig` agree on their common length.
fn prefix_of(buf: &[u8], sig: &[u8]) -> Result<(), ProxyError> {
    let n = buf.len().min(sig.len());
    if buf[..n] == sig[..n] {
        Ok(())
    } else {
        Err(ProxyError::Missing)
    }
}

fn parse_v1(buf: &[u8], max: usize) -> Result<Option<(usize, ProxyHeader)>, ProxyError> {
    let window = &buf[..buf.len().min(max)];
    // Only printable ASCII and spaces before the CR; a LF must follow it.
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if let Some(&b) = window.iter().find(|&&b| !(b' '..=b'~').contains(&b)) {
            return Err(ProxyError::V1(if b == b'\n' {
                "LF without CR"
            } else {
                "a byte that is not printable ASCII"
            }));
        }
        return if window.len() >= max {
            Err(ProxyError::TooLong(max))
        } else {
            Ok(None)
        };
    };
    if window[..cr].iter().any(|b| !(b' '..=b'~').contains(b)) {
        return Err(ProxyError::V1("a byte that is not printable ASCII"));
    }
    match window.get(cr + 1) {
        None if cr + 1 >= max => return Err(ProxyError::TooLong(max)),
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError::V1("CR without LF")),
    }
    // Printable ASCII only, checked above.
    let line = std::str::from_utf8(&window[V1_PREFIX.len()..cr])
        .map_err(|_| ProxyError::V1("not ASCII"))?;
    let header = v1_fields(line)?;
    Ok(Some((cr + 2, header)))
}

fn v1_fields(line: &str) -> Result<ProxyHeader, ProxyError> {
    let mut f = line.split(' ');
    let proto = f.next().unwrap_or("");
    if proto == "UNKNOWN" {
        // The rest is to be ignored (the sender may add anything).
        return Ok(ProxyHeader::Local);
    }
    let fields: Vec<&str> = f.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::V1("expected 4 fields after the protocol"));
    };
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            v1_ip::<Ipv4Addr>(src)?.into(),
            v1_ip::<Ipv4Addr>(dst)?.into(),
        ),
        "TCP6" => (
            v1_ip::<Ipv6Addr>(src)?.into(),
            v1_ip::<Ipv6Addr>(dst)?.into(),
        ),
        _ => return Err(ProxyError::V1("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(ProxyHeader::Proxy {
        source: SocketAddr::new(src, v1_port(sport)?),
        destination: SocketAddr::new(dst, v1_port(dport)?),
    })
}

fn v1_ip<T: FromStr>(s: &str) -> Result<T, ProxyError> {
    s.parse().map_err(|_| ProxyError::V1("bad address"))
}

/// A port: 1 to 5 digits, no sign, no leading zero, at most 65535.
fn v1_port(s: &str) -> Result<u16, ProxyError> {
    let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return Err(ProxyError::V1("bad port"));
    }
    s.parse().map_err(|_| ProxyError::V1("bad port"))
}

fn parse_v2(buf: &[u8], max: usize) -> Result<Option<(usize, ProxyHeader)>, ProxyError> {
    if buf.len() < 16 {
        // The version and command are checked as soon as they arrive.
        if let Some(&vc) = buf.get(12) {
            check_version_command(vc)?;
        }
        return Ok(None);
    }
    let command = check_version_command(buf[12])?;
    let family = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + len;
    if total > max {
        return Err(ProxyError::TooLong(max));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[16..total];
    if command == 0 {
        // LOCAL: the balancer's own connection (a health check); the
        // family and addresses are to be ignored.
        return Ok(Some((total, ProxyHeader::Local)));
    }
    let header = match family >> 4 {
        // AF_UNSPEC: keep the real addresses.
        0 => ProxyHeader::Local,
        1 => {
            let a = body
                .get(..12)
                .ok_or(ProxyError::V2("IPv4 addresses longer than the header"))?;
            let ip = |i: usize| IpAddr::from([a[i], a[i + 1], a[i + 2], a[i + 3]]);
            ProxyHeader::Proxy {
                source: SocketAddr::new(ip(0), u16::from_be_bytes([a[8], a[9]])),
                destination: SocketAddr::new(ip(4), u16::from_be_bytes([a[10], a[11]])),
            }
        }
        2 => {
            let a = body
                .get(..36)
                .ok_or(ProxyError::V2("IPv6 addresses longer than the header"))?;
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i..i + 16]);
                IpAddr::from(o)
            };
            ProxyHeader::Proxy {
                source: SocketAddr::new(ip(0), u16::from_be_bytes([a[32], a[33]])),
                destination: SocketAddr::new(ip(16), u16::from_be_bytes([a[34], a[35]])),
            }
        }
        // AF_UNIX: no IP address to report; the real one stands.
        3 if body.len() >= 216 => ProxyHeader::Local,
        3 => return Err(ProxyError::V2("Unix addresses longer than the header")),
        _ => return Err(ProxyError::V2("unknown address family")),
    };
    match family & 0x0f {
        0..=2 => Ok(Some((total, header))),
        _ => Err(ProxyError::V2("unknown transport protocol")),
    }
}

/// Version 2 and a known command: 0 LOCAL, 1 PROXY.
fn check_version_command(vc: u8) -> Result<u8, ProxyError> {
    if vc >> 4 != 2 {
        return Err(ProxyError::V2("version is not 2"));
    }
    match vc & 0x0f {
        c @ (0 | 1) => Ok(c),
        _ => Err(ProxyError::V2("unknown command")),
    }
}

/// An IP network, `ADDR/PREFIX` (a bare address is one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the network (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address: a dual-stack listener reports IPv4 peers so).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        // A prefix compare; not worth a crate.
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().map_err(|_| format!("bad network {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("bad prefix length in {s:?}"))?
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A server's PROXY protocol settings: every connection from a trusted
/// network must start with a header (v1 or v2); a connection from anywhere
/// else is closed at once, since the spec forbids guessing whether a
/// header is present (so a direct client could not pose as another).
#[derive(Clone, Debug)]
pub struct ProxyProtocol {
    trusted: Vec<Cidr>,
    timeout: Duration,
    max_header: usize,
}

impl ProxyProtocol {
    /// Accept headers from the networks in `trusted`.
    pub fn new(trusted: impl IntoIterator<Item = Cidr>) -> ProxyProtocol {
        ProxyProtocol {
            trusted: trusted.into_iter().collect(),
            timeout: DEFAULT_TIMEOUT,
            max_header: DEFAULT_MAX_HEADER,
        }
    }

    /// How long a peer has to send its whole header ([`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The largest header accepted ([`DEFAULT_MAX_HEADER`]; v1 headers
    /// are also held to 107 bytes).
    pub fn max_header(mut self, bytes: usize) -> Self {
        self.max_header = bytes.max(16);
        self
    }

    /// Whether a connection from `ip` may (and must) send a header.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    pub(crate) fn timeout_value(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn max_header_value(&self) -> usize {
        self.max_header
    }

    /// The networks trusted, for a banner.
    pub fn describe(&self) -> String {
        let nets: Vec<String> = self.trusted.iter().map(|n| n.to_string()).collect();
        format!("PROXY protocol from {}", nets.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn v2_tcp4() -> Vec<u8> {
        let mut body = vec![203, 0, 113, 7, 10, 0, 0, 1];
        body.extend_from_slice(&51000u16.to_be_bytes());
        body.extend_from_slice(&80u16.to_be_bytes());
        v2(1, 0x11, &body)
    }

    fn proxied(src: &str, dst: &str) -> ProxyHeader {
        ProxyHeader::Proxy {
            source: src.parse().unwrap(),
            destination: dst.parse().unwrap(),
        }
    }

    #[test]
    fn good_headers() {
        let mut v2_6 = Vec::new();
        v2_6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v2_6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        v2_6.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
        v2_6.extend_from_slice(&[0x04, 0x00, 0x01, b'x']); // a TLV, skipped
        let cases: Vec<(Vec<u8>, ProxyHeader)> = vec![
            (
                b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n".to_vec(),
                proxied("203.0.113.7:51000", "10.0.0.1:80"),
            ),
            (
                b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n".to_vec(),
                proxied("[2001:db8::1]:65535", "[::1]:0"),
            ),
            (b"PROXY UNKNOWN\r\n".to_vec(), ProxyHeader::Local),
            (
                b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".to_vec(),
                ProxyHeader::Local,
            ),
            (v2_tcp4(), proxied("203.0.113.7:51000", "10.0.0.1:80")),
            (
                v2(1, 0x21, &v2_6),
                proxied("[2001:db8::1]:12345", "[2001:db8::2]:443"),
            ),
            (v2(0, 0x00, &[]), ProxyHeader::Local),
            (v2(0, 0x11, &[1, 2, 3]), ProxyHeader::Local),
            (v2(1, 0x00, &[]), ProxyHeader::Local),
            (v2(1, 0x31, &[0; 216]), ProxyHeader::Local),
        ];
        for (bytes, want) in cases {
            let mut with_data = bytes.clone();
            with_data.extend_from_slice(b"GET / HTTP/1.1\r\n");
            assert_eq!(
                parse(&with_data, DEFAULT_MAX_HEADER),
                Ok(Some((bytes.len(), want))),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn bad_headers() {
        let long_v1 = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
        let cases: Vec<(Vec<u8>, ProxyError)> = vec![
            (b"GET / HTTP/1.1\r\n".to_vec(), ProxyError::Missing),
            (b"PROXZ TCP4".to_vec(), ProxyError::Missing),
            (b"\r\n\r\n\0\r\nQUIX\n".to_vec(), ProxyError::Missing),
            (
                b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n".to_vec(),
                ProxyError::V1("protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n".to_vec(),
                ProxyError::V1("expected 4 fields after the protocol"),
            ),
            (
                b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n".to_vec(),
                ProxyError::V1("expected 4 fields after the protocol"),
            ),
            (
                b"PROXY TCP4 1.2.3.400 1.2.3.4 1 2\r\n".to_vec(),
                ProxyError::V1("bad address"),
            ),
            (
                b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n".to_vec(),
                ProxyError::V1("bad address"),
            ),
            (
                b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n".to_vec(),
                ProxyError::V1("bad address"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n".to_vec(),
                ProxyError::V1("bad port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n".to_vec(),
                ProxyError::V1("bad port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n".to_vec(),
                ProxyError::V1("bad port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n".to_vec(),
                ProxyError::V1("LF without CR"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX".to_vec(),
                ProxyError::V1("CR without LF"),
            ),
            (
                b"PROXY TCP4 1.2.3.4\x001.2.3.4 1 2\r\n".to_vec(),
                ProxyError::V1("a byte that is not printable ASCII"),
            ),
            (long_v1.into_bytes(), ProxyError::TooLong(V1_MAX)),
            (v2(2, 0x11, &[]), ProxyError::V2("unknown command")),
            (
                {
                    let mut h = v2_tcp4();
                    h[12] = 0x11;
                    h
                },
                ProxyError::V2("version is not 2"),
            ),
            (
                v2(1, 0x11, &[0; 11]),
                ProxyError::V2("IPv4 addresses longer than the header"),
            ),
            (
                v2(1, 0x21, &[0; 35]),
                ProxyError::V2("IPv6 addresses longer than the header"),
            ),
            (
                v2(1, 0x31, &[0; 215]),
                ProxyError::V2("Unix addresses longer than the header"),
            ),
            (
                v2(1, 0x41, &[0; 12]),
                ProxyError::V2("unknown address family"),
            ),
            (
                v2(1, 0x13, &[0; 12]),
                ProxyError::V2("unknown transport protocol"),
            ),
            (
                v2(1, 0x11, &[0; 600]),
                ProxyError::TooLong(DEFAULT_MAX_HEADER),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                parse(&bytes, DEFAULT_MAX_HEADER),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn an_oversized_v2_length_is_refused_before_its_bytes_arrive() {
        let h = v2(1, 0x11, &[0; 600]);
        assert_eq!(
            parse(&h[..16], DEFAULT_MAX_HEADER),
            Err(ProxyError::TooLong(DEFAULT_MAX_HEADER))
        );
    }

    #[test]
    fn a_v1_header_without_its_end_is_refused_at_107_bytes() {
        let mut h = b"PROXY TCP4 ".to_vec();
        h.resize(106, b'1');
        assert_eq!(parse(&h, DEFAULT_MAX_HEADER), Ok(None));
        h.push(b'1');
        assert_eq!(
            parse(&h, DEFAULT_MAX_HEADER),
            Err(ProxyError::TooLong(V1_MAX))
        );
    }

    #[test]
    fn networks() {
        let n: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(n.contains("127.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!n.contains("128.0.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let host: Cidr = "::1".parse().unwrap();
        assert!(host.contains("::1".parse().unwrap()));
        assert!(!host.contains("::2".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
    }

    proptest! {
        /// Any split of a header followed by application bytes: every
        /// prefix shorter than the header asks for more, and the first
        /// prefix holding all of it gives the same header and length.
        #[test]
        fn a_header_parses_the_same_at_every_split(which in 0usize..4, tail in proptest::collection::vec(any::<u8>(), 0..32)) {
            let header = match which {
                0 => b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n".to_vec(),
                1 => b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n".to_vec(),
                2 => b"PROXY UNKNOWN\r\n".to_vec(),
                _ => v2_tcp4(),
            };
            let whole = parse(&header, DEFAULT_MAX_HEADER).unwrap().unwrap();
            let mut bytes = header.clone();
            bytes.extend_from_slice(&tail);
            for cut in 0..=bytes.len() {
                let got = parse(&bytes[..cut], DEFAULT_MAX_HEADER);
                if cut < header.len() {
                    prop_assert_eq!(got, Ok(None), "cut {}", cut);
                } else {
                    prop_assert_eq!(got, Ok(Some(whole)), "cut {}", cut);
                }
            }
        }

        /// Arbitrary bytes never panic, and a complete answer never claims
        /// more bytes than were given or than the cap.
        #[test]
        fn arbitrary_input_is_refused_or_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..300), max in 16usize..600) {
            if let Ok(Some((n, _))) = parse(&bytes, max) {
                prop_assert!(n <= bytes.len() && n <= max);
            }
        }

        /// Arbitrary bytes after a valid v2 prefix: the same property.
        #[test]
        fn arbitrary_v2_bodies_are_refused_or_bounded(rest in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = V2_SIG.to_vec();
            bytes.extend_from_slice(&rest);
            if let Ok(Some((n, _))) = parse(&bytes, DEFAULT_MAX_HEADER) {
                prop_assert!(n <= bytes.len());
            }
        }
    }
}
