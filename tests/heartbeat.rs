//! Application heartbeat over real sockets: a silent server is declared
//! dead within idle + max_missed * interval; an answering one never is.

mod util;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use evnet::net::heartbeat::{HeartbeatConfig, PeerEvent, PingClient, PingServer};
use evnet::net::{Client, Connector, ServerBuilder};

const CFG: HeartbeatConfig = HeartbeatConfig {
    idle: Duration::from_millis(200),
    interval: Duration::from_millis(100),
    max_missed: 3,
};

fn next(rx: &mpsc::Receiver<PeerEvent>) -> (PeerEvent, Instant) {
    let ev = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("heartbeat event");
    (ev, Instant::now())
}

#[test]
fn silent_server_is_declared_dead_within_the_bound_and_answering_one_never() {
    let mute = Arc::new(AtomicBool::new(false));
    let m = mute.clone();
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .start(move |_| PingServer {
            heartbeat: None,
            mute: m.clone(),
        })
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let client = Client::start(
        Connector::new(server.local_addr().unwrap()),
        1,
        move || PingClient {
            heartbeat: CFG,
            events: tx,
        },
        |e| panic!("connect failed: {e}"),
    )
    .unwrap();
    assert_eq!(next(&rx).0, PeerEvent::Open);

    // An answering server: PING/PONG keeps going, never a Dead verdict.
    let mut pongs = 0;
    let mut last_inbound = Instant::now();
    while pongs < 4 {
        let (ev, at) = next(&rx);
        assert_eq!(
            ev,
            PeerEvent::Pong,
            "an answering peer must never be declared dead"
        );
        last_inbound = at;
        pongs += 1;
    }
    // Silence: the verdict comes no earlier than idle + 3 intervals after
    // the last answer, and not much later (one tick plus scheduling).
    mute.store(true, Ordering::SeqCst);
    let (mut ev, mut at) = next(&rx);
    if ev == PeerEvent::Pong {
        // A PONG already in flight when we muted.
        last_inbound = at;
        (ev, at) = next(&rx);
    }
    assert_eq!(ev, PeerEvent::Dead);
    let bound = CFG.idle + CFG.interval * CFG.max_missed;
    let took = at - last_inbound;
    assert!(
        took + Duration::from_millis(5) >= bound,
        "declared dead after {took:?}, before {bound:?}"
    );
    assert!(
        took < bound + Duration::from_millis(500),
        "declared dead only after {took:?} (bound {bound:?})"
    );
    match next(&rx).0 {
        PeerEvent::Closed(evnet::net::CloseReason::Protocol(m)) => {
            assert!(m.contains("3 PINGs"), "{m}")
        }
        other => panic!("expected close after the verdict, got {other:?}"),
    }
    drop(client);
}
