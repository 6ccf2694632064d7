//! A bounded ring of recent calls.

use mcp_gateway_core::Identity;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

fn as_rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::rfc3339(*t))
}

fn as_str<S: serde::Serializer>(t: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t)
}

fn as_subject<S: serde::Serializer>(i: &Option<Arc<Identity>>, s: S) -> Result<S::Ok, S::Error> {
    match i {
        Some(i) => s.serialize_some(&i.subject),
        None => s.serialize_none(),
    }
}

/// One call in the request log.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// Sequence number, unique per process.
    pub id: u64,
    /// When the call started; serialized as `time` (RFC 3339), formatted only when the log
    /// is read, never on the call path.
    #[serde(rename = "time", serialize_with = "as_rfc3339")]
    pub at: SystemTime,
    /// The front end's id for the request (the JSON-RPC id on `/mcp`), else the sequence
    /// number.
    pub request_id: String,
    /// W3C trace id (32 hex digits) from the caller's `traceparent`, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Front end that received it: `rest` or `mcp`.
    pub transport: &'static str,
    /// The authenticated caller, serialized as its subject (the key's name or the token's
    /// `sub`). Shared with the request, not copied.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_subject")]
    pub identity: Option<Arc<Identity>>,
    /// JSON-RPC method.
    pub method: Cow<'static, str>,
    /// Server that answered (`-` if none).
    #[serde(serialize_with = "as_str")]
    pub server: Arc<str>,
    /// Tool called, for `tools/call`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Outcome label.
    pub outcome: &'static str,
    /// HTTP-equivalent status.
    pub status: u16,
    /// Duration in milliseconds.
    pub duration_ms: f64,
    /// Error message, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Arguments (or params of other methods), redacted, with `monitor.logBodies` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// Result, redacted, with `monitor.logBodies` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// Replaced value of redacted fields.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces the value of every object key matching one of the patterns in `fields` (at any
/// depth; see [`is_secret_key`](mcp_gateway_core::redact::is_secret_key)) with
/// `"[REDACTED]"`.
pub fn redact(v: &mut Value, fields: &[String]) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if mcp_gateway_core::redact::is_secret_key(k, fields) {
                    *x = Value::String(REDACTED.into());
                } else {
                    redact(x, fields);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| redact(x, fields)),
        _ => {}
    }
}

/// A body for the log: parsed, redacted, and kept as JSON when it fits in `limit` bytes,
/// else cut to `limit` bytes and kept as a string ending in `…`. Bodies too large to be
/// worth parsing (over 64 × `limit`) and bodies that are not JSON are not kept, only
/// their size.
pub fn log_body(raw: &str, fields: &[String], limit: usize) -> Value {
    if raw.len() > limit.saturating_mul(64) {
        return Value::String(format!("[{} bytes, not logged]", raw.len()));
    }
    let Ok(mut v) = serde_json::from_str::<Value>(raw) else {
        return Value::String(format!("[{} bytes, not JSON]", raw.len()));
    };
    redact(&mut v, fields);
    let text = v.to_string();
    if text.len() <= limit {
        return v;
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Value::String(format!("{}…", &text[..cut]))
}

/// Filters for [`RequestLog::query`], as taken from `GET /api/v1/requests`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// Only this server.
    pub server: Option<String>,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only this outcome label (`ok`, `timeout`, ...) or HTTP status (`504`).
    pub status: Option<String>,
    /// Only entries newer than this many seconds ago.
    pub since: Option<u64>,
    /// At most this many entries (newest first); default 100.
    pub limit: Option<usize>,
    /// Only the calls of this caller (identity subject); anonymous calls never match.
    pub subject: Option<String>,
}

/// Bounded ring of recent calls, newest last.
#[derive(Debug)]
pub struct RequestLog {
    capacity: usize,
    retention_secs: AtomicU64,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<LogEntry>>,
}

