//! The task sockets through the ecosystem's I/O traits (features
//! `tokio-io` and `futures-io`): code written against tokio's and futures'
//! extension traits runs on an evnet loop. `.ci/run` runs this file with
//! both features on.

use std::time::Duration;

use evnet::rt::{self, TcpListener, TcpStream};

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
    rt::block_on(async {
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
        assert!(back == data, "echo differs");
    });
}

#[test]
fn futures_traits_carry_a_whole_exchange() {
    use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    rt::block_on(async {
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
        server.await.unwrap();
    });
}
