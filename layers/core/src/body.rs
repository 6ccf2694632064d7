//! Reading HTTP request bodies up to a limit, for the front ends.

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// The connection failed while the body was read.
    Read(crate::BoxError),
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
        let Ok(data) = frame.map_err(|e| BodyError::Read(e.into()))?.into_data() else {
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
}
