//! evnet: an event-driven network programming framework for Linux.
//!
//! Layers, bottom up (see ARCHITECTURE.md at the repository root): [`sys`]
//! (syscalls) -> [`poller`] (readiness: epoll / poll / select / busy-poll /
//! sigio) and [`ring`] (io_uring: polls and completions) -> [`reactor`]
//! (event loop and its driver, loop groups, timers, tasks) -> [`net`]
//! (servers, connections, connector) -> protocols ([`codec`], [`http`],
//! [`resp`], [`echo`]).
//!
//! Cargo features: `cli` (default) builds the `evnet` binary and turns on
//! `load`, the load generator (`load` module, with latency histograms). A
//! library that embeds evnet depends on it with `default-features = false`
//! and gets none of the binary's dependencies.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod codec;
pub mod echo;
pub mod http;
pub mod kcp;
#[cfg(feature = "load")]
pub mod load;
pub mod net;
pub mod poller;
pub mod reactor;
pub mod resp;
pub mod ring;
pub mod rt;
pub mod sys;
