pub mod body;
pub mod encode;
pub mod limits;
pub mod parse;

pub use super::HttpError;
