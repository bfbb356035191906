//! evnet: an event-driven network programming framework for Linux.
pub mod poller;
pub mod sys;
pub mod codec;
pub mod http;
pub mod reactor;
pub mod resp;
