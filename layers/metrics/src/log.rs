//! A bounded ring of recent calls.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// One call in the request log.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// Sequence number, unique per process.
    pub id: u64,
    /// When the call started (RFC 3339).
    pub time: String,
    /// Start time, for filtering.
    #[serde(skip)]
    pub at: SystemTime,
    /// Front end that received it: `rest` or `mcp`.
    pub transport: &'static str,
    /// Caller's identity name, when authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// JSON-RPC method.
    pub method: String,
    /// Server that answered (`-` if none).
    pub server: String,
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
}

/// Bounded ring of recent calls, newest last.
#[derive(Debug)]
pub struct RequestLog {
    capacity: usize,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<LogEntry>>,
}

impl RequestLog {
    /// A log keeping `capacity` entries (0 keeps none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
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

    /// Appends an entry, evicting the oldest when full.
    pub fn push(&self, entry: LogEntry) {
        if self.capacity == 0 {
            return;
        }
        let mut q = self.entries.lock().expect("log lock poisoned");
        if q.len() == self.capacity {
            q.pop_front();
        }
        q.push_back(entry);
    }

    /// Entries matching `q`, newest first.
    pub fn query(&self, q: &LogQuery) -> Vec<LogEntry> {
        let cutoff = q.since.map(|s| SystemTime::now() - Duration::from_secs(s));
        let limit = q.limit.unwrap_or(100);
        let entries = self.entries.lock().expect("log lock poisoned");
        entries
            .iter()
            .rev()
            .filter(|e| q.server.as_ref().is_none_or(|s| &e.server == s))
            .filter(|e| q.tool.as_ref().is_none_or(|t| e.tool.as_ref() == Some(t)))
            .filter(|e| {
                q.status
                    .as_ref()
                    .is_none_or(|s| e.outcome == s || e.status.to_string() == *s)
            })
            .filter(|e| cutoff.is_none_or(|c| e.at >= c))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Drops entries older than `max_age`.
    pub fn expire(&self, max_age: Duration) {
        let cutoff = SystemTime::now() - max_age;
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
