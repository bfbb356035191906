//! Addresses a server can bind and a connector can dial.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use socket2::{Domain, SockAddr};

/// A TCP address, a Unix-domain socket path, or a Linux abstract-namespace name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// An IPv4 or IPv6 TCP address (`127.0.0.1:8080`, `[::1]:8080`).
    Tcp(SocketAddr),
    /// A filesystem path (`unix:/run/app.sock`).
    Unix(PathBuf),
    /// An abstract-namespace name (`unix:@name`): no file, gone with the last socket.
    Abstract(Vec<u8>),
}

impl Addr {
    /// Parse `host:port`, `[v6]:port`, `unix:/path` or `unix:@name`. Host
    /// names are resolved here (blocking): call it off the loop.
    pub fn parse(s: &str) -> std::io::Result<Addr> {
        if let Some(rest) = s.strip_prefix("unix:") {
            if let Some(name) = rest.strip_prefix('@') {
                return Ok(Addr::Abstract(name.as_bytes().to_vec()));
            }
            return Ok(Addr::Unix(PathBuf::from(rest)));
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Addr::Tcp(a));
        }
        s.to_socket_addrs()?.next().map(Addr::Tcp).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{s}: no address"))
        })
    }

    /// The socket domain (address family) a socket for this address needs:
    /// `IPV4`, `IPV6` or `UNIX`.
    pub fn domain(&self) -> Domain {
        match self {
            Addr::Tcp(SocketAddr::V4(_)) => Domain::IPV4,
            Addr::Tcp(SocketAddr::V6(_)) => Domain::IPV6,
            Addr::Unix(_) | Addr::Abstract(_) => Domain::UNIX,
        }
    }

    /// The raw socket address to pass to `bind` or `connect`. Abstract names
    /// get the leading NUL that selects the abstract namespace.
    ///
    /// # Errors
    /// `InvalidInput` if a Unix path or abstract name does not fit in
    /// `sockaddr_un` (107 bytes on Linux).
    pub fn to_sockaddr(&self) -> std::io::Result<SockAddr> {
        match self {
            Addr::Tcp(a) => Ok(SockAddr::from(*a)),
            Addr::Unix(p) => SockAddr::unix(p),
            Addr::Abstract(name) => {
                // A leading NUL selects the abstract namespace.
                use std::os::unix::ffi::OsStrExt;
                let mut raw = vec![0u8];
                raw.extend_from_slice(name);
                SockAddr::unix(std::ffi::OsStr::from_bytes(&raw))
            }
        }
    }

    /// True for [`Addr::Tcp`]: TCP-only socket options (`TCP_NODELAY`,
    /// keepalive) apply.
    pub fn is_tcp(&self) -> bool {
        matches!(self, Addr::Tcp(_))
    }

    /// Converts an address the kernel reported (from `accept`,
    /// `getsockname`, `getpeername`). `None` for an unnamed Unix socket
    /// (a client that never bound) or an address family other than IPv4,
    /// IPv6 and Unix.
    pub fn from_sockaddr(a: &SockAddr) -> Option<Addr> {
        if let Some(s) = a.as_socket() {
            return Some(Addr::Tcp(s));
        }
        if let Some(p) = a.as_pathname() {
            return Some(Addr::Unix(p.to_path_buf()));
        }
        a.as_abstract_namespace()
            .map(|n| Addr::Abstract(n.to_vec()))
    }

    /// The IP address and port if this is a TCP address, `None` for Unix
    /// and abstract addresses.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(a) => Some(*a),
            _ => None,
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "{a}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::Abstract(n) => write!(f, "unix:@{}", String::from_utf8_lossy(n)),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Addr {
        Addr::Tcp(a)
    }
}

impl std::str::FromStr for Addr {
    type Err = std::io::Error;
    fn from_str(s: &str) -> std::io::Result<Addr> {
        Addr::parse(s)
    }
}
