//! `evnet client`: a netcat-like interactive client on the framework.
//!
//! Lines read from stdin go to the server; whatever the server sends is
//! printed as it arrives. End of stdin half-closes the connection (FIN after
//! everything typed has gone out) and the client keeps printing until the
//! server closes. Stdin is read on its own thread (a terminal or file cannot
//! always be polled) and handed to the loop through a `ConnHandle`.
//!
//! Exit status: 0 when the server closed cleanly, 1 when the connection could
//! not be made, 2 on a reset or another socket error.

use std::cell::Cell;
use std::io::{BufRead, Write};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use evnet::net::{Addr, Buffer, ClientService, CloseReason, Conn, Connector, EventHandler};
use evnet::reactor::{EventLoop, LoopConfig};

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Server address: HOST:PORT, [V6]:PORT, unix:/path or unix:@name.
    pub addr: String,
    /// Give up connecting after this long (e.g. 500ms, 3s).
    #[arg(long, value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Local (source) address to connect from, e.g. 127.0.0.2:0.
    #[arg(long)]
    pub bind: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub tls: crate::tls::ClientTlsArgs,
    /// Speak KCP over UDP (to `evnet kcp-echo` or any KCP server) instead
    /// of TCP. End of stdin ends the session once everything is echoed.
    #[arg(long)]
    pub kcp: bool,
    /// KCP conversation id.
    #[arg(long, default_value_t = 1)]
    pub conv: u32,
    #[command(flatten)]
    pub kcp_args: crate::kcp::KcpArgs,
}

/// `250ms`, `2s`, `1.5s`, `1m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?} (try 500ms, 2s)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Exit status of the session, decided on the loop.
struct Netcat {
    status: Rc<Cell<i32>>,
}

impl EventHandler for Netcat {
    type Context = ();

    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        let handle = conn.handle();
        let spawned = std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                let mut lock = stdin.lock();
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match lock.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if handle.write(line.as_slice()).is_err() {
                                return;
                            }
                        }
                    }
                }
                // Posted after the writes from this thread, so it runs after them.
                let _ = handle.run(|_, c| c.shutdown_write());
            });
        if let Err(e) = spawned {
            eprintln!("evnet client: cannot start the stdin reader: {e}");
            self.status.set(2);
            conn.abort();
        }
    }

    fn on_message(&mut self, _conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (`| head`) is not the server's fault: keep going.
        let _ = out.write_all(input.as_slice()).and_then(|_| out.flush());
        input.clear();
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        match reason {
            CloseReason::PeerClosed | CloseReason::Local => {}
            other => {
                eprintln!("evnet client: {other}");
                if self.status.get() == 0 {
                    self.status.set(2);
                }
            }
        }
        conn.loop_ctx().stop();
    }
}

/// Run the session; returns the process exit status.
pub fn run(args: ClientArgs) -> Result<i32> {
    if args.kcp {
        return run_kcp(&args);
    }
    let addr = match Addr::parse(&args.addr) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("evnet client: {}: {e}", args.addr);
            return Ok(1);
        }
    };
    let mut connector = Connector::new(addr.clone());
    if let Some(t) = args.connect_timeout {
        connector = connector.connect_timeout(t);
    }
    if let Some(b) = args.bind {
        connector = connector.bind(b);
    }
    let host = args
        .addr
        .rsplit_once(':')
        .map_or(args.addr.as_str(), |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Some(tls) = args.tls.connector(host, &[])? {
        connector = connector.tls(tls);
    }
    let mut el = EventLoop::new(LoopConfig::default()).context("creating the event loop")?;
    let status = Rc::new(Cell::new(0));
    let service = ClientService::new(
        &mut el,
        Netcat {
            status: status.clone(),
        },
    );
    let st = status.clone();
    connector.connect_on(&mut el.ctx(), &service, move |lp, e| {
        eprintln!("evnet client: connecting to {addr}: {e}");
        st.set(1);
        lp.stop();
    });
    el.run().context("event loop")?;
    Ok(status.get())
}

/// `--kcp`: stdin lines to the server over KCP, everything received to
/// stdout. KCP has no FIN: at the end of stdin the client waits until all
/// it sent is acknowledged and then a short quiet spell, then exits 0.
/// Exit 2 if the link dies (the server never acknowledges).
fn run_kcp(args: &ClientArgs) -> Result<i32> {
    use evnet::kcp::KcpClient;
    use std::sync::mpsc;
    let addr = match std::net::ToSocketAddrs::to_socket_addrs(args.addr.as_str())
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            eprintln!("evnet client: {}: not a UDP address", args.addr);
            return Ok(1);
        }
    };
    let sock = std::net::UdpSocket::bind(args.bind.unwrap_or_else(|| {
        if addr.is_ipv6() {
            "[::]:0".parse().expect("literal")
        } else {
            "0.0.0.0:0".parse().expect("literal")
        }
    }))?;
    sock.connect(addr)?;
    let mut c = KcpClient::with_socket(sock, args.conv, &args.kcp_args.config())?;
    let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            loop {
                let mut line = Vec::new();
                match lock.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(Some(line)).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(None);
        })?;
    let mut eof_at: Option<std::time::Instant> = None;
    let quiet = Duration::from_millis(300);
    let mut out = std::io::stdout();
    loop {
        while let Ok(m) = rx.try_recv() {
            match m {
                Some(line) => c.send(&line)?,
                None => eof_at = Some(std::time::Instant::now()),
            }
        }
        let n = c.poll(Duration::from_millis(10))?;
        if n > 0 {
            let _ = out.write_all(c.received()).and_then(|_| out.flush());
            c.received().clear();
            if eof_at.is_some() {
                eof_at = Some(std::time::Instant::now());
            }
        }
        if c.engine().is_dead() {
            eprintln!("evnet client: kcp link dead (no acknowledgement from {addr})");
            return Ok(2);
        }
        if let Some(t) = eof_at {
            if c.waiting() == 0 && t.elapsed() >= quiet {
                return Ok(0);
            }
        }
    }
}
