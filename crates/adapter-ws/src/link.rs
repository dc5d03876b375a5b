//! Each accepted TCP connection's [`Link`]: what the sockets running over it need from
//! the transport below every protocol library, namely how many bytes have left for the
//! peer, a way to stop reading it (back-pressure), and a way to cut it for certain.
//!
//! socketioxide owns its sockets' queues and can only close one by queueing a packet on
//! the very queue that is full. Cutting the TCP stream underneath closes any socket, of
//! either protocol, whatever its queues hold: reads end, writes fail, every task of the
//! connection sees it and the client's `disconnect` / `close` fires.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// One TCP connection's shared state; the stream and the sockets over it hold it.
#[derive(Debug)]
pub struct Link {
    written: AtomicU64,
    cut: AtomicBool,
    reads_paused: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl Link {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            written: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            reads_paused: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
        })
    }

    /// Bytes handed to the operating system for the peer so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Cuts the connection: from now on reads see the end of the stream and writes
    /// fail, also those already waiting, so whatever protocol runs over it closes and
    /// drops the socket. Idempotent.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.reader.wake();
        self.writer.wake();
    }

    /// Whether [`Link::cut`] was called.
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    /// Stops reading from the peer until [`Link::resume_reads`]: what it sends waits
    /// in the operating system's buffers, then TCP slows the sender down.
    pub fn pause_reads(&self) {
        self.reads_paused.store(true, Ordering::Release);
    }

    /// Reads again after [`Link::pause_reads`].
    pub fn resume_reads(&self) {
        if self.reads_paused.swap(false, Ordering::AcqRel) {
            self.reader.wake();
        }
    }
}

/// A request's [`Link`], in its extensions as `ConnectInfo<ConnLink>` (the server's
/// accept loop puts it there).
#[derive(Debug, Clone)]
pub struct ConnLink(pub Arc<Link>);

/// A TCP stream that honours its [`Link`].
#[derive(Debug)]
pub struct LinkedStream {
    tcp: TcpStream,
    link: Arc<Link>,
}

impl LinkedStream {
    /// An accepted connection, with a fresh link. (Every idle socket keeps its link:
    /// it holds only what the sockets need.)
    pub fn new(tcp: TcpStream) -> Self {
        Self {
            tcp,
            link: Link::new(),
        }
    }

    /// Its link, to share with what runs over it.
    pub fn link(&self) -> Arc<Link> {
        Arc::clone(&self.link)
    }
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection cut by the server",
    )
}

impl AsyncRead for LinkedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let link = &self.link;
        link.reader.register(cx.waker());
        if link.is_cut() {
            // The end of the stream: every protocol closes on it.
            return Poll::Ready(Ok(()));
        }
        if link.reads_paused.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for LinkedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.link.writer.register(cx.waker());
        if self.link.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        let written = Pin::new(&mut self.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.link.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.link.writer.register(cx.waker());
        if self.link.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        let written = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            self.link.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.link.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.link.is_cut() {
            // Dropping the stream closes it; a cut peer gets no more bytes, not even a
            // polite shutdown that would wait on its window.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    async fn pair() -> (LinkedStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = TcpStream::connect(address);
        let (accepted, client) = tokio::join!(listener.accept(), client);
        let (tcp, _) = accepted.unwrap();
        (LinkedStream::new(tcp), client.unwrap())
    }

    #[tokio::test]
    async fn written_bytes_are_counted() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"hello").await.unwrap();
        let mut got = [0; 5];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        assert_eq!(server.link.written(), 5);
    }

    #[tokio::test]
    async fn a_cut_ends_a_waiting_read_and_fails_writes() {
        let (mut server, mut client) = pair().await;
        let link = Arc::clone(&server.link);
        let reading = tokio::spawn(async move {
            let mut buf = [0; 8];
            let n = server.read(&mut buf).await.unwrap();
            (n, server)
        });
        tokio::task::yield_now().await;
        link.cut();
        let (n, mut server) = reading.await.unwrap();
        assert_eq!(n, 0, "a cut link reads as the end of the stream");
        assert!(server.write_all(b"x").await.is_err());
        drop(server);
        // The peer sees the connection end.
        let mut buf = [0; 8];
        assert_eq!(client.read(&mut buf).await.unwrap_or(0), 0);
    }

    #[tokio::test]
    async fn a_cut_wakes_a_write_blocked_by_a_peer_that_does_not_read() {
        let (mut server, _client) = pair().await;
        let link = Arc::clone(&server.link);
        let writing = tokio::spawn(async move {
            let chunk = vec![0_u8; 64 * 1024];
            loop {
                if let Err(err) = server.write_all(&chunk).await {
                    return err;
                }
            }
        });
        // Wait until the peer's window is full and the writer is stuck.
        let mut last = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let now = link.written();
            if now == last && now > 0 {
                break;
            }
            last = now;
        }
        link.cut();
        let err = writing.await.unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn paused_reads_wait_until_resumed() {
        let (mut server, mut client) = pair().await;
        let link = Arc::clone(&server.link);
        link.pause_reads();
        client.write_all(b"ping").await.unwrap();
        let reading = tokio::spawn(async move {
            let mut buf = [0; 4];
            server.read_exact(&mut buf).await.unwrap();
            buf
        });
        // Data is waiting in the socket, yet the paused reader must not take it.
        let mut reading = reading;
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(200), &mut reading).await;
        assert!(waited.is_err(), "a paused link must not be read");
        link.resume_reads();
        assert_eq!(&reading.await.unwrap(), b"ping");
    }
}
