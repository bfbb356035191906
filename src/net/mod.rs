//! Stream servers and connections built on the reactor.

mod addr;
pub mod blocking;
mod buffer;
mod conn;
mod handler;
mod server;
pub mod udp;

pub use addr::Addr;
pub use buffer::Buffer;
pub use conn::{Closed, Conn, ConnConfig, ConnHandle};
pub use handler::{CloseReason, EventHandler};
pub use server::{
    listen, listen_with, prepare_unix_path, somaxconn, AcceptMode, Balance, ListenOptions, Server, ServerBuilder,
    DEFAULT_UNIX_MODE,
};
