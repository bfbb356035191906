//! TLS configuration (feature `tls`, rustls with the *ring* provider): what
//! a server presents and checks ([`TlsAcceptor`], built by
//! [`TlsServerBuilder`]) and what a client dials with ([`TlsConnector`]).
//!
//! The record layer itself is a connection I/O path
//! (`net/conn/path/tls.rs`): a server given a `TlsAcceptor`
//! ([`ServerBuilder::tls`](crate::net::ServerBuilder::tls)) and a
//! [`Connector`](crate::net::Connector) given a `TlsConnector` run their
//! handlers over plaintext, with the same `Conn` API.
//!
//! Versions: TLS 1.3 and 1.2 (rustls implements nothing older). Session
//! resumption: stateless tickets (the key rotates every 6 hours, and the
//! previous key is still accepted) for TLS 1.3 and 1.2, plus a server-side
//! session cache for TLS 1.2 clients that do not take tickets. Key material
//! never appears in errors or logs: errors name files, never their bytes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The default time a connection has to finish its handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a TLS configuration could not be built. Messages name files and
/// reasons, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        source: std::io::Error,
    },
    /// A certificate file held no PEM certificate.
    #[error("{0}: no PEM certificate in the file")]
    NoCertificate(PathBuf),
    /// A key file held no usable PEM private key.
    #[error("{0}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1) in the file")]
    NoKey(PathBuf),
    /// The key is of a kind rustls cannot sign with.
    #[error("{0}: unsupported private key type")]
    BadKey(PathBuf),
    /// The key does not belong to the certificate.
    #[error("the private key does not match the certificate in {0}")]
    KeyMismatch(PathBuf),
    /// No certificate was configured.
    #[error("no certificate configured")]
    NoCertificates,
    /// rustls refused the configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// Generating a self-signed certificate failed.
    #[error("self-signed certificate: {0}")]
    SelfSigned(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })?;
    // The parse error is not shown: it could quote the key's bytes.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoKey(path.into()))
}

/// The CA certificates in a PEM file, as trust roots.
fn roots_from(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(path)? {
        roots.add(c)?;
    }
    Ok(roots)
}

/// A certificate chain with its key, checked to match.
fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    origin: &Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|_| TlsError::BadKey(origin.into()))?;
    let ck = CertifiedKey::new(chain, signer);
    match ck.keys_match() {
        Ok(()) => Ok(Arc::new(ck)),
        // rustls cannot tell for some key types: let those through.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(Arc::new(ck)),
        Err(_) => Err(TlsError::KeyMismatch(origin.into())),
    }
}

/// Certificates chosen by the name the client asks for (SNI); the first
/// one configured also answers clients that send no name, or a name no
/// certificate covers.
#[derive(Debug)]
struct BySni {
    certs: Vec<Arc<CertifiedKey>>,
}

/// Whether `ck`'s leaf certificate is valid for the DNS name `host`.
fn covers(ck: &CertifiedKey, host: &str) -> bool {
    let (Some(leaf), Ok(name)) = (ck.cert.first(), ServerName::try_from(host)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok())
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if self.certs.len() > 1 {
            if let Some(name) = hello.server_name() {
                if let Some(ck) = self.certs.iter().find(|ck| covers(ck, name)) {
                    return Some(ck.clone());
                }
            }
        }
        self.certs.first().cloned()
    }
}

/// Builds a [`TlsAcceptor`]: certificates (several, chosen by SNI), ALPN,
/// resumption, optional client certificates, the handshake timeout.
pub struct TlsServerBuilder {
    certs: Vec<Arc<CertifiedKey>>,
    alpn: Vec<Vec<u8>>,
    client_ca: Option<PathBuf>,
    cache: usize,
    tickets: bool,
    handshake_timeout: Duration,
}

impl Default for TlsServerBuilder {
    fn default() -> Self {
        TlsServerBuilder {
            certs: Vec::new(),
            alpn: Vec::new(),
            client_ca: None,
            cache: 4096,
            tickets: true,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl fmt::Debug for TlsServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No key material: only how many certificates there are.
        f.debug_struct("TlsServerBuilder")
            .field("certificates", &self.certs.len())
            .field("client_ca", &self.client_ca)
            .finish_non_exhaustive()
    }
}

impl TlsServerBuilder {
    /// An empty configuration: add at least one certificate.
    pub fn new() -> TlsServerBuilder {
        TlsServerBuilder::default()
    }

