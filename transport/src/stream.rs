//! Streams of sockets, as in `tokio-stream`'s `wrappers`.

use crate::net::{TcpListener, TcpStream};
use futures_core::Stream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A [`Stream`] of the connections a [`TcpListener`] accepts, like
/// `tokio_stream::wrappers::TcpListenerStream`. It never ends by itself.
///
/// # Examples
/// ```
/// use futures_core::Stream;
/// use lonet_transport::{net::{TcpListener, TcpStream}, stream::TcpListenerStream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let mut incoming = TcpListenerStream::new(listener);
/// let _client = TcpStream::connect(addr).await?;
/// let conn = std::future::poll_fn(|cx| std::pin::Pin::new(&mut incoming).poll_next(cx)).await;
/// assert!(conn.unwrap().is_ok());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TcpListenerStream {
    inner: TcpListener,
}

impl TcpListenerStream {
    /// Wraps a listener.
    pub fn new(listener: TcpListener) -> Self {
        TcpListenerStream { inner: listener }
    }

    /// The listener back.
    pub fn into_inner(self) -> TcpListener {
        self.inner
    }
}

impl Stream for TcpListenerStream {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_accept(cx) {
            Poll::Ready(Ok((stream, _))) => Poll::Ready(Some(Ok(stream))),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsRef<TcpListener> for TcpListenerStream {
    fn as_ref(&self) -> &TcpListener {
        &self.inner
    }
}

impl AsMut<TcpListener> for TcpListenerStream {
    fn as_mut(&mut self) -> &mut TcpListener {
        &mut self.inner
    }
}
