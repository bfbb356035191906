//! The task sockets through the ecosystem's I/O traits (features
//! `tokio-io` and `futures-io`): code written against tokio's and futures'
//! extension traits runs on an evnet loop. `.ci/run` runs this file with
//! both features on.

use std::time::Duration;

use evnet::poller::PollerKind;
use evnet::reactor::LoopConfig;
use evnet::rt::{self, TcpListener, TcpStream};

/// The readiness path and the completion path (io_uring proactor).
const POLLERS: [PollerKind; 2] = [PollerKind::Epoll, PollerKind::Proactor];

fn on(poller: PollerKind) -> LoopConfig {
    LoopConfig {
        poller,
        ..LoopConfig::default()
    }
}

/// An echo written only against tokio's traits, generic over the stream.
async fn tokio_echo<S>(mut s: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 8192];
    loop {
        let n = AsyncReadExt::read(&mut s, &mut buf).await.unwrap();
        if n == 0 {
            AsyncWriteExt::shutdown(&mut s).await.unwrap();
            return;
        }
        AsyncWriteExt::write_all(&mut s, &buf[..n]).await.unwrap();
    }
}

#[test]
fn tokio_traits_carry_a_whole_exchange() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for poller in POLLERS {
        rt::block_on_with(on(poller), async {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let server = rt::spawn_local(async move {
                let (s, _) = listener.accept().await.unwrap();
                tokio_echo(s).await;
            });
            let client = TcpStream::connect(addr).await.unwrap();
            let (mut r, mut w) = client.into_split();
            let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
            let sent = data.clone();
            let writer = rt::spawn_local(async move {
                // Through the traits, not the inherent methods.
                AsyncWriteExt::write_all(&mut w, &sent).await.unwrap();
                AsyncWriteExt::shutdown(&mut w).await.unwrap();
            });
            let mut back = Vec::new();
            rt::timeout(
                Duration::from_secs(30),
                AsyncReadExt::read_to_end(&mut r, &mut back),
            )
            .await
            .expect("echo within 30 s")
            .unwrap();
            writer.await.unwrap();
            server.await.unwrap();
            assert!(back == data, "{poller:?}: echo differs");
        })
        .unwrap();
    }
}

#[test]
fn futures_traits_carry_a_whole_exchange() {
    use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    for poller in POLLERS {
        rt::block_on_with(on(poller), async {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let server = rt::spawn_local(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut line = [0u8; 5];
                AsyncReadExt::read_exact(&mut s, &mut line).await.unwrap();
                AsyncWriteExt::write_all(&mut s, &line.to_ascii_uppercase())
                    .await
                    .unwrap();
                AsyncWriteExt::close(&mut s).await.unwrap();
            });
            let mut c = TcpStream::connect(addr).await.unwrap();
            AsyncWriteExt::write_all(&mut c, b"hello").await.unwrap();
            let mut back = Vec::new();
            AsyncReadExt::read_to_end(&mut c, &mut back).await.unwrap();
            assert_eq!(back, b"HELLO");
            assert_eq!(c.uses_ring(), poller == PollerKind::Proactor);
            server.await.unwrap();
        })
        .unwrap();
    }
}

/// hyper 1.x serving HTTP/1.1 on evnet tasks (through the tokio traits and
/// hyper-util's `TokioIo`): curl gets an answer, and Python's http.client
/// makes two requests on one keep-alive connection.
#[test]
fn hyper_on_evnet_answers_curl_and_python_keep_alive() {
    for poller in POLLERS {
        hyper_answers_curl_and_python(poller);
    }
}

fn hyper_answers_curl_and_python(poller: PollerKind) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use std::process::Command;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        rt::block_on_with(on(poller), async move {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            // Two connections: curl's and Python's.
            for _ in 0..2 {
                let (s, _) = listener.accept().await.unwrap();
                let service = hyper::service::service_fn(|req| async move {
                    let body = format!("path={}\n", req.uri().path());
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                        body,
                    ))))
                });
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                    .await
                    .unwrap();
            }
        })
        .unwrap();
    });
    let addr: std::net::SocketAddr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            &format!("http://{addr}/from-curl"),
        ])
        .output()
        .expect("curl (Debian's curl; .ci/run installs it)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "path=/from-curl\n");
    let script = format!(
        "import http.client\n\
         c = http.client.HTTPConnection('127.0.0.1', {}, timeout=10)\n\
         for p in ('/a', '/b'):\n\
         \x20   c.request('GET', p)\n\
         \x20   r = c.getresponse()\n\
         \x20   print(r.status, r.read().decode().strip(), r.will_close)\n\
         c.close()\n",
        addr.port()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both on one connection: the first response did not ask to close.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200 path=/a False\n200 path=/b False\n"
    );
    server.join().unwrap();
}

/// The traits on Unix streams too: a socketpair carried through tokio's
/// extension traits one way and futures' the other.
#[test]
fn unix_streams_carry_the_traits() {
    use evnet::rt::UnixStream;
    rt::block_on(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut a, b"via tokio")
            .await
            .unwrap();
        let mut got = [0u8; 9];
        futures_util::io::AsyncReadExt::read_exact(&mut b, &mut got)
            .await
            .unwrap();
        assert_eq!(&got, b"via tokio");
        futures_util::io::AsyncWriteExt::write_all(&mut b, b"via futures")
            .await
            .unwrap();
        futures_util::io::AsyncWriteExt::close(&mut b)
            .await
            .unwrap();
        let mut back = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut a, &mut back)
            .await
            .unwrap();
        assert_eq!(back, b"via futures");
    });
}

/// hyper's timer on the loop (`rt::HyperTimer`): a client that sends half a
/// request head and goes silent is dropped once hyper's header read
/// timeout passes, not before; a whole request on the same server is
/// answered. On epoll and the proactor.
#[test]
fn hyper_header_read_timeout_runs_on_the_loop_timer() {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use std::io::{Read, Write};
    use std::time::Instant;
    for poller in POLLERS {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            rt::block_on_with(on(poller), async move {
                let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let mut results = Vec::new();
                for _ in 0..2 {
                    let (s, _) = listener.accept().await.unwrap();
                    let service = hyper::service::service_fn(|_req| async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    results.push(rt::spawn_local(async move {
                        hyper::server::conn::http1::Builder::new()
                            .timer(rt::HyperTimer)
                            .header_read_timeout(Duration::from_millis(300))
                            .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                            .await
                            .is_ok()
                    }));
                }
                let mut ok = Vec::new();
                for r in results {
                    ok.push(r.await.unwrap());
                }
                ok
            })
            .unwrap()
        });
        let addr: std::net::SocketAddr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // Half a head, then silence.
        let mut slow = std::net::TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let t = Instant::now();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest); // EOF (or a reset) when hyper gives up
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(300), "{poller:?}: {took:?}");
        assert!(took < Duration::from_secs(15), "{poller:?}: {took:?}");
        assert!(
            !String::from_utf8_lossy(&rest).contains("200 OK"),
            "{poller:?}: a half head was answered"
        );
        // A whole request is answered.
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut rsp = Vec::new();
        c.read_to_end(&mut rsp).unwrap();
        let rsp = String::from_utf8_lossy(&rsp);
        assert!(rsp.starts_with("HTTP/1.1 200 OK\r\n"), "{poller:?}: {rsp}");
        assert!(rsp.ends_with("\r\n\r\nok"), "{poller:?}: {rsp}");
        // The timed-out connection ended in an error, the other cleanly.
        assert_eq!(server.join().unwrap(), [false, true], "{poller:?}");
    }
}