    /// Add a certificate chain (PEM, leaf first) and its private key (PEM:
    /// PKCS#8, PKCS#1 or SEC1). Checks that the key matches the
    /// certificate. The first certificate added is the default; others are
    /// chosen by the name the client asks for (SNI).
    pub fn cert_pem_files(
        mut self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let cert = cert.as_ref();
        let chain = read_certs(cert)?;
        let key = read_key(key.as_ref())?;
        self.certs.push(certified(chain, key, cert)?);
        Ok(self)
    }

    /// Add a certificate chain and key already in DER form.
    pub fn cert_der(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        self.certs
            .push(certified(chain, key, Path::new("<certificate>"))?);
        Ok(self)
    }

    /// Add a self-signed certificate for `names` (ECDSA P-256, generated
    /// now), for development. Returns the builder and the certificate
    /// (DER), whose SHA-256 fingerprint a client can pin
    /// ([`fingerprint`]).
    pub fn self_signed(self, names: &[&str]) -> Result<(Self, CertificateDer<'static>), TlsError> {
        let fail = |e: rcgen::Error| TlsError::SelfSigned(e.to_string());
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).map_err(fail)?;
        // Valid from yesterday for 90 days: scanners flag longer lives.
        let today = days_since_epoch();
        let (y, m, d) = civil_date(today - 1);
        params.not_before = rcgen::date_time_ymd(y, m, d);
        let (y, m, d) = civil_date(today + 89);
        params.not_after = rcgen::date_time_ymd(y, m, d);
        let key = rcgen::KeyPair::generate().map_err(fail)?;
        let cert = params.self_signed(&key).map_err(fail)?;
        let der = cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let b = self.cert_der(vec![der.clone()], key)?;
        Ok((b, der))
    }

    /// Offer these ALPN protocols, in order of preference (`http/1.1`
    /// for HTTP). A client that offers only others is refused.
    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self
    }

    /// Require a client certificate signed by a CA in this PEM file.
    pub fn client_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(path.into());
        self
    }

    /// Sessions kept for resumption by session id (TLS 1.2 clients without
    /// tickets); 0 turns the cache off. Default 4096.
    pub fn session_cache(mut self, sessions: usize) -> Self {
        self.cache = sessions;
        self
    }

    /// Stateless session tickets with a rotating key. Default on.
    pub fn tickets(mut self, on: bool) -> Self {
        self.tickets = on;
        self
    }

    /// How long a connection has to finish its handshake before it is
    /// closed. Default 10 s ([`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// Build the acceptor.
    pub fn build(self) -> Result<TlsAcceptor, TlsError> {
        if self.certs.is_empty() {
            return Err(TlsError::NoCertificates);
        }
        let provider = provider();
        let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots_from(path)?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(BySni { certs: self.certs }));
        config.alpn_protocols = self.alpn;
        config.session_storage = if self.cache > 0 {
            rustls::server::ServerSessionMemoryCache::new(self.cache)
        } else {
            Arc::new(rustls::server::NoServerSessionStorage {})
        };
        if self.tickets {
            config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        }
        Ok(TlsAcceptor {
            config: Arc::new(config),
            handshake_timeout: self.handshake_timeout,
        })
    }
}

/// What a TLS server presents: cheap to clone, shared by every loop.
#[derive(Clone)]
pub struct TlsAcceptor {
    pub(crate) config: Arc<rustls::ServerConfig>,
    pub(crate) handshake_timeout: Duration,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("alpn", &self.config.alpn_protocols.len())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// An acceptor over a rustls configuration built elsewhere.
    pub fn from_config(config: Arc<rustls::ServerConfig>, handshake_timeout: Duration) -> Self {
        TlsAcceptor {
            config,
            handshake_timeout,
        }
    }

    pub(crate) fn session(&self) -> Result<rustls::Connection, rustls::Error> {
        rustls::ServerConnection::new(self.config.clone()).map(rustls::Connection::Server)
    }
}