impl RequestLog {
    /// A log keeping `capacity` entries (0 keeps none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            retention_secs: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            entries: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
        }
    }

    /// True when the log keeps entries.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Next sequence number.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Drops entries older than `max_age` on every push and query (zero keeps them all).
    pub fn set_retention(&self, max_age: Duration) {
        self.retention_secs
            .store(max_age.as_secs(), Ordering::Relaxed);
    }

    fn retention_cutoff(&self) -> Option<SystemTime> {
        match self.retention_secs.load(Ordering::Relaxed) {
            0 => None,
            s => SystemTime::now().checked_sub(Duration::from_secs(s)),
        }
    }

    /// Appends an entry, evicting the oldest when full and those past retention.
    pub fn push(&self, entry: LogEntry) {
        if self.capacity == 0 {
            return;
        }
        let cutoff = self.retention_cutoff();
        let mut q = self.entries.lock().expect("log lock poisoned");
        if q.len() == self.capacity {
            q.pop_front();
        }
        if let Some(c) = cutoff {
            while q.front().is_some_and(|e| e.at < c) {
                q.pop_front();
            }
        }
        q.push_back(entry);
    }

    /// Entries matching `q`, newest first (never older than the retention).
    pub fn query(&self, q: &LogQuery) -> Vec<LogEntry> {
        let since = q
            .since
            .and_then(|s| SystemTime::now().checked_sub(Duration::from_secs(s)));
        let cutoff = match (since, self.retention_cutoff()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let limit = q.limit.unwrap_or(100);
        let entries = self.entries.lock().expect("log lock poisoned");
        entries
            .iter()
            .rev()
            .filter(|e| q.server.as_ref().is_none_or(|s| *e.server == **s))
            .filter(|e| q.tool.as_ref().is_none_or(|t| e.tool.as_ref() == Some(t)))
            .filter(|e| {
                q.status
                    .as_ref()
                    .is_none_or(|s| e.outcome == s || e.status.to_string() == *s)
            })
            .filter(|e| cutoff.is_none_or(|c| e.at >= c))
            .filter(|e| {
                q.subject
                    .as_ref()
                    .is_none_or(|s| e.identity.as_ref().is_some_and(|i| i.subject == *s))
            })
            .take(limit)
            .cloned()
            .collect()
    }

    /// Drops entries older than `max_age`.
    pub fn expire(&self, max_age: Duration) {
        let Some(cutoff) = SystemTime::now().checked_sub(max_age) else {
            return;
        };
        let mut q = self.entries.lock().expect("log lock poisoned");
        while q.front().is_some_and(|e| e.at < cutoff) {
            q.pop_front();
        }
    }

    /// Number of entries kept.
    pub fn len(&self) -> usize {
        self.entries.lock().expect("log lock poisoned").len()
    }

    /// True when no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, at: SystemTime) -> LogEntry {
        LogEntry {
            id,
            request_id: id.to_string(),
            trace_id: None,
            at,
            transport: "rest",
            identity: None,
            method: "tools/call".into(),
            server: "s".into(),
            tool: Some("t".into()),
            outcome: "ok",
            status: 200,
            duration_ms: 1.0,
            error: None,
            arguments: None,
            result: None,
        }
    }

    #[test]
    fn bound_and_retention() {
        let log = RequestLog::new(3);
        let now = SystemTime::now();
        for i in 1..=5 {
            log.push(entry(i, now));
        }
        let ids: Vec<u64> = log
            .query(&LogQuery::default())
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [5, 4, 3]);
        let log = RequestLog::new(3);
        log.push(entry(1, now - Duration::from_secs(7200)));
        log.push(entry(2, now));
        assert_eq!(log.query(&LogQuery::default()).len(), 2, "no retention yet");
        log.set_retention(Duration::from_secs(3600));
        let ids: Vec<u64> = log
            .query(&LogQuery::default())
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [2], "older than retention: not answered");
        log.push(entry(3, now));
        assert_eq!(log.len(), 2, "and dropped on the next push");
    }

    #[test]
    fn the_default_patterns_catch_the_usual_secret_names() {
        let fields: Vec<String> = mcp_gateway_core::redact::SECRET_KEYS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let v = log_body(
            r#"{"api_key":"a","access_token":"b","client_secret":"c","passwd":"d","privateKey":"e","Cookie":"f","max_tokens":7,"path":"/x"}"#,
            &fields,
            4096,
        );
        assert_eq!(
            v,
            serde_json::json!({"api_key":REDACTED,"access_token":REDACTED,"client_secret":REDACTED,
                "passwd":REDACTED,"privateKey":REDACTED,"Cookie":REDACTED,"max_tokens":7,"path":"/x"})
        );
    }

    #[test]
    fn redacts_at_any_depth_and_cuts() {
        let fields = ["password", "apiKey"].map(String::from);
        let v = log_body(
            r#"{"user":"a","Password":"p","nested":[{"apikey":"k","ok":1}]}"#,
            &fields,
            4096,
        );
        assert_eq!(
            v,
            serde_json::json!({"user":"a","Password":REDACTED,"nested":[{"apikey":REDACTED,"ok":1}]})
        );
        let long = format!(r#"{{"text":"{}","password":"p"}}"#, "é".repeat(100));
        let v = log_body(&long, &fields, 50);
        let s = v.as_str().unwrap();
        assert!(
            s.ends_with('…') && s.len() <= 53 && !s.contains("\"p\""),
            "{s}"
        );
        assert!(
            log_body(&"x".repeat(10_000), &fields, 16)
                .as_str()
                .unwrap()
                .contains("not logged")
        );
    }
}
