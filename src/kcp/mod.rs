//! KCP: reliable, ordered delivery over UDP that trades some bandwidth
//! for latency (aggressive retransmission, no slow start in fast mode),
//! wire-compatible with the reference C implementation (ikcp.c).
//!
//! - [`segment`]: the 24-byte segment header.
//! - [`engine`]: one conversation's protocol state ([`Kcp`]), sans I/O.
//! - [`config`]: the settings of a conversation ([`KcpConfig`], [`KcpMode`]).
//! - `receiver`: a KCP server's socket on one loop, which opens a session
//!   (a connection on the KCP path, with its own connected UDP socket) for
//!   each new peer. A KCP server is a
//!   [`ServerBuilder`](crate::net::ServerBuilder) with
//!   [`kcp`](crate::net::ServerBuilder::kcp) set: its handler is an
//!   ordinary [`EventHandler`](crate::net::EventHandler).
//! - [`client`]: a blocking client over one UDP socket ([`KcpClient`]).

pub mod client;
pub mod config;
pub mod engine;
pub(crate) mod receiver;
pub mod segment;

pub use client::KcpClient;
pub use config::{KcpConfig, KcpMode};
pub use engine::Kcp;
