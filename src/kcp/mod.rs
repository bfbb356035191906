//! KCP: reliable, ordered delivery over UDP that trades some bandwidth
//! for latency (aggressive retransmission, no slow start in fast mode),
//! wire-compatible with the reference C implementation (ikcp.c).
//!
//! - [`segment`]: the 24-byte segment header.
//! - [`engine`]: one conversation's protocol state ([`Kcp`]), sans I/O.
//! - [`server`]: sessions on evnet loops with the TCP handler's callbacks
//!   ([`KcpServer`], [`KcpHandler`], [`KcpConn`]).
//! - [`client`]: a blocking client over one UDP socket ([`KcpClient`]).

pub mod client;
pub mod engine;
pub mod segment;
pub mod server;

pub use client::KcpClient;
pub use engine::Kcp;
pub use server::{
    KcpConfig, KcpConn, KcpEcho, KcpHandler, KcpMode, KcpServer, KcpServerBuilder, KcpStats,
};
