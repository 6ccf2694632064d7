//! Downstream MCP sessions of the session generation (Streamable HTTP 2025-03-26+ and the
//! legacy HTTP+SSE transport): ids, negotiated version, open streams, in-flight calls, expiry.

use bytes::Bytes;
use mcp_gateway_core::protocol::LogLevel;
use mcp_gateway_core::relay::Reply;
use mcp_gateway_core::{JsonRpcError, RequestId};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// True when declared client capabilities let the gateway relay server requests.
pub(crate) fn can_relay(caps: &serde_json::Value) -> bool {
    caps.get("sampling").is_some() || caps.get("elicitation").is_some()
}

/// One downstream session.
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) protocol_version: RwLock<String>,
    created: Instant,
    last_seen_ms: AtomicU64,
    /// The open server→client stream (GET /mcp or the legacy SSE stream), if any.
    stream: Mutex<Option<mpsc::Sender<Bytes>>>,
    /// In-flight requests, so `notifications/cancelled` can stop them.
    inflight: Mutex<HashMap<RequestId, CancellationToken>>,
    /// True for sessions of the legacy HTTP+SSE transport (answers go on the stream).
    pub(crate) legacy: bool,
    /// Subject of the caller that opened the session; only that caller may use it.
    owner: Option<String>,
    /// The client declared `sampling` or `elicitation`, so server requests can be relayed.
    can_relay: std::sync::atomic::AtomicBool,
    /// The part of the client's capabilities the gateway relays (see
    /// [`mcp_gateway_core::relay::relayable_capabilities`]), for 2026-07-28 upstreams.
    relay_caps: RwLock<Option<Arc<str>>>,
    /// `logging/setLevel`: 0 for no log messages, else 1 + the least severe level wanted
    /// (every level until the client sets one, as a server does).
    log_level: std::sync::atomic::AtomicU8,
    /// Requests relayed to the client, by the id the gateway gave them, awaiting an answer.
    asked: Mutex<HashMap<String, Reply>>,
    next_ask: AtomicU64,
    /// Prefix of relayed request ids: names this replica, so ids never collide across
    /// replicas serving the same session.
    ask_prefix: Arc<str>,
    /// Non-reversible name of the id, used between replicas.
    pub(crate) tag: Option<String>,
}

impl Session {
    fn new(
        id: String,
        version: &str,
        legacy: bool,
        owner: Option<String>,
        ask_prefix: Arc<str>,
    ) -> Self {
        Self {
            tag: id.starts_with("s1.").then(|| mcp_gateway_cluster::tag(&id)),
            ask_prefix,
            id,
            protocol_version: RwLock::new(version.to_string()),
            created: Instant::now(),
            last_seen_ms: AtomicU64::new(0),
            stream: Mutex::new(None),
            inflight: Mutex::new(HashMap::new()),
            legacy,
            owner,
            can_relay: std::sync::atomic::AtomicBool::new(false),
            relay_caps: RwLock::new(None),
            log_level: std::sync::atomic::AtomicU8::new(1),
            asked: Mutex::new(HashMap::new()),
            next_ask: AtomicU64::new(1),
        }
    }

