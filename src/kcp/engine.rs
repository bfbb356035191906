//! The KCP protocol engine: one conversation's send and receive windows,
//! retransmission and congestion state. No I/O and no clock of its own:
//! the caller feeds it datagrams ([`Kcp::input`]), the time ([`Kcp::update`])
//! and data ([`Kcp::send`]), and it hands back datagrams to send through a
//! callback and received data through [`Kcp::recv`].
//!
//! The behaviour follows the protocol as the reference C implementation
//! (ikcp.c) runs it, so the two interoperate: selective ACKs (one ACK per
//! segment plus the cumulative `una` in every header), fast retransmit after
//! `fastresend` later segments were acknowledged, RTO doubling (normal) or
//! growing by half (nodelay), window probing when the peer's window is 0,
//! and slow start / congestion avoidance unless `nocwnd`.
//!
//! Sequence numbers and timestamps are compared as wrapping differences, so
//! nothing a peer sends can overflow an integer; everything it can make us
//! hold is bounded by the windows (`rcv_wnd` segments of at most `mss`
//! bytes in the receive buffers, one pending ACK per segment received).
//! Segment buffers are recycled through a free list, so a session in
//! steady state does not allocate.

use std::collections::VecDeque;

use super::segment::{Cmd, Header, Malformed, OVERHEAD};

const RTO_NODELAY_MIN: u32 = 30;
const RTO_MIN: u32 = 100;
const RTO_DEFAULT: u32 = 200;
const RTO_MAX: u32 = 60_000;
const WND_SND: u16 = 32;
const WND_RCV: u16 = 128;
const MTU_DEFAULT: usize = 1400;
const INTERVAL: u32 = 100;
const DEAD_LINK: u32 = 20;
const THRESH_INIT: u32 = 2;
const THRESH_MIN: u32 = 2;
const PROBE_INIT: u32 = 7_000;
const PROBE_LIMIT: u32 = 120_000;
const FASTACK_LIMIT: u32 = 5;
const ASK_SEND: u8 = 1;
const ASK_TELL: u8 = 2;
/// Segment buffers kept for reuse.
const POOL_MAX: usize = 256;

/// `a - b` as a signed distance on the wrapping 32-bit clock.
fn diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// One segment in a queue or buffer.
struct Seg {
    frg: u8,
    ts: u32,
    sn: u32,
    resend_at: u32,
    rto: u32,
    fastack: u32,
    xmit: u32,
    data: Vec<u8>,
}

/// Why [`Kcp::send`] refused data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// In message mode a message needs more than 255 fragments or more
    /// than the receive window: make it smaller or use stream mode.
    TooLarge,
}

/// Why [`Kcp::input`] stopped reading a datagram (segments before the bad
/// one were used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputError {
    /// A segment of another conversation.
    WrongConv(u32),
    /// A malformed segment.
    Malformed(Malformed),
}

/// One KCP conversation (`ikcpcb` in the reference).
pub struct Kcp {
    conv: u32,
    mtu: usize,
    mss: usize,
    stream: bool,
    snd_una: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    ssthresh: u32,
    rx_rttval: i32,
    rx_srtt: i32,
    rx_rto: u32,
    rx_minrto: u32,
    snd_wnd: u16,
    rcv_wnd: u16,
    rmt_wnd: u16,
    cwnd: u32,
    incr: usize,
    probe: u8,
    current: u32,
    interval: u32,
    ts_flush: u32,
    nodelay: u32,
    updated: bool,
    ts_probe: u32,
    probe_wait: u32,
    dead_link: u32,
    fastresend: u32,
    fastlimit: u32,
    nocwnd: bool,
    dead: bool,
    /// Retransmissions after a timeout, over the conversation's life.
    pub retransmits: u64,
    snd_queue: VecDeque<Seg>,
    snd_buf: VecDeque<Seg>,
    rcv_queue: VecDeque<Seg>,
    rcv_buf: VecDeque<Seg>,
    acks: Vec<(u32, u32)>,
    out: Vec<u8>,
    pool: Vec<Vec<u8>>,
}

