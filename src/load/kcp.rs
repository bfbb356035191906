//! The KCP echo load: `connections` KCP conversations spread over
//! `threads` threads, each sending `size`-byte messages and timing their
//! echo. Closed loop (the next message, or the next `pipeline` of them,
//! when the last came back) or open
//! loop at a fixed rate (latency from the scheduled time, so a stall shows
//! up in every message it delays). Each thread waits on all its sockets
//! with poll(2) and drives the engines' timers between waits.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{Errors, Report};
use crate::kcp::{KcpClient, KcpConfig};
use crate::sys::fdset::{poll, PollFd, POLLIN};

/// What [`run`] does.
#[derive(Clone, Debug)]
pub struct KcpLoad {
    /// The KCP echo server.
    pub addr: SocketAddr,
    /// Engine settings (mode, windows, MTU).
    pub kcp: KcpConfig,
    /// Conversations (conv ids 1..=connections).
    pub connections: usize,
    /// Threads driving them.
    pub threads: usize,
    /// Bytes per message.
    pub size: usize,
    /// Measured time, after `warmup`.
    pub duration: Duration,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// Open loop: messages per second over all conversations.
    pub rate: Option<f64>,
    /// Closed loop: messages a conversation sends at once, the next batch
    /// when all came back (1: ping-pong).
    pub pipeline: usize,
    /// A message not echoed within this is counted as a timeout (and the
    /// conversation abandoned).
    pub timeout: Duration,
}

struct Conv {
    client: KcpClient,
    /// When each outstanding message was sent (or scheduled).
    sent: VecDeque<Instant>,
    next: Instant,
    dead: bool,
}

/// Run the load; one report for all threads.
pub fn run(cfg: &KcpLoad) -> io::Result<Report> {
    let threads = cfg.threads.clamp(1, cfg.connections.max(1));
    let start = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let cfg = cfg.clone();
            let convs: Vec<u32> = (0..cfg.connections)
                .filter(|i| i % threads == t)
                .map(|i| i as u32 + 1)
                .collect();
            thread::spawn(move || drive(&cfg, &convs, start))
        })
        .collect();
    let mut report = Report {
        requests: 0,
        elapsed: cfg.duration,
        bytes_sent: 0,
        bytes_received: 0,
        errors: Errors::default(),
        non_success: 0,
        latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
    };
    for h in handles {
        let r = h
            .join()
            .map_err(|_| io::Error::other("kcp load thread panicked"))??;
        report.requests += r.requests;
        report.bytes_sent += r.bytes_sent;
        report.bytes_received += r.bytes_received;
        report.errors.add(&r.errors);
        report
            .latency
            .add(&r.latency)
            .map_err(|e| io::Error::other(format!("histogram: {e}")))?;
    }
    Ok(report)
}

fn drive(cfg: &KcpLoad, ids: &[u32], start: Instant) -> io::Result<Report> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|e| io::Error::other(format!("histogram: {e}")))?;
    let mut errors = Errors::default();
    let (mut requests, mut sent_bytes, mut recv_bytes) = (0u64, 0u64, 0u64);
    // Per conversation, the gap between scheduled messages.
    let gap = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.connections as f64 / r.max(1e-3)));
    let mut convs = Vec::with_capacity(ids.len());
    for (i, &id) in ids.iter().enumerate() {
        let client = KcpClient::connect(cfg.addr, id, &cfg.kcp)?;
        // Spread the open-loop schedule so conversations do not send in step.
        let offset = gap.map_or(Duration::ZERO, |g| g * i as u32 / ids.len().max(1) as u32);
        convs.push(Conv {
            client,
            sent: VecDeque::new(),
            next: start + offset,
            dead: false,
        });
    }
    let msg: Vec<u8> = (0..cfg.size).map(|i| (i % 251) as u8).collect();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let mut fds: Vec<PollFd> = Vec::with_capacity(convs.len());
    while Instant::now() < end {
        let now = Instant::now();
        let mut wake = end;
        for c in convs.iter_mut().filter(|c| !c.dead) {
            match gap {
                Some(g) => {
                    // Open loop: send every message whose time has come.
                    while c.next <= now {
                        c.client.send(&msg)?;
                        c.sent.push_back(c.next);
                        sent_bytes += msg.len() as u64;
                        c.next += g;
                    }
                    wake = wake.min(c.next);
                }
                None => {
                    if c.sent.is_empty() && now >= start {
                        for _ in 0..cfg.pipeline.max(1) {
                            c.client.send(&msg)?;
                            c.sent.push_back(now);
                            sent_bytes += msg.len() as u64;
                        }
                    }
                }
            }
        }
        fds.clear();
        fds.extend(convs.iter().map(|c| PollFd {
            fd: c.client.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        }));
        let wait = wake
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(5));
        poll(&mut fds, wait.as_millis() as i32)?;
        for c in convs.iter_mut().filter(|c| !c.dead) {
            c.client.poll(Duration::ZERO)?;
            let done = Instant::now();
            while c.client.received().len() >= msg.len() && !c.sent.is_empty() {
                let ok = c.client.received()[..msg.len()] == msg[..];
                c.client.received().drain(..msg.len());
                recv_bytes += msg.len() as u64;
                let t = c.sent.pop_front().expect("checked non-empty");
                if !ok {
                    errors.bad_reply += 1;
                } else if t >= measure_from {
                    requests += 1;
                    let us = done.saturating_duration_since(t).as_micros() as u64;
                    let _ = hist.record(us.max(1));
                }
            }
            if c.sent
                .front()
                .is_some_and(|t| done.saturating_duration_since(*t) > cfg.timeout)
            {
                errors.timeout += 1;
                c.dead = true;
            }
        }
    }
    Ok(Report {
        requests,
        elapsed: cfg.duration,
        bytes_sent: sent_bytes,
        bytes_received: recv_bytes,
        errors,
        non_success: 0,
        latency: hist,
    })
}
