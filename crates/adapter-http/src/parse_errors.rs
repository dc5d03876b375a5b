//! Problem bodies for the errors hyper answers by itself: a request hyper cannot parse
//! never reaches the router, and hyper answers it with an empty body (`400` malformed,
//! `414` a request target over 64 KiB, `431` headers too large). [`ProblemIo`]
//! wraps each connection so that such an answer leaves with the same RFC 9457 problem
//! body and `x-request-id` as every other error.
//!
//! hyper writes that answer alone on a connection it then closes, and its head has a
//! fingerprint no answer of ours has (`connection: close`, `content-length: 0`, no
//! `content-type`), so the write that carries it is recognised and replaced whole.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One connection: reads pass through; a write of hyper's own error answer is
/// replaced by the same answer with a problem body.
#[derive(Debug)]
pub struct ProblemIo<I> {
    inner: I,
    /// The replacement being written, how much of it is written, and how many bytes of
    /// hyper's to report once it all is.
    replacement: Option<(Vec<u8>, usize, usize)>,
}

/// The status of hyper's own error answer, if `head` is one: a whole response head
/// alone, with `connection: close`, `content-length: 0` and no `content-type`.
fn automatic_error(head: &[u8]) -> Option<StatusCode> {
    let text = std::str::from_utf8(head).ok()?;
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let status = match status {
        "400" => StatusCode::BAD_REQUEST,
        "414" => StatusCode::URI_TOO_LONG,
        "431" => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let lower = text.to_ascii_lowercase();
    let alone = lower.ends_with("\r\n\r\n") && lower.matches("\r\n\r\n").count() == 1;
    (alone
        && lower.contains("\r\nconnection: close\r\n")
        && lower.contains("\r\ncontent-length: 0\r\n")
        && !lower.contains("\r\ncontent-type:"))
    .then_some(status)
}

/// The answer to write instead of hyper's `head`: its status line and `date`, a fresh
/// request id, and the problem body.
fn replacement(head: &[u8], status: StatusCode) -> Vec<u8> {
    let detail = match status {
        StatusCode::URI_TOO_LONG => "the request target (path and query) is too long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request's header fields are too large",
        _ => "the request is not valid HTTP/1.1",
    };
    let body = crate::error::problem_document(status, detail);
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let date = lines.find(|line| line.to_ascii_lowercase().starts_with("date:"));
    let mut answer = format!(
        "{status_line}\r\nconnection: close\r\ncontent-type: application/problem+json\r\n\
         x-request-id: {}\r\ncontent-length: {}\r\n",
        uuid::Uuid::new_v4(),
        body.len()
    );
    if let Some(date) = date {
        answer.push_str(date);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    let mut answer = answer.into_bytes();
    answer.extend_from_slice(&body);
    answer
}

impl<I> ProblemIo<I> {
    /// Wraps one accepted connection.
    pub fn new(inner: I) -> Self {
        Self {
            inner,
            replacement: None,
        }
    }
}

impl<I: AsyncWrite + Unpin> ProblemIo<I> {
    /// Writes `buf`, or its replacement when it is hyper's own error answer.
    fn write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.replacement.is_none() {
            match automatic_error(buf) {
                Some(status) => self.replacement = Some((replacement(buf, status), 0, buf.len())),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        let Some((bytes, written, reported)) = self.replacement.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let reported = *reported;
        self.replacement = None;
        Poll::Ready(Ok(reported))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ProblemIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ProblemIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's own answer is a head without a body: one slice.
        let mut given = bufs.iter().filter(|b| !b.is_empty());
        match (given.next(), given.next()) {
            (Some(only), None) if self.replacement.is_some() || automatic_error(only).is_some() => {
                self.write(cx, only)
            }
            _ => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_414: &[u8] = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 08:48:09 GMT\r\n\r\n";

    #[test]
    fn only_hypers_own_error_answers_are_recognised() {
        assert_eq!(automatic_error(HYPER_414), Some(StatusCode::URI_TOO_LONG));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_error(ours), None);
        let with_body = [HYPER_414, b"HTTP/1.1 200 OK\r\n\r\n"].concat();
        assert_eq!(automatic_error(&with_body), None);
        let not_an_error =
            b"HTTP/1.1 204 No Content\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_error(not_an_error), None);
        assert_eq!(automatic_error(b"{\"status\": 414}"), None);
    }

    #[test]
    fn the_replacement_keeps_the_status_and_date_and_adds_a_problem_body() {
        let answer = String::from_utf8(replacement(HYPER_414, StatusCode::URI_TOO_LONG)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(
            head.contains("\r\ndate: Wed, 02 Dec 2026 08:48:09 GMT"),
            "{head}"
        );
        assert!(
            head.contains("\r\ncontent-type: application/problem+json\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 414);
        assert_eq!(problem["title"], "URI Too Long");
    }
}
