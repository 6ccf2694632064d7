//! Reading HTTP request bodies up to a limit and within a time, for the front ends.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// The client did not send it in time (see [`TimedBody`]).
    TimedOut(Duration),
    /// The connection failed while the body was read.
    Read(crate::BoxError),
}

/// The error a [`TimedBody`] fails with once its time is up.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimeout(pub Duration);

pin_project_lite::pin_project! {
    /// A request body that fails with [`BodyTimeout`] when the client stalls: the time
    /// starts the first time a frame is not ready, so a body that came with its headers
    /// (every small one) never arms a timer.
    ///
    /// ```
    /// # tokio_test_block_on(async {
    /// use http_body_util::BodyExt;
    /// use mcp_gateway_core::body::TimedBody;
    /// let body = TimedBody::new(http_body_util::Full::new(bytes::Bytes::from("hi")), std::time::Duration::from_secs(1));
    /// assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"hi");
    /// # });
    /// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
    /// # }
    /// ```
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        within: Duration,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<B> TimedBody<B> {
    /// `inner`, which must arrive within `within` once it starts to wait.
    pub fn new(inner: B, within: Duration) -> Self {
        Self {
            inner,
            within,
            timer: None,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::BoxError>,
{
    type Data = Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(f) => Poll::Ready(f.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let within = *this.within;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(within)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(within))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads a body of at most `limit` bytes. A body that arrives as one data frame (every
/// small body) is returned as it came: no copy, and none of the buffer list that a
/// collecting reader builds for any body.
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::BoxError>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(read_error)?.into_data() else {
            continue;
        };
        let held = first.as_ref().map_or(joined.len(), Bytes::len);
        if held + data.len() > limit {
            return Err(BodyError::TooLarge);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            Some(f) => {
                joined.reserve(f.len() + data.len());
                joined.extend_from_slice(&f);
                joined.extend_from_slice(&data);
            }
            None => joined.extend_from_slice(&data),
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

/// True when `json` nests arrays and objects more than `max` levels deep (string contents
/// are skipped). The gateway passes arguments through without parsing them into a tree, so
/// nothing else stops `[[[[…` from reaching a server whose parser recurses.
///
/// ```
/// use mcp_gateway_core::body::nested_deeper_than;
/// assert!(!nested_deeper_than(br#"{"a":[{"b":"[[[["}]}"#, 3));
/// assert!(nested_deeper_than(b"[[[[1]]]]", 3));
/// ```
pub fn nested_deeper_than(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn read_error(e: impl Into<crate::BoxError>) -> BodyError {
    let e = e.into();
    // axum's `Body` wraps the error of the body it was made from.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<BodyTimeout>() {
            return BodyError::TimedOut(t.0);
        }
        cause = c.source();
    }
    BodyError::Read(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Empty, Full, StreamBody};

    type Frames = StreamBody<
        futures::stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::io::Error>>>,
    >;

    fn chunked(parts: &[&'static str]) -> Frames {
        let frames: Vec<_> = parts
            .iter()
            .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn reads_one_frame_or_many_up_to_the_limit() {
        let one = read_limited(Full::new(Bytes::from("abc")), 3)
            .await
            .unwrap();
        assert_eq!(&one[..], b"abc");
        let many = read_limited(chunked(&["ab", "", "cd", "e"]), 5)
            .await
            .unwrap();
        assert_eq!(&many[..], b"abcde");
        let empty = read_limited(Empty::<Bytes>::new(), 0).await.unwrap();
        assert!(empty.is_empty());
        assert!(matches!(
            read_limited(Full::new(Bytes::from("abcd")), 3).await,
            Err(BodyError::TooLarge)
        ));
        assert!(matches!(
            read_limited(chunked(&["ab", "cd"]), 3).await,
            Err(BodyError::TooLarge)
        ));
        assert!(matches!(
            read_limited(chunked(&["ab", "c", "d"]), 3).await,
            Err(BodyError::TooLarge)
        ));
        let failing = StreamBody::new(futures::stream::iter(vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"a"))),
            Err(std::io::Error::other("reset")),
        ]));
        assert!(matches!(
            read_limited(failing, 10).await,
            Err(BodyError::Read(_))
        ));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let stalled = StreamBody::new(futures::stream::pending::<
            Result<http_body::Frame<Bytes>, std::io::Error>,
        >());
        let timed = TimedBody::new(stalled, Duration::from_millis(20));
        assert!(matches!(
            read_limited(timed, 10).await,
            Err(BodyError::TimedOut(d)) if d == Duration::from_millis(20)
        ));
        // Through axum's body, as the front ends see it.
        let stalled = StreamBody::new(futures::stream::pending::<
            Result<http_body::Frame<Bytes>, std::io::Error>,
        >());
        let boxed = http_body_util::combinators::UnsyncBoxBody::new(TimedBody::new(
            stalled,
            Duration::from_millis(20),
        ));
        assert!(matches!(
            read_limited(boxed, 10).await,
            Err(BodyError::TimedOut(_))
        ));
    }
}
