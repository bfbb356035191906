//! The TLS options every server command shares (`--tls-cert`, `--tls-key`,
//! `--tls-self-signed`, `--tls-client-ca`, ...) and the client's.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use evnet::net::tls::{fingerprint, TlsAcceptor, TlsConnector, TlsServerBuilder, Trust};
use evnet::net::ServerBuilder;

use crate::common::parse_duration;

#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Serve TLS with this certificate chain (PEM, leaf first); needs --tls-key.
    /// Repeat with --tls-key for several certificates chosen by SNI (the first is the default).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Vec<PathBuf>,
    /// The private key of the --tls-cert at the same position (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Vec<PathBuf>,
    /// Serve TLS with a certificate generated at start for localhost (development only);
    /// its SHA-256 fingerprint is printed.
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Require client certificates signed by a CA in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Close connections that have not finished the TLS handshake in this time.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub tls_handshake_timeout: Duration,
}

impl TlsArgs {
    fn wanted(&self) -> bool {
        self.tls_self_signed || !self.tls_cert.is_empty()
    }

    /// The acceptor these options describe, offering `alpn`; `None` without
    /// TLS options.
    pub fn acceptor(&self, alpn: &[&str]) -> Result<Option<TlsAcceptor>> {
        if !self.wanted() {
            return Ok(None);
        }
        let mut b = TlsServerBuilder::new()
            .alpn(alpn)
            .handshake_timeout(self.tls_handshake_timeout);
        if self.tls_cert.len() != self.tls_key.len() {
            bail!("give one --tls-key for each --tls-cert");
        }
        for (cert, key) in self.tls_cert.iter().zip(&self.tls_key) {
            b = b
                .cert_pem_files(cert, key)
                .context("--tls-cert/--tls-key")?;
        }
        if self.tls_self_signed {
            let (nb, cert) = b
                .self_signed(&["localhost", "127.0.0.1", "::1"])
                .context("--tls-self-signed")?;
            println!(
                "evnet: self-signed certificate for localhost, SHA-256 fingerprint {}",
                fingerprint(&cert)
            );
            b = nb;
        }
        if let Some(ca) = &self.tls_client_ca {
            b = b.client_ca_file(ca);
        }
        Ok(Some(b.build().context("TLS configuration")?))
    }

    /// `builder` with TLS on if these options ask for it.
    pub fn apply(&self, builder: ServerBuilder, alpn: &[&str]) -> Result<ServerBuilder> {
        Ok(match self.acceptor(alpn)? {
            Some(a) => builder.tls(a),
            None => builder,
        })
    }

    /// Refuse combinations that cannot work: each worker process would
    /// generate a different self-signed certificate.
    pub fn check(&self, processes: usize) -> Result<()> {
        if self.tls_self_signed && processes > 1 {
            bail!("--tls-self-signed with --processes would give each worker its own certificate: use --tls-cert/--tls-key");
        }
        Ok(())
    }

    /// Whether TLS was asked for (for the banner's scheme).
    pub fn on(&self) -> bool {
        self.wanted()
    }
}

/// A client's TLS options.
#[derive(Args, Debug, Clone, Default)]
pub struct ClientTlsArgs {
    /// Dial TLS, verifying the server against the public web PKI (or --tls-ca).
    #[arg(long)]
    pub tls: bool,
    /// Dial TLS without verifying the server's certificate (tests, self-signed servers).
    #[arg(long)]
    pub tls_insecure: bool,
    /// Verify the server against the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// The name sent as SNI and checked against the certificate (default: the host dialled).
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
}

impl ClientTlsArgs {
    /// The connector for `host`, if TLS was asked for.
    pub fn connector(&self, host: &str, alpn: &[&str]) -> Result<Option<TlsConnector>> {
        if !(self.tls || self.tls_insecure || self.tls_ca.is_some()) {
            return Ok(None);
        }
        let trust = if self.tls_insecure {
            Trust::Insecure
        } else if let Some(ca) = &self.tls_ca {
            Trust::CaFile(ca.clone())
        } else {
            Trust::WebPki
        };
        let name = self.tls_name.as_deref().unwrap_or(host);
        Ok(Some(
            TlsConnector::new(name, trust, alpn).context("TLS configuration")?,
        ))
    }
}
