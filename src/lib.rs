//! evnet: an event-driven network programming framework for Linux.
//!
//! Layers, bottom up (see DESIGN.md): [`sys`] (syscalls) -> [`poller`]
//! (epoll / poll / select) -> [`reactor`] (event loop, timers, tasks) ->
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