/// How a client dials TLS: roots to verify against (or none, for tests),
/// the server name to send (SNI) and check, ALPN. Cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) name: ServerName<'static>,
    pub(crate) handshake_timeout: Duration,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Whom a client trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The public web PKI (Mozilla's roots, from `webpki-roots`).
    WebPki,
    /// The CA certificates in this PEM file.
    CaFile(PathBuf),
    /// Nobody is checked: any certificate is accepted. Tests and
    /// benchmarks only; the connection is encrypted but not authenticated.
    Insecure,
}

impl TlsConnector {
    /// Dial `server_name` (a DNS name or an IP address: sent as SNI if it
    /// is a name, and checked against the certificate), trusting `trust`,
    /// offering `alpn`.
    pub fn new(server_name: &str, trust: Trust, alpn: &[&str]) -> Result<TlsConnector, TlsError> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let mut config = match trust {
            Trust::WebPki => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::CaFile(path) => builder
                .with_root_certificates(roots_from(&path)?)
                .with_no_client_auth(),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(TlsConnector {
            config: Arc::new(config),
            name,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Turn client-side session resumption off (every dial is a full
    /// handshake: for handshake benchmarks).
    pub fn without_resumption(mut self) -> Self {
        let mut c = (*self.config).clone();
        c.resumption = rustls::client::Resumption::disabled();
        self.config = Arc::new(c);
        self
    }

    /// How long a dialled connection has to finish its handshake.
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    pub(crate) fn session(&self) -> Result<rustls::Connection, rustls::Error> {
        rustls::ClientConnection::new(self.config.clone(), self.name.clone())
            .map(rustls::Connection::Client)
    }
}

/// A verifier that accepts any certificate ([`Trust::Insecure`]); the
/// handshake signatures are still checked, so the peer holds the key of
/// the certificate it sent.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn days_since_epoch() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs / 86_400) as i64
}

/// The proleptic Gregorian date `days` after 1970-01-01 (the
/// days-to-civil conversion from Howard Hinnant's date algorithms).
fn civil_date(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// The SHA-256 fingerprint of a certificate, as `AA:BB:...` (what
/// `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_file_and_never_the_key() {
        let dir = std::env::temp_dir().join(format!("evnet-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = TlsServerBuilder::new()
            .cert_pem_files(&missing, &missing)
            .unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert!(e.to_string().contains("missing.pem"));

        // Two certificates: the key of one does not match the other.
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let cert = dir.join("a.pem");
        let key = dir.join("b.key");
        std::fs::write(&cert, a.cert.pem()).unwrap();
        let b_key = b.signing_key.serialize_pem();
        std::fs::write(&key, &b_key).unwrap();
        let e = TlsServerBuilder::new()
            .cert_pem_files(&cert, &key)
            .unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch(_)), "{e}");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(&b_key[30..60]), "key bytes in an error");

        // A key file that is not a key.
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = TlsServerBuilder::new()
            .cert_pem_files(&cert, &key)
            .unwrap_err();
        assert!(matches!(e, TlsError::NoKey(_) | TlsError::BadKey(_)), "{e}");
        // A certificate file with no certificate.
        let e = TlsServerBuilder::new()
            .cert_pem_files(&key, &key)
            .unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate(_)), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_788), (2026, 12, 1));
    }

    #[test]
    fn sni_picks_the_certificate_for_the_name() {
        let (b, one) = TlsServerBuilder::new().self_signed(&["one.test"]).unwrap();
        let (b, _two) = b.self_signed(&["*.two.test"]).unwrap();
        let acceptor = b.build().unwrap();
        let _ = acceptor;
        assert_eq!(fingerprint(&one).len(), 32 * 3 - 1);
        let ck = |name: &str| {
            let c = rcgen::generate_simple_self_signed(vec![name.into()]).unwrap();
            let key = PrivateKeyDer::Pkcs8(c.signing_key.serialize_der().into());
            certified(vec![c.cert.der().clone()], key, Path::new("x")).unwrap()
        };
        let wild = ck("*.two.test");
        assert!(covers(&wild, "a.two.test"));
        assert!(!covers(&wild, "a.b.two.test"));
        assert!(!covers(&wild, "one.test"));
        assert!(covers(&ck("one.test"), "one.test"));
    }
}