    pub(crate) fn touch(&self) {
        self.last_seen_ms
            .store(self.created.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_seen_ms.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(last)
    }

    pub(crate) fn version(&self) -> String {
        self.protocol_version.read().expect("lock").clone()
    }

    /// Records the capabilities the client declared at `initialize`.
    pub(crate) fn set_client_capabilities(&self, caps: &serde_json::Value) {
        self.can_relay.store(can_relay(caps), Ordering::Relaxed);
        *self.relay_caps.write().expect("lock") =
            mcp_gateway_core::relay::relayable_capabilities(&caps.to_string());
    }

    /// The least severe log message the client wants (`logging/setLevel`).
    pub(crate) fn log_level(&self) -> Option<LogLevel> {
        const LEVELS: [LogLevel; 8] = [
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Notice,
            LogLevel::Warning,
            LogLevel::Error,
            LogLevel::Critical,
            LogLevel::Alert,
            LogLevel::Emergency,
        ];
        let n = self.log_level.load(Ordering::Relaxed) as usize;
        n.checked_sub(1).and_then(|i| LEVELS.get(i).copied())
    }

    /// Records the client's `logging/setLevel`.
    pub(crate) fn set_log_level(&self, level: LogLevel) {
        self.log_level.store(level as u8 + 1, Ordering::Relaxed);
    }

    /// The client capabilities a 2026-07-28 upstream is told about on this session's calls.
    pub(crate) fn relay_capabilities(&self) -> Option<Arc<str>> {
        self.relay_caps.read().expect("lock").clone()
    }

    /// Subject of the caller that opened the session.
    pub(crate) fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Prefix of the ids this replica gives relayed requests.
    pub(crate) fn ask_prefix(&self) -> &str {
        &self.ask_prefix
    }

    /// True when the client can answer sampling or elicitation requests.
    pub(crate) fn can_relay(&self) -> bool {
        self.can_relay.load(Ordering::Relaxed)
    }

    /// Registers a request relayed to the client; returns the JSON-RPC id to send it with.
    pub(crate) fn ask(&self, reply: Reply) -> String {
        let id = format!(
            "{}{}",
            self.ask_prefix,
            self.next_ask.fetch_add(1, Ordering::Relaxed)
        );
        self.asked.lock().expect("lock").insert(id.clone(), reply);
        id
    }

    /// Delivers the client's answer to a relayed request; false when nothing waits for it.
    pub(crate) fn answer(
        &self,
        id: &RequestId,
        result: Result<Box<RawValue>, JsonRpcError>,
    ) -> bool {
        let key = match id {
            RequestId::String(s) => s.clone(),
            RequestId::Number(n) => n.to_string(),
        };
        match self.asked.lock().expect("lock").remove(&key) {
            Some(tx) => tx.send(result).is_ok(),
            None => false,
        }
    }

    /// Opens the server→client stream, replacing (and so closing) an older one.
    pub(crate) fn open_stream(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(64);
        *self.stream.lock().expect("lock") = Some(tx);
        rx
    }

    /// Sends an SSE-ready message on the open stream; false when none is open.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        let tx = self.stream.lock().expect("lock").clone();
        match tx {
            Some(tx) => tx.try_send(frame).is_ok(),
            None => false,
        }
    }

    pub(crate) fn has_stream(&self) -> bool {
        self.stream
            .lock()
            .expect("lock")
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Registers an in-flight request; the token fires on `notifications/cancelled`.
    pub(crate) fn begin(&self, id: &RequestId) -> CancellationToken {
        let token = CancellationToken::new();
        self.inflight
            .lock()
            .expect("lock")
            .insert(id.clone(), token.clone());
        token
    }

    pub(crate) fn end(&self, id: &RequestId) {
        self.inflight.lock().expect("lock").remove(id);
    }

    pub(crate) fn cancel(&self, id: &RequestId) -> bool {
        match self.inflight.lock().expect("lock").remove(id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// Ends the server→client stream, if one is open (in-flight calls carry on).
    pub(crate) fn end_stream(&self) {
        *self.stream.lock().expect("lock") = None;
    }

    fn close(&self) {
        *self.stream.lock().expect("lock") = None;
        for (_, t) in self.inflight.lock().expect("lock").drain() {
            t.cancel();
        }
        self.asked.lock().expect("lock").clear();
    }
}

/// All sessions of this gateway process.
pub(crate) struct Sessions {
    map: RwLock<HashMap<String, Arc<Session>>>,
    idle: Duration,
    ask_prefix: Arc<str>,
}

impl Sessions {
    /// Sessions dropped after `idle`; relayed requests get ids `mcp-gateway-<replica>-<n>`.
    pub(crate) fn new(idle: Duration, replica: &str) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            idle,
            ask_prefix: format!("mcp-gateway-{replica}-").into(),
        }
    }

    /// Creates a session; `id` is its sealed id, or `None` for a fresh random one.
    pub(crate) fn create(
        &self,
        id: Option<String>,
        version: &str,
        legacy: bool,
        owner: Option<String>,
    ) -> Arc<Session> {
        let id = id.unwrap_or_else(|| {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).expect("the OS random source works");
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        });
        let s = Arc::new(Session::new(
            id.clone(),
            version,
            legacy,
            owner,
            self.ask_prefix.clone(),
        ));
        s.touch();
        self.map.write().expect("lock").insert(id, s.clone());
        s
    }

