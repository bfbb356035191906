//! hyper 1.x HTTP/1.1 over tokio-rustls (ring provider) on a tokio
//! current-thread runtime: the TLS peer of bench/tls.sh.
//! GET /plaintext -> 200 "Hello, World!"; anything else -> 404.
//! Session resumption as evnet configures it: stateless tickets (rotating
//! key) and a session cache.
//!
//! Usage: hyper-tls --addr 127.0.0.1:8443 --cert cert.pem --key key.pem

use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

static BODY: &[u8] = b"Hello, World!";

struct Args {
    addr: String,
    cert: String,
    key: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:8443".into(),
        cert: String::new(),
        key: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(k) = args.next() {
        let v = args.next().unwrap_or_else(|| usage(&format!("{k} needs a value")));
        match k.as_str() {
            "--addr" => a.addr = v,
            "--cert" => a.cert = v,
            "--key" => a.key = v,
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if a.cert.is_empty() || a.key.is_empty() {
        usage("--cert and --key are required");
    }
    a
}

fn usage(msg: &str) -> ! {
    eprintln!("hyper-tls: {msg}");
    eprintln!("usage: hyper-tls --addr HOST:PORT --cert FILE --key FILE");
    std::process::exit(2)
}

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut rsp = if req.method() == Method::GET && req.uri().path() == "/plaintext" {
        Response::new(Full::new(Bytes::from_static(BODY)))
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"Not Found")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    let h = rsp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(SERVER, HeaderValue::from_static("hyper"));
    Ok(rsp)
}

fn config(a: &Args) -> Arc<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&a.cert)
        .expect("cert file")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(&a.key).expect("key file");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate");
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c.ticketer = rustls::crypto::ring::Ticketer::new().expect("ticketer");
    c.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Arc::new(c)
}

fn main() -> io::Result<()> {
    let args = parse_args();
    let acceptor = TlsAcceptor::from(config(&args));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&args.addr).await?;
        eprintln!("hyper-tls listening on {}", listener.local_addr()?);
        let mut builder = http1::Builder::new();
        builder.keep_alive(true).pipeline_flush(true);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("hyper-tls: accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let builder = builder.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let conn = builder.serve_connection(TokioIo::new(tls), service_fn(handle));
                let _ = conn.await;
            });
        }
    })
}
