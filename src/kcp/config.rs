//! KCP settings: the engine profile of a session ([`KcpMode`]) and the
//! rest of [`KcpConfig`], shared by the server side
//! ([`ServerBuilder::kcp`](crate::net::ServerBuilder::kcp)) and
//! [`KcpClient`](super::KcpClient).

use std::time::Duration;

use super::engine::Kcp;
use crate::net::heartbeat::HeartbeatConfig;

/// The engine settings of a session: the reference's two common profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KcpMode {
    /// ikcp defaults: `nodelay(0, 40, 0, 0)` — RTO doubles, congestion
    /// window on, no fast resend.
    #[default]
    Normal,
    /// "Turbo": `nodelay(1, 10, 2, 1)` — 30 ms RTO floor, RTO grows by
    /// half, fast resend after 2 later ACKs, no congestion window.
    Fast,
}

/// Engine settings shared by the server and [`KcpClient`](super::KcpClient).
#[derive(Clone, Copy, Debug)]
pub struct KcpConfig {
    /// Normal or fast profile.
    pub mode: KcpMode,
    /// Largest datagram (default 1400).
    pub mtu: usize,
    /// Send window in segments (default 128).
    pub snd_wnd: u16,
    /// Receive window in segments (default 256).
    pub rcv_wnd: u16,
    /// Stream mode (default): a byte stream, like TCP. Off: message mode,
    /// `on_message` gets one whole message at a time.
    pub stream: bool,
    /// Retransmissions of one segment before the link is dead (default 20).
    pub dead_link: u32,
    /// A server session with nothing heard from its peer this long is
    /// closed ([`CloseReason::IdleTimeout`](crate::net::CloseReason)): KCP
    /// has no FIN, so this is how a vanished client ends (default 30 s).
    pub idle_timeout: Duration,
    /// Ping a quiet peer with window probes (WASK, which every KCP peer
    /// answers) and close the session when they go unanswered: a dead
    /// peer is noticed sooner than the idle timeout (default off).
    pub heartbeat: Option<HeartbeatConfig>,
}

impl Default for KcpConfig {
    fn default() -> Self {
        KcpConfig {
            mode: KcpMode::Normal,
            mtu: 1400,
            snd_wnd: 128,
            rcv_wnd: 256,
            stream: true,
            dead_link: 20,
            idle_timeout: Duration::from_secs(30),
            heartbeat: None,
        }
    }
}

impl KcpConfig {
    /// A new engine for `conv` with these settings.
    pub fn engine(&self, conv: u32) -> Kcp {
        let mut k = Kcp::new(conv);
        match self.mode {
            KcpMode::Normal => k.set_nodelay(0, 40, 0, false),
            KcpMode::Fast => k.set_nodelay(1, 10, 2, true),
        }
        k.set_mtu(self.mtu);
        k.set_window(self.snd_wnd, self.rcv_wnd);
        k.set_stream(self.stream);
        k.set_dead_link(self.dead_link);
        k
    }
}
