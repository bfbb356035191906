//! Addresses a server can bind and a connector can dial.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use socket2::{Domain, SockAddr};

/// A TCP address, a Unix-domain socket path, or a Linux abstract-namespace name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
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

    pub fn domain(&self) -> Domain {
        match self {
            Addr::Tcp(SocketAddr::V4(_)) => Domain::IPV4,
            Addr::Tcp(SocketAddr::V6(_)) => Domain::IPV6,
            Addr::Unix(_) | Addr::Abstract(_) => Domain::UNIX,
        }
    }

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

    pub fn is_tcp(&self) -> bool {
        matches!(self, Addr::Tcp(_))
    }

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
