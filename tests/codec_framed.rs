//! The framed adapter over a real server on loopback, with the line codec.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evnet::codec::framed::{FrameHandler, Framed};
use evnet::codec::line::LineCodec;
use evnet::net::{CloseReason, Conn, Server, ServerBuilder};

/// Answers `<n> <LINE>\n` for the n-th line of a connection; `quit` closes.
struct Numbered {
    closes: Arc<Mutex<Vec<CloseReason>>>,
}

impl FrameHandler for Numbered {
    type Codec = LineCodec;
    type Context = u64;

    fn on_frame(&mut self, conn: &mut Conn<'_, Framed<Self>>, line: Vec<u8>) {
        if line == b"quit" {
            let _ = conn.write(b"bye\n");
            conn.close();
            return;
        }
        let n = {
            let c = &mut conn.context().user;
            *c += 1;
            *c
        };
        let _ = conn.write_with(|out| {
            out.extend_from_slice(format!("{n} ").as_bytes());
            out.extend(line.to_ascii_uppercase());
            out.push(b'\n');
        });
    }

    fn on_close(&mut self, _conn: &mut Conn<'_, Framed<Self>>, reason: &CloseReason) {
        self.closes.lock().unwrap().push(reason.clone());
    }
}

fn start(loops: usize) -> (Server, SocketAddr, Arc<Mutex<Vec<CloseReason>>>) {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let c = closes.clone();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = ServerBuilder::new()
        .bind(addr)
        .loops(loops)
        .start(move |_| Framed::new(Numbered { closes: c.clone() }))
        .expect("server starts");
    let addr = server.local_addr().unwrap();
    (server, addr, closes)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

#[test]
fn lines_split_anywhere_arrive_whole_and_in_order() {
    let (_server, addr, _) = start(2);
    let s = connect(addr);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    // One line dribbled a byte at a time, then a pipelined batch in one write.
    for b in b"hello wor" {
        w.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    w.write_all(b"ld\n").unwrap();
    assert_eq!(read_line(&mut r), "1 HELLO WORLD\n");
    let batch: String = (0..500).map(|i| format!("line{i}\n")).collect();
    w.write_all(batch.as_bytes()).unwrap();
    for i in 0..500 {
        assert_eq!(read_line(&mut r), format!("{} LINE{i}\n", i + 2));
    }
}

#[test]
fn quit_stops_the_batch_and_closes() {
    let (_server, addr, closes) = start(1);
    let mut s = connect(addr);
    s.write_all(b"a\nquit\nb\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all, "1 A\nbye\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while closes.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(closes.lock().unwrap().as_slice(), &[CloseReason::Local]);
}

#[test]
fn decode_error_closes_only_that_connection() {
    let (_server, addr, closes) = start(2);
    let good = connect(addr);
    let mut gw = good.try_clone().unwrap();
    let mut gr = BufReader::new(good);
    gw.write_all(b"first\n").unwrap();
    assert_eq!(read_line(&mut gr), "1 FIRST\n");

    // A line longer than the codec's 64 KiB limit, never terminated.
    let mut bad = connect(addr);
    bad.write_all(b"ok\n").unwrap();
    let big = vec![b'x'; 100 * 1024];
    let _ = bad.write_all(&big);
    let mut got = Vec::new();
    let _ = bad.read_to_end(&mut got);
    assert_eq!(got, b"1 OK\n", "only the reply before the bad frame");

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c = closes.lock().unwrap().clone();
        if let Some(r) = c.first() {
            match r {
                CloseReason::Protocol(m) => assert!(m.contains("exceeds the maximum"), "{m}"),
                other => panic!("closed with {other:?}"),
            }
            break;
        }
        assert!(Instant::now() < deadline, "bad connection not closed");
        std::thread::sleep(Duration::from_millis(10));
    }

    gw.write_all(b"second\n").unwrap();
    assert_eq!(read_line(&mut gr), "2 SECOND\n");
}
