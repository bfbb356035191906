//! The echo as one task per connection on an evnet loop, with Go's read
//! deadline: a client silent for a minute is dropped. Serves one client
//! here (so `cargo test` can run it) and checks its echo.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use evnet::rt::{self, TcpListener};

fn main() {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        let addr = addr_rx.recv().unwrap();
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"hello, tasks").unwrap();
        let mut back = [0u8; 12];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello, tasks");
        println!("echoed: {}", String::from_utf8_lossy(&back));
    });
    rt::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        let (mut s, _peer) = listener.accept().await.unwrap();
        let task = rt::spawn_local(async move {
            let mut buf = vec![0u8; 16 * 1024];
            // A minute to say something, like Go's conn.SetReadDeadline.
            s.set_read_deadline(Some(Instant::now() + Duration::from_secs(60)));
            while let Ok(n @ 1..) = s.read(&mut buf).await {
                if s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        task.await.unwrap();
    });
    client.join().unwrap();
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs() {
        super::main();
    }
}
