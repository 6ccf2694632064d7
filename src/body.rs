//! Reading request bodies up to `maxBodyBytes`.

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// The connection failed while the body was read.
    Read(axum::Error),
}

/// Reads a body of at most `limit` bytes. A body that arrives as one data frame (every
/// small body) is returned as it came: no copy, and none of the buffer list that
/// `axum::body::to_bytes` builds for any body.
pub(crate) async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    use axum::body::HttpBody as _;
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else {
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
    use futures::stream;

    fn chunked(parts: &[&'static str]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        Body::from_stream(stream::iter(frames))
    }

    #[tokio::test]
    async fn reads_one_frame_or_many_up_to_the_limit() {
        let one = read_limited(Body::from("abc"), 3).await.unwrap();
        assert_eq!(&one[..], b"abc");
        let many = read_limited(chunked(&["ab", "", "cd", "e"]), 5)
            .await
            .unwrap();
        assert_eq!(&many[..], b"abcde");
        let empty = read_limited(Body::empty(), 0).await.unwrap();
        assert!(empty.is_empty());
        assert!(matches!(
            read_limited(Body::from("abcd"), 3).await,
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
        let failing = Body::from_stream(stream::iter([
            Ok(Bytes::from_static(b"a")),
            Err(std::io::Error::other("reset")),
        ]));
        assert!(matches!(
            read_limited(failing, 10).await,
            Err(BodyError::Read(_))
        ));
    }
}
