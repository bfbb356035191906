//! HTTP/1.1 (RFC 9110 / RFC 9112) on the framework's connections, in
//! layers along the seams of an HTTP/1 server connection (hyper's
//! `proto/h1` is the model), bottom up:
//!
//! * [`proto`]: the protocol as bytes: parsing, body framing and decoding,
//!   encoding, limits and [`HttpError`]. No sockets, no server types.
//! * [`message`]: a request and its response as values ([`Request`],
//!   [`OwnedResponse`], the response being built).
//! * [`conn`]: the per-connection state machine ([`HttpConn`]): bytes in,
//!   steps out (keep-alive, pipelining order, 100-continue, timeouts,
//!   deferred responses in order). No I/O.
//! * [`dispatch`]: [`HttpHandler`], the framework [`EventHandler`] that
//!   carries out the state machine's steps on a connection and hands each
//!   request to a [`Service`] with a [`Response`] to fill (now, or later
//!   through [`Deferred`]).
//! * [`server`]: what programs build on: [`Router`] (the service),
//!   [`StaticFiles`], and [`HttpBuilder`] / [`HttpServer`]. The builder
//!   serves only the routes and document root it is given; the demo pages
//!   of `evnet http` are the CLI's (`src/bin/evnet/http_demo.rs`).
//!
//! # Module DAG
//!
//! A module uses only the modules listed beside it, so there are no import
//! cycles; `mod.rs` files only declare and re-export (`server/mod.rs` also
//! holds the builder). Of the framework outside `http/`, `dispatch` alone
//! uses the connection API and `server` alone the server API.
//!
//! | module                | uses                                                     |
//! |-----------------------|----------------------------------------------------------|
//! | `proto::*`            | `proto` only (its own table is in [`proto`])             |
//! | `message`             | `proto`                                                  |
//! | `conn`                | `message`, `proto`                                       |
//! | `dispatch`            | `conn`, `message`, `proto`; `net::{Conn, ConnHandle, EventHandler, Buffer, CloseReason, Closed}`, `reactor::LoopStats` |
//! | `server::files`       | `proto`                                                  |
//! | `server::router`      | `dispatch`, `message`, `proto`                           |
//! | `server::static_files`| `server::files`, `dispatch`, `message`, `proto`          |
//! | `server` (`mod.rs`)   | `server::router`, `server::static_files`, `dispatch`, `proto`; `net::{Server, ServerBuilder}`, `reactor::EventLoop` |
//!
//! The layers, each using only layers below it (a module may skip a
//! layer; the table is exact):
//!
//! ```text
//!   server     mod.rs ─▶ router, static_files ─▶ files
//!      │
//!      ▼
//!   dispatch ─────▶ conn
//!      │              │
//!      ▼              ▼
//!   message ◀─────────┘
//!      │
//!      ▼
//!   proto      encode, body ─▶ parse ─▶ limits, error
//! ```
//!
//! Every cross-module path is in a `use` line, so the table can be checked
//! with `grep -rnE '^\s*use ' src/http | grep -v 'use std::'` (test
//! modules may also use modules beside them: `parse`'s tests use `body`).
//!
//! [`EventHandler`]: crate::net::EventHandler

pub mod conn;
pub mod dispatch;
pub mod message;
pub mod proto;
pub mod server;

pub use conn::HttpConn;
pub use dispatch::{Deferred, HttpHandler, Response, Service};
pub use message::INLINE_FILE_MAX;
pub use message::{OwnedResponse, Request};
pub use proto::{
    error_response, parse_head, parse_head_into, percent_decode, reason_phrase, write_chunk,
    write_continue, write_error_response, write_head, write_last_chunk, write_response,
    BodyDecoder, BodyFraming, BodyKind, ChunkedDecoder, DateCache, Framing, HeadParser, HttpError,
    Limits, Method, RequestHead, TargetForm,
};
pub use server::files::{
    content_type, etag_for, http_date, not_modified, parse_http_date, parse_range, resolve,
    FileRoot, RangeResult, Target,
};
pub use server::router::{Handler, Router};
pub use server::static_files::{
    StaticFiles, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_VALID, LISTING_MAX,
};
pub use server::{HttpBuilder, HttpServer};
