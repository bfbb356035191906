//! evnet: an event-driven network programming framework for Linux.
pub mod poller;
pub mod sys;
pub mod codec;
pub mod http;
pub mod resp;
pub mod reactor;
pub mod net;
pub mod echo;
