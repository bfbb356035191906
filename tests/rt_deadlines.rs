//! Go's deadlines on task sockets cost O(1) per operation whatever the
//! number of streams, counted in timer-wheel operations. (Its own test
//! binary: thousands of sockets open here would push the fds of tests
//! running beside it past select(2)'s FD_SETSIZE.)

use std::rc::Rc;
use std::time::{Duration, Instant};

use evnet::reactor::LoopConfig;
use evnet::rt::{self, TcpListener, TcpStream};

async fn read_once(s: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| s.poll_read(cx, buf)).await
}

/// `n` streams each read one byte three times, each read under a fresh
/// 60 s read deadline: the timer-wheel operations per read, and the timers
/// left on the wheel, for that many streams.
fn deadline_costs(n: usize) -> (f64, usize) {
    use evnet::reactor::EventLoop;
    const ROUNDS: usize = 3;
    let mut el = EventLoop::new(LoopConfig::default()).unwrap();
    let out = Rc::new(std::cell::Cell::new(None));
    let o = out.clone();
    rt::spawn_in(&mut el, async move {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..n {
            let c = rt::spawn_local(TcpStream::connect(addr));
            let (s, _) = listener.accept().await.unwrap();
            clients.push(c.await.unwrap().unwrap());
            servers.push(Rc::new(s));
        }
        for _ in 0..ROUNDS {
            let readers: Vec<_> = servers
                .iter()
                .map(|s| {
                    let s = s.clone();
                    rt::spawn_local(async move {
                        s.set_read_deadline(Some(Instant::now() + Duration::from_secs(60)));
                        let mut b = [0u8; 1];
                        assert_eq!(read_once(&s, &mut b).await.unwrap(), 1);
                    })
                })
                .collect();
            rt::yield_now().await; // every reader is now waiting
            for c in &mut clients {
                c.write_all(b"x").await.unwrap();
            }
            for r in readers {
                r.await.unwrap();
            }
        }
        o.set(Some((clients, servers)));
    });
    let before = rt::timer_operations(&el);
    let base = el.timer_count();
    for _ in 0..1_000_000 {
        if let Some(streams) = out.take() {
            let ops = rt::timer_operations(&el) - before;
            let left = el.timer_count() - base;
            drop(streams);
            return (ops as f64 / (n * ROUNDS) as f64, left);
        }
        el.turn(Some(Duration::from_millis(100))).unwrap();
    }
    panic!("the readers did not finish");
}

/// Go's deadlines cost O(1) per operation whatever the number of streams:
/// the same timer-wheel operations per read for 100 and for 2,000 streams
/// (one re-arm per new deadline), and one timer per stream on the wheel,
/// not one per read.
#[test]
fn deadlines_cost_the_same_per_read_for_many_streams() {
    let (few, few_left) = deadline_costs(100);
    let (many, many_left) = deadline_costs(2_000);
    assert_eq!(
        few, many,
        "timer operations per read: 100 streams {few}, 2,000 streams {many}"
    );
    assert!(few <= 2.0, "{few} timer operations per read");
    assert_eq!(few_left, 100);
    assert_eq!(many_left, 2_000);
}
