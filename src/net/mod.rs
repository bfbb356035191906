//! Stream servers and connections built on the reactor.

mod addr;
pub mod blocking;
mod buffer;
mod conn;
mod handler;
pub mod process;
mod server;

pub use addr::Addr;
pub use buffer::Buffer;
pub use conn::{Closed, Conn, ConnConfig, ConnHandle};
pub use handler::{CloseReason, EventHandler};
pub use server::{listen, somaxconn, AcceptMode, Balance, Server, ServerBuilder};
