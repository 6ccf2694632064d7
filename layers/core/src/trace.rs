//! W3C trace context (`traceparent`) carried from a caller, through the gateway, to the
//! upstream: front ends read the caller's header, the gateway's hop gets its own span id,
//! and the upstream receives `traceparent` as an HTTP header (HTTP transports) or in the
//! request's `_meta` (stdio, WebSocket). Nothing is generated when the caller sent none,
//! so a gateway without tracing pays nothing.

use std::fmt::Write;

/// The trace context of one call through the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: String,
    span_id: String,
    flags: u8,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

impl TraceContext {
    /// The gateway's hop of the trace named by a `traceparent` header value
    /// (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`): same trace and flags, a
    /// fresh span id. `None` when the value is malformed (it is then ignored, per W3C).
    pub fn continue_from(traceparent: &str) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || !version.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if !is_hex(trace, 32) || !is_hex(parent, 16) || flags.len() != 2 {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id: trace.to_string(),
            span_id: new_span_id(),
            flags,
        })
    }

    /// A hop whose ids come from elsewhere (an OpenTelemetry span): `trace_id` is 32 and
    /// `span_id` 16 lowercase hex digits, not all zeros. `None` when they are not.
    pub fn from_ids(trace_id: String, span_id: String, flags: u8) -> Option<Self> {
        (is_hex(&trace_id, 32) && is_hex(&span_id, 16)).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The gateway's span id (the parent the upstream sees).
    pub fn span_id(&self) -> &str {
        &self.span_id
    }

    /// The `traceparent` value to send upstream.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

fn new_span_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() || b == [0; 8] {
        b = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 | 1)
            .to_be_bytes();
    }
    let mut s = String::with_capacity(16);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_valid_traces_and_ignores_bad_ones() {
        let t =
            TraceContext::continue_from("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .unwrap();
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(t.span_id(), "00f067aa0ba902b7", "the gateway's own span");
        let out = t.traceparent();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert!(out.ends_with("-01") && out.len() == 55, "{out}");
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::continue_from(bad).is_none(), "{bad}");
        }
        // A future version with extra fields is accepted.
        assert!(
            TraceContext::continue_from(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
            )
            .is_some()
        );
    }
}
