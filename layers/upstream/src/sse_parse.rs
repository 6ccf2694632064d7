//! An incremental `text/event-stream` parser, shared by the Streamable HTTP transport (SSE
//! answers and the GET stream) and the legacy HTTP+SSE transport.
//!
//! It follows the WHATWG event-stream rules that matter to MCP: lines end with `\n`, `\r\n` or
//! `\r` (also when split across chunks); `data:` lines of one event are joined with `\n`; a
//! blank line dispatches the event; lines starting with `:` are comments (keep-alives);
//! an event whose data is empty is not dispatched (a server's priming event). The last
//! `id:` and `retry:` are kept, for resuming a stream the server closed before it answered.
//! One event may not grow beyond a size limit, so a server that never ends its event cannot
//! make the gateway buffer without bound.

use bytes::Bytes;

/// One dispatched event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub(crate) event: String,
    /// The `data:` lines joined with `\n`.
    pub(crate) data: String,
}

/// Why a stream cannot be parsed any further.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SseError {
    /// One line or event exceeded the limit.
    #[error("an event of the stream exceeds {0} bytes (maxMessageBytes)")]
    TooLarge(usize),
    /// A line is not UTF-8.
    #[error("malformed event stream: a line is not valid UTF-8")]
    NotUtf8,
}

/// Parser state between chunks.
#[derive(Debug)]
pub(crate) struct SseParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// The previous chunk ended with `\r`: a leading `\n` belongs to that line ending.
    skip_lf: bool,
    max: usize,
    /// The last `id:` seen (the `Last-Event-ID` to resume from).
    last_id: Option<String>,
    /// The last `retry:` seen, in milliseconds.
    retry_ms: Option<u64>,
}

impl SseParser {
    /// A parser refusing events larger than `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            line: Vec::new(),
            event: None,
            data: String::new(),
            has_data: false,
            skip_lf: false,
            max,
            last_id: None,
            retry_ms: None,
        }
    }

    /// Forgets a half-read event of a stream that ended, keeping the last event id and the
    /// retry delay for the stream that resumes it.
    pub(crate) fn next_stream(&mut self) {
        self.line.clear();
        self.event = None;
        self.data.clear();
        self.has_data = false;
        self.skip_lf = false;
    }

    /// The id of the last event with one: where a resumed stream continues.
    pub(crate) fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The reconnection delay the server asked for, in milliseconds.
    pub(crate) fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Feeds one chunk; complete events are appended to `out`.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = chunk;
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(r) = rest.strip_prefix(b"\n") {
                rest = r;
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
            self.line = line;
            self.line.clear();
        }
        self.line.extend_from_slice(rest);
        if self.line.len() + self.data.len() > self.max {
            return Err(SseError::TooLarge(self.max));
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data && !self.data.is_empty() {
                out.push(SseEvent {
                    event: self.event.take().unwrap_or_else(|| "message".into()),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event = None;
            self.data.clear();
            self.has_data = false;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max {
                    return Err(SseError::TooLarge(self.max));
                }
            }
            // An id with NUL is ignored, as the WHATWG rules say.
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
        Ok(())
    }
}

/// A response body read chunk by chunk: reqwest's, or the lean HTTP/1.1 client's.
pub(crate) trait ChunkSource {
    /// The next chunk; `None` at the end of the body; the error in words.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, String>> + Send;
}

impl ChunkSource for reqwest::Response {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        self.chunk().await.map_err(|e| error_chain(&e))
    }
}

/// Reads a `text/event-stream` body to its end, handing every event to `on_event`.
///
/// Returns `Ok(())` when the server ended the stream, or why reading failed.
pub(crate) async fn read_events(
    response: impl ChunkSource,
    max: usize,
    on_event: impl FnMut(SseEvent),
) -> Result<(), String> {
    read_events_into(response, &mut SseParser::new(max), on_event).await
}

/// [`read_events`] continuing with a parser that already read the start of the stream.
pub(crate) async fn read_events_with(
    response: impl ChunkSource,
    mut parser: SseParser,
    on_event: impl FnMut(SseEvent),
) -> Result<(), String> {
    read_events_into(response, &mut parser, on_event).await
}

/// [`read_events`] with a parser the caller keeps (for its last event id and retry delay).
pub(crate) async fn read_events_into(
    mut response: impl ChunkSource,
    parser: &mut SseParser,
    mut on_event: impl FnMut(SseEvent),
) -> Result<(), String> {
    let mut events = Vec::new();
    loop {
        let chunk: Option<Bytes> = response
            .next_chunk()
            .await
            .map_err(|e| format!("reading the event stream failed: {e}"))?;
        let Some(chunk) = chunk else { return Ok(()) };
        parser
            .push(&chunk, &mut events)
            .map_err(|e| e.to_string())?;
        for ev in events.drain(..) {
            on_event(ev);
        }
    }
}

/// An error with its sources, `a: b: c`, because reqwest's own message rarely names the
/// cause (connection refused, reset, ...).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    // HTTP clients quote the URL, which may carry a password or a token.
    mcp_gateway_core::redact::redact_urls_in(&s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1024);
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn parses_events_comments_and_multiline_data() {
        let out = parse_chunks(&[
            b": keep-alive\n\nevent: endpoint\ndata: /messages?s=1\n\n",
            b"id: 7\ndata: {\"a\":\ndata:1}\n\n",
            b"event: message\n\n",
        ]);
        assert_eq!(
            out,
            vec![
                ev("endpoint", "/messages?s=1"),
                ev("message", "{\"a\":\n1}")
            ]
        );
    }

    #[test]
    fn handles_every_line_ending_split_anywhere() {
        let whole: &[u8] = b"data: one\r\n\r\ndata: two\r\rdata:three\n\n";
        let expected = vec![
            ev("message", "one"),
            ev("message", "two"),
            ev("message", "three"),
        ];
        for split in 0..whole.len() {
            let (a, b) = whole.split_at(split);
            assert_eq!(parse_chunks(&[a, b]), expected, "split at {split}");
        }
    }

    #[test]
    fn refuses_an_event_that_never_ends() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert!(p.push(b"data: 0123456789", &mut out).is_ok());
        let err = p.push(b"0123456789", &mut out).unwrap_err();
        assert!(err.to_string().contains("exceeds 16 bytes"));
        let mut p = SseParser::new(16);
        assert!(p.push(b"data: \xff\xfe\n", &mut out).is_err());
    }

    #[test]
    fn keeps_the_last_id_and_retry_and_skips_priming_events() {
        let mut p = SseParser::new(1024);
        let mut out = Vec::new();
        p.push(b"id: event-2\nretry: 500\ndata:\n\n", &mut out)
            .unwrap();
        assert!(out.is_empty(), "an event with empty data is not dispatched");
        assert_eq!(
            (p.last_event_id(), p.retry_ms()),
            (Some("event-2"), Some(500))
        );
        p.push(b"data: {\"a\"", &mut out).unwrap();
        p.next_stream();
        p.push(b"id: 3\ndata: {}\n\n", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, "{}");
        assert_eq!(p.last_event_id(), Some("3"));
    }
}
