//! The one error type of the protocol layer.

/// A request that cannot be served, with the status code to answer with.
///
/// `reason` is a short, static, human-readable explanation (safe to show to
/// the client; it never contains request data). `close` tells the connection
/// glue that it must close the connection after sending the error response,
/// because the request framing can no longer be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct HttpError {
    /// Status code of the response to send (4xx/5xx).
    pub status: u16,
    /// Short static explanation, used as the error body.
    pub reason: &'static str,
    /// Whether the connection must be closed after responding.
    pub close: bool,
}

impl HttpError {
    /// Builds an error.
    pub const fn new(status: u16, reason: &'static str, close: bool) -> Self {
        HttpError {
            status,
            reason,
            close,
        }
    }

    /// An error that ends the connection (all request-parsing errors are).
    pub const fn fatal(status: u16, reason: &'static str) -> Self {
        HttpError::new(status, reason, true)
    }

    /// `408`, for the glue to send (best effort) when
    /// [`Limits::header_timeout`](super::Limits::header_timeout) expires on a partially received head.
    pub const REQUEST_TIMEOUT: HttpError = HttpError::fatal(408, "request head timeout");

    /// `404` for handlers (connection kept).
    pub const NOT_FOUND: HttpError = HttpError::new(404, "not found", false);

    /// `403` for handlers (connection kept).
    pub const FORBIDDEN: HttpError = HttpError::new(403, "forbidden", false);

    /// `405` for handlers (connection kept; add an `Allow` field yourself if
    /// building the response by hand).
    pub const METHOD_NOT_ALLOWED: HttpError = HttpError::new(405, "method not allowed", false);

    /// `500` for handlers (connection kept).
    pub const INTERNAL: HttpError = HttpError::new(500, "internal server error", false);
}
