//! The ecosystem's I/O traits on the task sockets: tokio's
//! `AsyncRead`/`AsyncWrite` (feature `tokio-io`) and futures-io's (feature
//! `futures-io`), for [`TcpStream`], [`UnixStream`] and their halves. Reads and writes go
//! through the same paths as the inherent methods, deadlines included;
//! flush only reports a send error seen so far (on the proactor writes
//! queue for the ring, which sends them without the task) and
//! shutdown/close sends FIN after what was written.

#[cfg(any(feature = "tokio-io", feature = "futures-io"))]
use std::io;
#[cfg(any(feature = "tokio-io", feature = "futures-io"))]
use std::pin::Pin;
#[cfg(any(feature = "tokio-io", feature = "futures-io"))]
use std::task::{Context, Poll};

#[cfg(any(feature = "tokio-io", feature = "futures-io"))]
use super::net::{OwnedReadHalf, OwnedWriteHalf, TcpStream, UnixStream};

#[cfg(feature = "tokio-io")]
mod tokio_traits {
    use super::*;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// A poll that filled `buf` (or failed), as `AsyncRead` reports it.
    fn filled(r: Poll<io::Result<usize>>) -> Poll<io::Result<()>> {
        r.map(|r| r.map(drop))
    }

    macro_rules! tokio_stream {
        ($t:ident) => {
            impl AsyncRead for $t {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &mut ReadBuf<'_>,
                ) -> Poll<io::Result<()>> {
                    filled($t::poll_read_buf(&self, cx, buf))
                }
            }

            impl AsyncWrite for $t {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    $t::poll_write(&self, cx, buf)
                }

                fn poll_write_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &[io::IoSlice<'_>],
                ) -> Poll<io::Result<usize>> {
                    $t::poll_write_vectored(&self, cx, bufs)
                }

                fn is_write_vectored(&self) -> bool {
                    true
                }

                fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    $t::poll_flush(&self, cx)
                }

                fn poll_shutdown(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                ) -> Poll<io::Result<()>> {
                    std::task::ready!($t::poll_flush(&self, cx))?;
                    Poll::Ready(self.shutdown(std::net::Shutdown::Write))
                }
            }
        };
    }
    tokio_stream!(TcpStream);
    tokio_stream!(UnixStream);

    impl AsyncRead for OwnedReadHalf {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            filled(OwnedReadHalf::poll_read_buf(&self, cx, buf))
        }
    }

    impl AsyncWrite for OwnedWriteHalf {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            OwnedWriteHalf::poll_write(&self, cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            OwnedWriteHalf::poll_flush(&self, cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            std::task::ready!(OwnedWriteHalf::poll_flush(&self, cx))?;
            Poll::Ready(self.shutdown())
        }
    }
}

#[cfg(feature = "futures-io")]
mod futures_traits {
    use super::*;
    use futures_io::{AsyncRead, AsyncWrite};

    macro_rules! futures_stream {
        ($t:ident) => {
            impl AsyncRead for $t {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &mut [u8],
                ) -> Poll<io::Result<usize>> {
                    $t::poll_read(&self, cx, buf)
                }
            }

            impl AsyncWrite for $t {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    $t::poll_write(&self, cx, buf)
                }

                fn poll_write_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &[io::IoSlice<'_>],
                ) -> Poll<io::Result<usize>> {
                    $t::poll_write_vectored(&self, cx, bufs)
                }

                fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    $t::poll_flush(&self, cx)
                }

                fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    std::task::ready!($t::poll_flush(&self, cx))?;
                    Poll::Ready(self.shutdown(std::net::Shutdown::Write))
                }
            }
        };
    }
    futures_stream!(TcpStream);
    futures_stream!(UnixStream);

    impl AsyncRead for OwnedReadHalf {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            OwnedReadHalf::poll_read(&self, cx, buf)
        }
    }

    impl AsyncWrite for OwnedWriteHalf {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            OwnedWriteHalf::poll_write(&self, cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            OwnedWriteHalf::poll_flush(&self, cx)
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            std::task::ready!(OwnedWriteHalf::poll_flush(&self, cx))?;
            Poll::Ready(self.shutdown())
        }
    }
}