impl Kcp {
    /// A conversation with the reference defaults: MTU 1400, windows
    /// 32/128, interval 100 ms, normal (not nodelay) mode, message mode.
    pub fn new(conv: u32) -> Kcp {
        Kcp {
            conv,
            mtu: MTU_DEFAULT,
            mss: MTU_DEFAULT - OVERHEAD,
            stream: false,
            snd_una: 0,
            snd_nxt: 0,
            rcv_nxt: 0,
            ssthresh: THRESH_INIT,
            rx_rttval: 0,
            rx_srtt: 0,
            rx_rto: RTO_DEFAULT,
            rx_minrto: RTO_MIN,
            snd_wnd: WND_SND,
            rcv_wnd: WND_RCV,
            rmt_wnd: WND_RCV,
            cwnd: 0,
            incr: 0,
            probe: 0,
            current: 0,
            interval: INTERVAL,
            ts_flush: INTERVAL,
            nodelay: 0,
            updated: false,
            ts_probe: 0,
            probe_wait: 0,
            dead_link: DEAD_LINK,
            fastresend: 0,
            fastlimit: FASTACK_LIMIT,
            nocwnd: false,
            dead: false,
            retransmits: 0,
            snd_queue: VecDeque::new(),
            snd_buf: VecDeque::new(),
            rcv_queue: VecDeque::new(),
            rcv_buf: VecDeque::new(),
            acks: Vec::new(),
            out: Vec::with_capacity(MTU_DEFAULT),
            pool: Vec::new(),
        }
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.conv
    }

    /// Stream mode: `send` fills the last queued segment before starting a
    /// new one and message boundaries are not kept (all fragments 0).
    pub fn set_stream(&mut self, on: bool) {
        self.stream = on;
    }

    /// The largest datagram this side sends (default 1400). At least 50.
    pub fn set_mtu(&mut self, mtu: usize) -> bool {
        if !(50..=65_507).contains(&mtu) {
            return false;
        }
        self.mtu = mtu;
        self.mss = mtu - OVERHEAD;
        true
    }

    /// Bytes of data per segment.
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// Send and receive windows in segments (0 keeps one). The receive
    /// window is at least 128, as in the reference.
    pub fn set_window(&mut self, snd: u16, rcv: u16) {
        if snd > 0 {
            self.snd_wnd = snd;
        }
        if rcv > 0 {
            self.rcv_wnd = rcv.max(WND_RCV);
        }
    }

    /// The reference's `ikcp_nodelay`: `nodelay` 0 normal, 1 fast RTO
    /// growth and a 30 ms RTO floor, 2 RTO grows by half the current RTO;
    /// `interval` between flushes in ms (10..=5000); `resend` fast-resend
    /// after that many later ACKs (0 off); `nocwnd` ignores congestion
    /// control.
    pub fn set_nodelay(&mut self, nodelay: u32, interval: u32, resend: u32, nocwnd: bool) {
        self.nodelay = nodelay;
        self.rx_minrto = if nodelay > 0 {
            RTO_NODELAY_MIN
        } else {
            RTO_MIN
        };
        self.interval = interval.clamp(10, 5000);
        self.fastresend = resend;
        self.nocwnd = nocwnd;
    }

    /// Retransmissions of one segment after which the link is declared
    /// dead ([`is_dead`](Self::is_dead)). Default 20.
    pub fn set_dead_link(&mut self, n: u32) {
        self.dead_link = n.max(1);
    }

    /// A segment was retransmitted `dead_link` times without an ACK.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Segments queued or in flight, not yet acknowledged.
    pub fn waiting(&self) -> usize {
        self.snd_queue.len() + self.snd_buf.len()
    }

    /// Nothing for [`update`](Self::update) to do until a datagram comes or
    /// data is sent: nothing queued, in flight or to acknowledge, no window
    /// probe due. A quiet session needs no timer.
    pub fn is_quiet(&self) -> bool {
        self.snd_queue.is_empty()
            && self.snd_buf.is_empty()
            && self.acks.is_empty()
            && self.probe == 0
            && self.rmt_wnd != 0
    }

