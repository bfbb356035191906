//! A heartbeat server and client pair over a small length-prefixed protocol.
//!
//! ```sh
//! cargo run --example heartbeat -- server 127.0.0.1:7100
//! cargo run --example heartbeat -- client 127.0.0.1:7100
//! cargo run --example heartbeat -- mute-server 127.0.0.1:7100   # never answers
//! ```
//! The client pings after 2 s of silence, then every second, and declares
//! the server dead after 3 unanswered pings.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use evnet::net::heartbeat::{HeartbeatConfig, PeerEvent, PingClient, PingServer};
use evnet::net::{Client, Connector, ServerBuilder};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let role = args.get(1).map(String::as_str).unwrap_or("server");
    let addr: SocketAddr = args
        .get(2)
        .map(String::as_str)
        .unwrap_or("127.0.0.1:7100")
        .parse()
        .expect("address");
    let cfg = HeartbeatConfig {
        idle: Duration::from_secs(2),
        interval: Duration::from_secs(1),
        max_missed: 3,
    };
    match role {
        "server" | "mute-server" => {
            let mute = Arc::new(AtomicBool::new(role == "mute-server"));
            let server = ServerBuilder::new()
                .bind(addr)
                .loops(0)
                .start(move |_| PingServer {
                    heartbeat: Some(cfg),
                    mute: mute.clone(),
                })?;
            println!("heartbeat {role} on {}", server.local_addr().unwrap());
            server.join()
        }
        _ => {
            let (tx, rx) = mpsc::channel();
            let _client = Client::start(
                Connector::new(addr),
                1,
                move || PingClient {
                    heartbeat: cfg,
                    events: tx,
                },
                |e| eprintln!("connect: {e}"),
            )?;
            for ev in rx {
                println!("{ev:?}");
                if matches!(ev, PeerEvent::Closed(_)) {
                    break;
                }
            }
            Ok(())
        }
    }
}