    /// Takes over a session another replica created (or this one forgot), from the state
    /// sealed in its id; a concurrent adoption of the same id yields the same session.
    pub(crate) fn adopt(
        &self,
        id: &str,
        state: &mcp_gateway_cluster::SessionState,
    ) -> Arc<Session> {
        let mut map = self.map.write().expect("lock");
        let s = map
            .entry(id.to_string())
            .or_insert_with(|| {
                let s = Session::new(
                    id.to_string(),
                    &state.version,
                    state.legacy,
                    state.owner.clone(),
                    self.ask_prefix.clone(),
                );
                s.can_relay.store(state.can_relay, Ordering::Relaxed);
                // The sealed state keeps one bit: a client that can be asked is taken to
                // answer both kinds of request, as the gateway declares upstream.
                if state.can_relay {
                    *s.relay_caps.write().expect("lock") =
                        Some(Arc::from(r#"{"elicitation":{},"sampling":{}}"#));
                }
                Arc::new(s)
            })
            .clone();
        s.touch();
        s
    }

    /// The session whose id has this tag (messages from other replicas name sessions so).
    pub(crate) fn by_tag(&self, tag: &str) -> Option<Arc<Session>> {
        self.map
            .read()
            .expect("lock")
            .values()
            .find(|s| s.tag.as_deref() == Some(tag))
            .cloned()
    }

    /// Drops the session with this tag, whoever owns it (it was deleted on another replica).
    pub(crate) fn remove_tagged(&self, tag: &str) {
        let mut map = self.map.write().expect("lock");
        let id = map
            .values()
            .find(|s| s.tag.as_deref() == Some(tag))
            .map(|s| s.id.clone());
        if let Some(s) = id.and_then(|id| map.remove(&id)) {
            s.close();
        }
    }

    /// The session `id` if it exists and belongs to `owner` (another caller's session is
    /// reported as unknown, revealing nothing).
    pub(crate) fn get(&self, id: &str, owner: Option<&str>) -> Option<Arc<Session>> {
        let s = self
            .map
            .read()
            .expect("lock")
            .get(id)
            .filter(|s| s.owner.as_deref() == owner)
            .cloned();
        // Expiry is enforced here too, not only by the periodic sweep, so an idle session
        // is gone the moment its timeout passes.
        if let Some(expired) = s
            .as_ref()
            .filter(|s| s.idle_for() >= self.idle && !s.has_stream())
        {
            let id = expired.id.clone();
            self.remove(&id, owner);
            return None;
        }
        if let Some(s) = &s {
            s.touch();
        }
        s
    }

    pub(crate) fn remove(&self, id: &str, owner: Option<&str>) -> bool {
        let mut map = self.map.write().expect("lock");
        if map.get(id).is_none_or(|s| s.owner.as_deref() != owner) {
            return false;
        }
        if let Some(s) = map.remove(id) {
            s.close();
        }
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.map.read().expect("lock").len()
    }

    /// Every session (for broadcasting notifications).
    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        self.map.read().expect("lock").values().cloned().collect()
    }

    /// Drops sessions idle longer than the limit; a session holding an open stream is not
    /// idle. Returns how many were dropped.
    pub(crate) fn expire(&self) -> usize {
        let mut map = self.map.write().expect("lock");
        let before = map.len();
        map.retain(|_, s| {
            let keep = s.has_stream() || s.idle_for() < self.idle;
            if !keep {
                s.close();
            }
            keep
        });
        map.shrink_to_fit();
        before - map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_finds_cancels_and_expires() {
        let sessions = Sessions::new(Duration::from_secs(60), "r1");
        let s = sessions.create(None, "2025-11-25", false, Some("alice".into()));
        assert_eq!(s.id.len(), 32);
        assert!(sessions.get(&s.id, Some("alice")).is_some());
        assert!(sessions.get(&s.id, Some("mallory")).is_none());
        assert!(sessions.get(&s.id, None).is_none());
        assert!(!sessions.remove(&s.id, Some("mallory")));
        let t = s.begin(&RequestId::Number(1));
        assert!(s.cancel(&RequestId::Number(1)));
        assert!(t.is_cancelled());
        assert!(!s.cancel(&RequestId::Number(1)));
        assert_eq!(sessions.expire(), 0, "not idle long enough");

        // The periodic sweep drops idle sessions...
        let quick = Sessions::new(Duration::from_millis(1), "r1");
        quick.create(None, "2025-11-25", false, None);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(quick.expire(), 1);
        assert_eq!(quick.len(), 0);
        // ...and so does a lookup, without waiting for the sweep.
        let lazy = quick.create(None, "2025-11-25", false, None);
        std::thread::sleep(Duration::from_millis(5));
        assert!(quick.get(&lazy.id, None).is_none());
        assert_eq!(quick.len(), 0);
    }
}