    /// Give back the memory an idle conversation keeps for reuse (the
    /// datagram being built, spare segment buffers, empty queues'
    /// capacity): what a busy conversation keeps, a quiet one need not.
    /// The next send or input allocates again.
    pub fn release_buffers(&mut self) {
        self.out = Vec::new();
        self.pool = Vec::new();
        self.acks.shrink_to_fit();
        self.snd_queue.shrink_to_fit();
        self.snd_buf.shrink_to_fit();
        self.rcv_queue.shrink_to_fit();
        self.rcv_buf.shrink_to_fit();
    }

    /// Received data waits in the engine (whole or not).
    pub fn has_data(&self) -> bool {
        !self.rcv_queue.is_empty()
    }

    /// Send a window probe (WASK) at the next flush: any KCP peer answers
    /// with its window (WINS), which makes it a wire-compatible ping.
    pub fn ask_window(&mut self) {
        self.probe |= ASK_SEND;
    }

    /// The flush interval in ms.
    pub fn interval(&self) -> u32 {
        self.interval
    }

    fn take_buf(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_default()
    }

    fn give_back(&mut self, mut data: Vec<u8>) {
        if self.pool.len() < POOL_MAX {
            data.clear();
            self.pool.push(data);
        }
    }

    fn new_seg(&mut self, frg: u8, bytes: &[u8]) -> Seg {
        let mut data = self.take_buf();
        data.extend_from_slice(bytes);
        Seg {
            frg,
            ts: 0,
            sn: 0,
            resend_at: 0,
            rto: 0,
            fastack: 0,
            xmit: 0,
            data,
        }
    }

    /// Queue `data` for sending: all of it (stream mode), or as one message
    /// of at most 255 fragments that fits the receive window.
    pub fn send(&mut self, mut data: &[u8]) -> Result<(), SendError> {
        if self.stream {
            if let Some(last) = self.snd_queue.back_mut() {
                let room = self.mss.saturating_sub(last.data.len());
                let n = room.min(data.len());
                last.data.extend_from_slice(&data[..n]);
                data = &data[n..];
            }
            while !data.is_empty() {
                let n = data.len().min(self.mss);
                let seg = self.new_seg(0, &data[..n]);
                self.snd_queue.push_back(seg);
                data = &data[n..];
            }
            return Ok(());
        }
        let count = data.len().div_ceil(self.mss).max(1);
        if count > 255 || count >= usize::from(WND_RCV) {
            return Err(SendError::TooLarge);
        }
        for i in 0..count {
            let n = data.len().min(self.mss);
            let seg = self.new_seg((count - i - 1) as u8, &data[..n]);
            self.snd_queue.push_back(seg);
            data = &data[n..];
        }
        Ok(())
    }

    /// Bytes of the next whole message in the receive queue, if it has all
    /// its fragments.
    fn peek_size(&self) -> Option<usize> {
        let first = self.rcv_queue.front()?;
        if first.frg == 0 {
            return Some(first.data.len());
        }
        if self.rcv_queue.len() < usize::from(first.frg) + 1 {
            return None;
        }
        let mut size = 0;
        for s in &self.rcv_queue {
            size += s.data.len();
            if s.frg == 0 {
                return Some(size);
            }
        }
        None
    }

    /// Append the next whole received message to `out`; its length, or
    /// `None` when no whole message is ready.
    pub fn recv(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        self.recv_with(|d| out.extend_from_slice(d))
    }

    /// [`recv`](Self::recv) into any sink: `sink` gets the message's
    /// fragments in order.
    pub fn recv_with(&mut self, mut sink: impl FnMut(&[u8])) -> Option<usize> {
        let size = self.peek_size()?;
        let was_full = self.rcv_queue.len() >= usize::from(self.rcv_wnd);
        while let Some(seg) = self.rcv_queue.pop_front() {
            sink(&seg.data);
            let last = seg.frg == 0;
            self.give_back(seg.data);
            if last {
                break;
            }
        }
        self.move_buf();
        if was_full && self.rcv_queue.len() < usize::from(self.rcv_wnd) {
            // The window reopened: tell the peer at the next flush rather
            // than wait for its probe.
            self.probe |= ASK_TELL;
        }
        Some(size)
    }

