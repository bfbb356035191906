//! evnet: an event-driven network programming framework for Linux.
//!
//! Layers, bottom up (see DESIGN.md): [`sys`] (syscalls) -> [`poller`]
//! (readiness: epoll / poll / select / busy-poll / sigio) and [`ring`]
//! (io_uring: polls and completions) -> [`reactor`] (event loop and its
//! driver, loop groups, timers, tasks) ->
//! [`net`] (servers, connections, connector) -> protocols ([`codec`],
//! [`http`], [`resp`], [`echo`]).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod codec;
pub mod echo;
pub mod http;
pub mod load;
pub mod net;
pub mod poller;
pub mod reactor;
pub mod resp;
pub mod ring;
pub mod sys;
