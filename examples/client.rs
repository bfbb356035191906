//! A client on the framework: a [`Connector`] dials without blocking (with a
//! timeout and retries) and hands the connection to the same
//! [`EventHandler`] callbacks a server uses; the loop runs on this thread.
//!
//! ```sh
//! cargo run --example client                   # starts an echo server on 127.0.0.1:0 to talk to
//! cargo run --example client -- 127.0.0.1:7000 # or dials yours, e.g. `evnet echo --addr 127.0.0.1:7000`
//! ```
//! It sends a few lines, checks they come back, closes and exits; it gives
//! up after 10 seconds whatever happens.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use evnet::echo::Echo;
use evnet::net::{Backoff, Buffer, ClientService, CloseReason, Conn, Connector, EventHandler};
use evnet::net::{Server, ServerBuilder};
use evnet::reactor::{EventLoop, LoopConfig};

const MESSAGE: &[u8] = b"hello\nfrom the evnet client example\n";

/// What happened, for `main` to report once the loop has stopped.
type Outcome = Rc<RefCell<Option<io::Result<()>>>>;

/// Sends `MESSAGE` on open and closes once it is echoed back in full.
struct EchoCheck {
    outcome: Outcome,
}

impl EventHandler for EchoCheck {
    /// Bytes echoed back on this connection so far.
    type Context = Vec<u8>;

    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        println!("connected to {}", conn.peer_addr().expect("peer address"));
        // Gathered and sent when the callback returns.
        let _ = conn.write(MESSAGE);
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        let got = conn.context();
        got.extend_from_slice(input.as_slice());
        input.clear();
        if got.len() >= MESSAGE.len() {
            let result = if got.as_slice() == MESSAGE {
                print!("echoed:\n{}", String::from_utf8_lossy(got));
                Ok(())
            } else {
                Err(io::Error::other("the echo differs"))
            };
            *self.outcome.borrow_mut() = Some(result);
            conn.close();
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        println!("closed: {reason:?}");
        let mut outcome = self.outcome.borrow_mut();
        if outcome.is_none() {
            *outcome = Some(Err(io::Error::other(format!(
                "closed before the echo: {reason:?}"
            ))));
        }
        conn.loop_ctx().stop();
    }
}

fn main() -> io::Result<()> {
    run(std::env::args().nth(1))
}

/// Dial `target`, or an echo server of our own.
fn run(target: Option<String>) -> io::Result<()> {
    let (addr, _server): (SocketAddr, Option<Server>) = match target {
        Some(a) => (a.parse().map_err(io::Error::other)?, None),
        None => {
            let server = ServerBuilder::new()
                .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
                .loops(0)
                .start(|_| Echo)?;
            (server.local_addr().expect("a TCP address"), Some(server))
        }
    };

    let mut el = EventLoop::new(LoopConfig::default())?;
    let outcome: Outcome = Rc::default();
    // One handler for every connection dialed on this loop (here one).
    let service = ClientService::new(
        &mut el,
        EchoCheck {
            outcome: outcome.clone(),
        },
    );
    let connector = Connector::new(addr)
        .connect_timeout(Duration::from_secs(2))
        .retry(Backoff {
            max_attempts: Some(3),
            ..Backoff::default()
        })
        .on_retry(|attempt, e| eprintln!("attempt {attempt} failed ({e}); retrying"));
    let failed = outcome.clone();
    connector.connect_on(&mut el.ctx(), &service, move |lp, e| {
        *failed.borrow_mut() = Some(Err(e));
        lp.stop();
    });
    // Bounded whatever the peer does.
    el.run_after(Duration::from_secs(10), |el| el.stop());
    el.run()?;

    outcome
        .take()
        .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into()))
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example against its own server.
    #[test]
    fn runs() {
        super::run(None).unwrap();
    }
}