    /// Move in-order segments from the receive buffer to the queue.
    fn move_buf(&mut self) {
        while let Some(seg) = self.rcv_buf.front() {
            if seg.sn != self.rcv_nxt || self.rcv_queue.len() >= usize::from(self.rcv_wnd) {
                break;
            }
            let seg = self.rcv_buf.pop_front().expect("front exists");
            self.rcv_queue.push_back(seg);
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
        }
    }

    fn shrink_buf(&mut self) {
        self.snd_una = self.snd_buf.front().map_or(self.snd_nxt, |s| s.sn);
    }

    fn parse_ack(&mut self, sn: u32) {
        if diff(sn, self.snd_una) < 0 || diff(sn, self.snd_nxt) >= 0 {
            return;
        }
        if let Some(i) = self.snd_buf.iter().position(|s| s.sn == sn) {
            let seg = self.snd_buf.remove(i).expect("index from position");
            self.give_back(seg.data);
        }
    }

    fn parse_una(&mut self, una: u32) {
        while let Some(seg) = self.snd_buf.front() {
            if diff(una, seg.sn) <= 0 {
                break;
            }
            let seg = self.snd_buf.pop_front().expect("front exists");
            self.give_back(seg.data);
        }
    }

    fn parse_fastack(&mut self, sn: u32) {
        if diff(sn, self.snd_una) < 0 || diff(sn, self.snd_nxt) >= 0 {
            return;
        }
        for seg in &mut self.snd_buf {
            if diff(sn, seg.sn) < 0 {
                break;
            }
            if sn != seg.sn {
                seg.fastack += 1;
            }
        }
    }

    fn update_ack(&mut self, rtt: i32) {
        // A peer's timestamp is whatever it says: bound the sample so the
        // averages below cannot overflow.
        let rtt = rtt.min(RTO_MAX as i32 * 10);
        if self.rx_srtt == 0 {
            self.rx_srtt = rtt;
            self.rx_rttval = rtt / 2;
        } else {
            let delta = (rtt - self.rx_srtt).abs();
            self.rx_rttval = (3 * self.rx_rttval + delta) / 4;
            self.rx_srtt = ((7 * self.rx_srtt + rtt) / 8).max(1);
        }
        let rto = self.rx_srtt as u32 + self.interval.max(4 * self.rx_rttval as u32);
        self.rx_rto = rto.clamp(self.rx_minrto, RTO_MAX);
    }

    fn parse_data(&mut self, h: &Header, data: &[u8]) {
        let sn = h.sn;
        if diff(sn, self.rcv_nxt.wrapping_add(u32::from(self.rcv_wnd))) >= 0
            || diff(sn, self.rcv_nxt) < 0
        {
            return;
        }
        // Find the place from the back: arrivals are mostly in order.
        let mut at = self.rcv_buf.len();
        let mut repeat = false;
        for (i, s) in self.rcv_buf.iter().enumerate().rev() {
            if s.sn == sn {
                repeat = true;
                break;
            }
            if diff(sn, s.sn) > 0 {
                at = i + 1;
                break;
            }
            at = i;
        }
        if !repeat {
            let mut seg = self.new_seg(h.frg, data);
            seg.sn = sn;
            seg.ts = h.ts;
            self.rcv_buf.insert(at, seg);
        }
        self.move_buf();
    }

