//! HTTP/1.1 (RFC 9110 / RFC 9112) on the framework's connections.
//!
//! * [`proto`]: the protocol as bytes: parsing, body framing and decoding,
//!   encoding, limits and [`HttpError`]. No sockets, no server types.
//! * [`conn`]: the per-connection state machine (keep-alive, pipelining,
//!   100-continue, timeouts, deferred responses in order).
//! * [`message`]: a request and its response as values ([`Request`],
//!   [`OwnedResponse`]).
//! * [`dispatch`]: [`HttpHandler`] on the framework's connections; hands
//!   requests to a [`Service`] with a [`Response`] (or [`Deferred`]) to fill.
//! * [`server`]: [`HttpBuilder`] / [`HttpServer`], the [`Router`] and
//!   [`StaticFiles`].

pub mod conn;
pub mod dispatch;
pub mod message;
pub mod proto;
pub mod server;

pub use conn::HttpConn;
pub use dispatch::{Deferred, HttpHandler, Response, Service};
pub use message::{OwnedResponse, Request};
pub use proto::{
    error_response, parse_head, parse_head_into, percent_decode, reason_phrase, write_chunk,
    write_continue, write_error_response, write_head, write_last_chunk, write_response,
    BodyDecoder, BodyFraming, BodyKind, ChunkedDecoder, DateCache, Framing, HeadParser, HttpError,
    Limits, Method, RequestHead, TargetForm,
};
pub use server::files::{
    content_type, etag_for, http_date, not_modified, parse_http_date, parse_range, resolve,
    FileRoot, RangeResult,
};
pub use server::router::{Handler, Router};
pub use server::static_files::StaticFiles;
pub use server::{HttpBuilder, HttpServer};