    /// Feed one received datagram. Segments up to a bad one are used; the
    /// error names the first bad one.
    pub fn input(&mut self, mut buf: &[u8]) -> Result<(), InputError> {
        let prev_una = self.snd_una;
        let mut max_ack: Option<u32> = None;
        if buf.len() < OVERHEAD {
            return Err(InputError::Malformed(Malformed::Truncated));
        }
        let mut result = Ok(());
        while buf.len() >= OVERHEAD {
            let (h, data) = match Header::decode(buf) {
                Ok(x) => x,
                Err(e) => {
                    result = Err(InputError::Malformed(e));
                    break;
                }
            };
            if h.conv != self.conv {
                result = Err(InputError::WrongConv(h.conv));
                break;
            }
            buf = &buf[OVERHEAD + data.len()..];
            self.rmt_wnd = h.wnd;
            self.parse_una(h.una);
            self.shrink_buf();
            match h.cmd {
                Cmd::Ack => {
                    let rtt = diff(self.current, h.ts);
                    if rtt >= 0 {
                        self.update_ack(rtt);
                    }
                    self.parse_ack(h.sn);
                    self.shrink_buf();
                    max_ack = Some(match max_ack {
                        Some(m) if diff(h.sn, m) <= 0 => m,
                        _ => h.sn,
                    });
                }
                Cmd::Push => {
                    if diff(h.sn, self.rcv_nxt.wrapping_add(u32::from(self.rcv_wnd))) < 0 {
                        self.acks.push((h.sn, h.ts));
                        self.parse_data(&h, data);
                    }
                }
                Cmd::WindowAsk => self.probe |= ASK_TELL,
                Cmd::WindowTell => {}
            }
        }
        if let Some(sn) = max_ack {
            self.parse_fastack(sn);
        }
        if diff(self.snd_una, prev_una) > 0 && self.cwnd < u32::from(self.rmt_wnd) {
            let mss = self.mss;
            if self.cwnd < self.ssthresh {
                self.cwnd += 1;
                self.incr += mss;
            } else {
                self.incr = self.incr.max(mss);
                self.incr += mss * mss / self.incr + mss / 16;
                if (self.cwnd as usize + 1) * mss <= self.incr {
                    self.cwnd = self.incr.div_ceil(mss) as u32;
                }
            }
            if self.cwnd > u32::from(self.rmt_wnd) {
                self.cwnd = u32::from(self.rmt_wnd);
                self.incr = usize::from(self.rmt_wnd) * mss;
            }
        }
        result
    }

    fn wnd_unused(&self) -> u16 {
        self.rcv_wnd
            .saturating_sub(self.rcv_queue.len().min(usize::from(u16::MAX)) as u16)
    }

    /// Add one segment to the datagram being built, sending the datagram
    /// first if the segment would not fit.
    fn put(&mut self, h: &Header, data: &[u8], output: &mut dyn FnMut(&[u8])) {
        if !self.out.is_empty() && self.out.len() + OVERHEAD + data.len() > self.mtu {
            output(&self.out);
            self.out.clear();
        }
        h.encode(&mut self.out);
        self.out.extend_from_slice(data);
    }

    /// Send what is due now: pending ACKs, window probes, new segments the
    /// windows allow, and retransmissions.
    pub fn flush(&mut self, output: &mut dyn FnMut(&[u8])) {
        if !self.updated {
            return;
        }
        let current = self.current;
        let mut h = Header {
            conv: self.conv,
            cmd: Cmd::Ack,
            frg: 0,
            wnd: self.wnd_unused(),
            ts: 0,
            sn: 0,
            una: self.rcv_nxt,
            len: 0,
        };
        let acks = std::mem::take(&mut self.acks);
        for &(sn, ts) in &acks {
            h.sn = sn;
            h.ts = ts;
            self.put(&h, &[], output);
        }
        self.acks = acks;
        self.acks.clear();

        if self.rmt_wnd == 0 {
            if self.probe_wait == 0 {
                self.probe_wait = PROBE_INIT;
                self.ts_probe = current.wrapping_add(self.probe_wait);
            } else if diff(current, self.ts_probe) >= 0 {
                self.probe_wait = self.probe_wait.max(PROBE_INIT);
                self.probe_wait = (self.probe_wait + self.probe_wait / 2).min(PROBE_LIMIT);
                self.ts_probe = current.wrapping_add(self.probe_wait);
                self.probe |= ASK_SEND;
            }
        } else {
            self.ts_probe = 0;
            self.probe_wait = 0;
        }
        h.sn = 0;
        h.ts = 0;
        if self.probe & ASK_SEND != 0 {
            h.cmd = Cmd::WindowAsk;
            self.put(&h, &[], output);
        }
        if self.probe & ASK_TELL != 0 {
            h.cmd = Cmd::WindowTell;
            self.put(&h, &[], output);
        }
        self.probe = 0;

        let mut cwnd = u32::from(self.snd_wnd.min(self.rmt_wnd));
        if !self.nocwnd {
            cwnd = cwnd.min(self.cwnd);
        }
        while diff(self.snd_nxt, self.snd_una.wrapping_add(cwnd)) < 0 {
            let Some(mut seg) = self.snd_queue.pop_front() else {
                break;
            };
            seg.ts = current;
            seg.sn = self.snd_nxt;
            seg.resend_at = current;
            seg.rto = self.rx_rto;
            seg.fastack = 0;
            seg.xmit = 0;
            self.snd_nxt = self.snd_nxt.wrapping_add(1);
            self.snd_buf.push_back(seg);
        }

        let resent = if self.fastresend > 0 {
            self.fastresend
        } else {
            u32::MAX
        };
        let rtomin = if self.nodelay == 0 {
            self.rx_rto >> 3
        } else {
            0
        };
        let (mut change, mut lost) = (false, false);
        h.cmd = Cmd::Push;
        // Walk by index: `put` needs `self` while a segment is borrowed, so
        // the segment's bytes are taken out and put back around it.
        for i in 0..self.snd_buf.len() {
            let seg = &mut self.snd_buf[i];
            let mut send = false;
            if seg.xmit == 0 {
                send = true;
                seg.xmit += 1;
                seg.rto = self.rx_rto;
                seg.resend_at = current.wrapping_add(seg.rto + rtomin);
            } else if diff(current, seg.resend_at) >= 0 {
                send = true;
                seg.xmit += 1;
                self.retransmits += 1;
                if self.nodelay == 0 {
                    seg.rto += seg.rto.max(self.rx_rto);
                } else {
                    let step = if self.nodelay < 2 {
                        seg.rto
                    } else {
                        self.rx_rto
                    };
                    seg.rto += step / 2;
                }
                seg.rto = seg.rto.min(RTO_MAX * 2);
                seg.resend_at = current.wrapping_add(seg.rto);
                lost = true;
            } else if seg.fastack >= resent && (seg.xmit <= self.fastlimit || self.fastlimit == 0) {
                send = true;
                seg.xmit += 1;
                seg.fastack = 0;
                seg.resend_at = current.wrapping_add(seg.rto);
                change = true;
            }
            if send {
                seg.ts = current;
                h.frg = seg.frg;
                h.ts = seg.ts;
                h.sn = seg.sn;
                h.len = seg.data.len() as u32;
                if seg.xmit >= self.dead_link {
                    self.dead = true;
                }
                let data = std::mem::take(&mut seg.data);
                self.put(&h, &data, output);
                self.snd_buf[i].data = data;
            }
        }
        if !self.out.is_empty() {
            output(&self.out);
            self.out.clear();
        }
        if change {
            let inflight = self.snd_nxt.wrapping_sub(self.snd_una);
            self.ssthresh = (inflight / 2).max(THRESH_MIN);
            self.cwnd = self.ssthresh.saturating_add(resent);
            self.incr = self.cwnd as usize * self.mss;
        }
        if lost {
            self.ssthresh = (cwnd / 2).max(THRESH_MIN);
            self.cwnd = 1;
            self.incr = self.mss;
        }
        if self.cwnd < 1 {
            self.cwnd = 1;
            self.incr = self.mss;
        }
    }

    /// Advance the clock to `now_ms` and flush if an interval has passed.
    pub fn update(&mut self, now_ms: u32, output: &mut dyn FnMut(&[u8])) {
        self.current = now_ms;
        if !self.updated {
            self.updated = true;
            self.ts_flush = now_ms;
        }
        let mut slap = diff(now_ms, self.ts_flush);
        if !(-10_000..10_000).contains(&slap) {
            self.ts_flush = now_ms;
            slap = 0;
        }
        if slap >= 0 {
            self.ts_flush = self.ts_flush.wrapping_add(self.interval);
            if diff(now_ms, self.ts_flush) >= 0 {
                self.ts_flush = now_ms.wrapping_add(self.interval);
            }
            self.flush(output);
        }
    }

    /// Set the clock without flushing (before an immediate [`flush`](Self::flush)).
    pub fn set_now(&mut self, now_ms: u32) {
        self.current = now_ms;
        if !self.updated {
            self.updated = true;
            self.ts_flush = now_ms.wrapping_add(self.interval);
        }
    }

    /// Milliseconds from `now_ms` until [`update`](Self::update) has work:
    /// the next flush or the earliest retransmission.
    pub fn next_in(&self, now_ms: u32) -> u32 {
        if !self.updated {
            return 0;
        }
        let to_flush = diff(self.ts_flush, now_ms);
        if !(-10_000..10_000).contains(&to_flush) || to_flush <= 0 {
            return 0;
        }
        let mut next = to_flush as u32;
        for seg in &self.snd_buf {
            let d = diff(seg.resend_at, now_ms);
            if d <= 0 {
                return 0;
            }
            next = next.min(d as u32);
        }
        next.min(self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two engines joined by in-memory "wires" that drop every `drop_every`-th
    /// datagram.
    fn pump(a: &mut Kcp, b: &mut Kcp, now: u32, drop_every: usize, counter: &mut usize) {
        let mut ab = Vec::new();
        let mut ba = Vec::new();
        a.update(now, &mut |d| ab.push(d.to_vec()));
        b.update(now, &mut |d| ba.push(d.to_vec()));
        for d in ab {
            *counter += 1;
            if drop_every == 0 || !(*counter).is_multiple_of(drop_every) {
                let _ = b.input(&d);
            }
        }
        for d in ba {
            *counter += 1;
            if drop_every == 0 || !(*counter).is_multiple_of(drop_every) {
                let _ = a.input(&d);
            }
        }
    }

    fn transfer(stream: bool, nodelay: bool, drop_every: usize) {
        let (mut a, mut b) = (Kcp::new(7), Kcp::new(7));
        for k in [&mut a, &mut b] {
            k.set_stream(stream);
            if nodelay {
                k.set_nodelay(1, 10, 2, true);
            }
        }
        let msgs: Vec<Vec<u8>> = (0..200u32)
            .map(|i| (0..(i * 97 % 5000 + 1)).map(|j| (i ^ j) as u8).collect())
            .collect();
        for m in &msgs {
            a.send(m).unwrap();
        }
        let want: Vec<u8> = msgs.concat();
        let mut got = Vec::new();
        let mut counter = 0;
        let mut now = 0;
        while got.len() < want.len() && now < 600_000 {
            now += 10;
            pump(&mut a, &mut b, now, drop_every, &mut counter);
            while let Some(n) = b.recv(&mut got) {
                assert!(n > 0);
            }
        }
        assert_eq!(got.len(), want.len(), "stalled at {now} ms");
        assert!(got == want, "bytes differ");
        assert!(!a.is_dead());
    }

    #[test]
    fn messages_arrive_in_order() {
        transfer(false, false, 0);
    }

    #[test]
    fn stream_arrives_in_order_through_loss() {
        transfer(true, true, 7);
        transfer(true, false, 5);
    }

    #[test]
    fn message_mode_refuses_what_cannot_fit() {
        let mut k = Kcp::new(1);
        assert_eq!(k.send(&vec![0; 1376 * 200]), Err(SendError::TooLarge));
        assert_eq!(k.send(&[]), Ok(()));
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        let mut k = Kcp::new(1);
        let mut rng = 0x1234_5678u32;
        for len in 0..2000 {
            let d: Vec<u8> = (0..len % 300)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 17;
                    rng ^= rng << 5;
                    rng as u8
                })
                .collect();
            let _ = k.input(&d);
        }
        let mut h = Vec::new();
        Header {
            conv: 1,
            cmd: Cmd::Push,
            frg: 255,
            wnd: 65535,
            ts: u32::MAX,
            sn: u32::MAX,
            una: u32::MAX,
            len: 0,
        }
        .encode(&mut h);
        assert_eq!(k.input(&h), Ok(()));
        k.update(1, &mut |_| {});
        assert_eq!(k.recv(&mut Vec::new()), None);
    }
}
