//! Several gateway replicas behind one load balancer: sealed session ids and the
//! cross-replica bus, for the gateway's MCP endpoint (`mcp-gateway-mcp-server`).
//!
//! - **Sealed session ids.** With `cluster.sessionKey` set, an `Mcp-Session-Id` is the
//!   session's own state (protocol version, owner, whether the client can answer relayed
//!   requests, the replica that opened it) sealed with AES-256-GCM. Any replica holding the
//!   key opens it and adopts the session; a client can neither read nor forge one. Upstream
//!   connections are per replica, so adopting needs nothing from the replica that created it.
//! - **Redis** (`cluster.redisUrl`, optional) carries what cannot travel in the id: a
//!   revocation mark when a client deletes its session (so no replica adopts it again), and,
//!   over one pub/sub channel, messages that must reach the replica holding a stream — a
//!   client's answer to a relayed sampling/elicitation request, a `notifications/cancelled`
//!   for a call running elsewhere, a legacy `POST /messages` for an SSE stream elsewhere.
//!
//! Revocations and messages go through a [`Bus`]: [`RedisBus`] when `redisUrl` is set,
//! [`MemoryBus`] for replicas sharing one process ([`Cluster::with_bus`]).
//!
//! When Redis is unreachable sessions fail open (a sealed id is still adopted; a session
//! deleted meanwhile on another replica may be adopted until Redis returns) and cross-replica
//! messages are dropped (logged); the connection recovers by itself.
//!
//! ```
//! use mcp_gateway_cluster::{Cluster, ClusterConfig};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config = ClusterConfig {
//!     replica: Some("a".into()),
//!     session_key: Some("k".repeat(32)),
//!     previous_session_keys: vec![],
//!     redis_url: None,
//!     session_max_age: 86_400,
//! };
//! let a = Cluster::new(Some(&config));
//! let b = Cluster::new(Some(&ClusterConfig { replica: Some("b".into()), ..config }));
//! // Replica a opens a session for alice; replica b adopts it from the id alone.
//! let id = a.seal("2025-11-25", Some("alice"), false, false).unwrap();
//! assert_eq!(b.adopt(&id, Some("alice")).await.unwrap().replica, "a");
//! // Nobody else can use it.
//! assert!(b.adopt(&id, Some("mallory")).await.is_none());
//! # }
//! ```

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_gateway_core::{JsonRpcError, RequestId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod bus;

pub use bus::{Bus, MemoryBus, RedisBus};

/// Scale-out settings: what lets any replica serve any request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterConfig {
    /// This replica's name, reported by `/api/v1/health`, `/api/v1/metrics` and the
    /// `X-MCP-Gateway-Replica` header. Default: the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Secret (at least 32 characters) that seals session ids: every replica given the same
    /// key can open a session another replica created. Unset: sessions stay on one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// Older keys still accepted for opening sessions (key rotation); never used to seal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_session_keys: Vec<String>,
    /// Redis shared by the replicas: revoked sessions and messages that must reach the
    /// replica holding a stream (answers to relayed requests, cancellations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Longest life of a sealed session, in seconds, however active it is.
    #[serde(default = "default_session_max_age")]
    pub session_max_age: u64,
}

fn default_session_max_age() -> u64 {
    86_400
}

/// Prefix of sealed session ids (the version of the format).
const SEALED_PREFIX: &str = "s1.";
/// Bound to every sealed id so a ciphertext made for something else never opens as one.
const AAD: &[u8] = b"mcp-gateway session id v1";

/// What a downstream session needs, carried inside its sealed id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// Negotiated protocol version.
    #[serde(rename = "v")]
    pub version: String,
    /// Subject of the caller that opened it.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The client declared `sampling` or `elicitation`.
    #[serde(rename = "r", default)]
    pub can_relay: bool,
    /// A legacy HTTP+SSE session (its answers travel on the stream).
    #[serde(rename = "l", default)]
    pub legacy: bool,
    /// Creation time, Unix seconds.
    #[serde(rename = "t")]
    pub created: u64,
    /// The replica that created it (and holds its legacy SSE stream, if any).
    #[serde(rename = "p")]
    pub replica: String,
}

/// Seals and opens session ids.
struct Sealer {
    current: LessSafeKey,
    /// Every key that may open an id: the current one first, then older ones.
    openers: Vec<LessSafeKey>,
}

fn derive_key(secret: &str) -> LessSafeKey {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"mcp-gateway session key v1\0");
    ctx.update(secret.as_bytes());
    let key = ctx.finish();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.as_ref()).expect("32-byte key"))
}

impl Sealer {
    fn new(key: &str, previous: &[String]) -> Self {
        let mut openers = vec![derive_key(key)];
        openers.extend(previous.iter().map(|k| derive_key(k)));
        Self {
            current: derive_key(key),
            openers,
        }
    }

    fn seal(&self, state: &SessionState) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random source works");
        let mut buf = serde_json::to_vec(state).expect("session state serializes");
        self.current
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut buf,
            )
            .expect("AES-GCM sealing of a small buffer");
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    fn open(&self, id: &str) -> Option<SessionState> {
        let raw = URL_SAFE_NO_PAD
            .decode(id.strip_prefix(SEALED_PREFIX)?)
            .ok()?;
        if raw.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.openers.iter().find_map(|key| {
            let mut buf = sealed.to_vec();
            let plain = key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(AAD),
                    &mut buf,
                )
                .ok()?;
            serde_json::from_slice(plain).ok()
        })
    }
}

/// A message between replicas, published on the cluster channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Publishing replica (its own messages come back to it and are skipped).
    pub from: String,
    /// What happened.
    pub message: BusMessage,
}

/// What one replica tells the others. Sessions are named by [`tag`], never by their id.
/// (Externally tagged: serde buffers internally tagged enums, which raw JSON cannot survive.)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BusMessage {
    /// The client deleted the session: drop it.
    Revoke {
        /// Session tag.
        session: String,
    },
    /// `notifications/cancelled` for a call that may be running on another replica.
    Cancel {
        /// Session tag.
        session: String,
        /// The cancelled request.
        id: RequestId,
    },
    /// The client's answer to a request relayed by the replica holding the call.
    Answer {
        /// Session tag.
        session: String,
        /// Gateway id of the relayed request.
        id: RequestId,
        /// Its result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<Box<RawValue>>,
        /// Or its error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<JsonRpcError>,
    },
    /// Not sent by replicas: the channel (re)connected, so messages may have been missed
    /// while it was down; revocations must be checked against Redis.
    Resync,
    /// A legacy `POST /messages` body for an SSE stream held by replica `to`.
    Message {
        /// Session tag.
        session: String,
        /// The replica holding the stream.
        to: String,
        /// Who posted it (authenticated by the forwarding replica).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<WireIdentity>,
        /// The JSON-RPC message as posted.
        body: String,
    },
}

/// The parts of an [`Identity`](mcp_gateway_core::Identity) access control needs, as
/// forwarded between replicas (raw token claims stay on the replica that verified them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireIdentity {
    subject: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_name: Option<String>,
}

impl From<&mcp_gateway_core::Identity> for WireIdentity {
    fn from(i: &mcp_gateway_core::Identity) -> Self {
        Self {
            subject: i.subject.clone(),
            roles: i.roles.clone(),
            tenant: i.tenant.clone(),
            key_name: i.key_name.clone(),
        }
    }
}

impl From<WireIdentity> for mcp_gateway_core::Identity {
    fn from(w: WireIdentity) -> Self {
        Self {
            subject: w.subject,
            roles: w.roles,
            tenant: w.tenant,
            key_name: w.key_name,
            claims: None,
        }
    }
}

/// A short, non-reversible name for a session id, safe to put in Redis and logs.
pub fn tag(session_id: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, session_id.as_bytes());
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The host name, the default replica name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mcp-gateway".into())
}

/// This replica's view of the cluster.
pub struct Cluster {
    /// This replica's name.
    pub replica: String,
    /// True when a `cluster:` section is configured (the replica header is then sent).
    pub enabled: bool,
    sealer: Option<Sealer>,
    max_age: u64,
    bus: Option<Arc<dyn Bus>>,
    /// Sealed ids deleted on this replica, by tag, with when the mark may be forgotten, so
    /// a deleted session is not adopted again from its id while Redis is unreachable.
    revoked: Mutex<HashMap<String, u64>>,
    /// Revocations made here that never reached the bus (Redis was away): announced to
    /// the other replicas when it returns.
    unannounced: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("replica", &self.replica)
            .field("seals", &self.seals())
            .field("redis", &self.has_bus())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Builds the cluster view; must run inside a Tokio runtime when Redis is configured.
    /// An unusable Redis URL (config validation reports it first) leaves Redis out.
    pub fn new(config: Option<&ClusterConfig>) -> Self {
        let Some(c) = config else {
            return Self {
                replica: host_name(),
                enabled: false,
                sealer: None,
                max_age: 0,
                bus: None,
                revoked: Mutex::new(HashMap::new()),
                unannounced: Mutex::default(),
            };
        };
        let bus = c.redis_url.as_deref().and_then(|url| {
            RedisBus::new(url)
                .map(|b| Arc::new(b) as Arc<dyn Bus>)
                .map_err(|e| tracing::error!(error = %e, "cluster.redisUrl is unusable; replicas will not share revocations or messages"))
                .ok()
        });
        Self {
            replica: c.replica.clone().unwrap_or_else(host_name),
            enabled: true,
            sealer: c
                .session_key
                .as_deref()
                .map(|k| Sealer::new(k, &c.previous_session_keys)),
            max_age: c.session_max_age,
            bus,
            revoked: Mutex::new(HashMap::new()),
            unannounced: Mutex::default(),
        }
    }

    /// The same view over `bus` instead of the configured one (replicas in one process
    /// share a [`MemoryBus`]).
    #[must_use]
    pub fn with_bus(mut self, bus: Arc<dyn Bus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// True when session ids are sealed (any replica can open them).
    pub fn seals(&self) -> bool {
        self.sealer.is_some()
    }

    /// True when replicas talk through Redis.
    pub fn has_bus(&self) -> bool {
        self.bus.is_some()
    }

    /// A sealed id for a new session, or `None` when sealing is off.
    pub fn seal(
        &self,
        version: &str,
        owner: Option<&str>,
        can_relay: bool,
        legacy: bool,
    ) -> Option<String> {
        let sealer = self.sealer.as_ref()?;
        Some(sealer.seal(&SessionState {
            version: version.to_string(),
            owner: owner.map(str::to_string),
            can_relay,
            legacy,
            created: now_secs(),
            replica: self.replica.clone(),
        }))
    }

    /// The state sealed in `id` when it is genuine and belongs to `owner` (no expiry or
    /// revocation checks: for routing a message to the replica holding the session).
    pub fn peek(&self, id: &str, owner: Option<&str>) -> Option<SessionState> {
        self.sealer
            .as_ref()?
            .open(id)
            .filter(|s| s.owner.as_deref() == owner)
    }

    /// Opens a sealed id this replica has not seen: its state when it is genuine, not
    /// expired, not revoked, and belongs to `owner`.
    pub async fn adopt(&self, id: &str, owner: Option<&str>) -> Option<SessionState> {
        let state = self.sealer.as_ref()?.open(id)?;
        if state.owner.as_deref() != owner
            || now_secs().saturating_sub(state.created) >= self.max_age
        {
            return None;
        }
        let tag = tag(id);
        if self.revoked.lock().expect("lock").contains_key(&tag) {
            return None;
        }
        if let Some(bus) = &self.bus {
            match bus.revoked(std::slice::from_ref(&tag)).await {
                Ok(flags) if flags.first() == Some(&true) => return None,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: the bus is unreachable; adopting a sealed session without the revocation check");
                }
            }
        }
        Some(state)
    }

    /// Marks a deleted sealed session so no replica adopts it again, and tells the others.
    pub async fn revoke(&self, id: &str) {
        let Some(sealer) = &self.sealer else { return };
        let Some(state) = sealer.open(id) else { return };
        let tag = tag(id);
        let until = state.created.saturating_add(self.max_age);
        {
            let mut revoked = self.revoked.lock().expect("lock");
            let now = now_secs();
            revoked.retain(|_, t| *t > now);
            revoked.insert(tag.clone(), until);
        }
        if let Some(bus) = &self.bus {
            let ttl = until.saturating_sub(now_secs()).max(1);
            let recorded = match bus.revoke(&tag, ttl).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: could not record a deleted session on the bus; it is announced when the bus returns");
                    false
                }
            };
            let announced = self
                .publish(BusMessage::Revoke {
                    session: tag.clone(),
                })
                .await;
            if !(recorded && announced) {
                self.unannounced.lock().expect("lock").insert(tag);
            }
        }
    }

    /// After the bus came back (on [`BusMessage::Resync`]): records again every revocation
    /// this replica knows, made here or heard from others, so a Redis restarted without
    /// its data learns them back, and announces them all again, so a replica that adopted
    /// such a session in the meantime (from a Redis that had forgotten) drops it.
    pub async fn republish(&self) {
        let Some(bus) = &self.bus else { return };
        let now = now_secs();
        let known: Vec<(String, u64)> = {
            let mut revoked = self.revoked.lock().expect("lock");
            revoked.retain(|_, t| *t > now);
            revoked.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        // The channel may be back before the command connection is: retry for a while.
        let mut attempt = 0;
        let mut i = 0;
        while i < known.len() {
            let (tag, until) = &known[i];
            match bus.revoke(tag, until.saturating_sub(now).max(1)).await {
                Ok(()) => i += 1,
                Err(e) if attempt < 40 => {
                    attempt += 1;
                    tracing::debug!(error = %e, "cluster: recording revocations again failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: could not record revocations again; retried when the bus returns");
                    return;
                }
            }
        }
        let mut pending: Vec<String> = self.unannounced.lock().expect("lock").drain().collect();
        pending.extend(known.into_iter().map(|(t, _)| t));
        pending.sort();
        pending.dedup();
        for tag in pending {
            if !self
                .publish(BusMessage::Revoke {
                    session: tag.clone(),
                })
                .await
            {
                self.unannounced.lock().expect("lock").insert(tag);
            }
        }
    }

    /// Records a revocation announced by another replica.
    pub fn remember_revoked(&self, tag: &str) {
        let until = now_secs().saturating_add(self.max_age);
        self.revoked
            .lock()
            .expect("lock")
            .insert(tag.to_string(), until);
    }

    /// Which of these session tags were revoked (asked of the bus in one round trip);
    /// empty when it is unreachable.
    pub async fn revoked_among(&self, tags: &[String]) -> Vec<String> {
        let Some(bus) = &self.bus else {
            return Vec::new();
        };
        match bus.revoked(tags).await {
            Ok(flags) => tags
                .iter()
                .zip(flags)
                .filter(|(_, revoked)| *revoked)
                .map(|(t, _)| t.clone())
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cluster: could not check sessions against the bus");
                Vec::new()
            }
        }
    }

    /// Publishes a message to the other replicas; false when there is no bus or it failed.
    pub async fn publish(&self, message: BusMessage) -> bool {
        let Some(bus) = &self.bus else { return false };
        let envelope = Envelope {
            from: self.replica.clone(),
            message,
        };
        match bus.publish(&envelope).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: could not publish to the other replicas");
                false
            }
        }
    }

    /// Receives the other replicas' messages; the bus reconnects by itself while it is away.
    /// Returns `None` when there is no bus.
    pub fn subscribe(&self, stop: CancellationToken) -> Option<mpsc::Receiver<BusMessage>> {
        Some(self.bus.as_ref()?.subscribe(self.replica.clone(), stop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replicas_on_one_memory_bus_share_revocations_and_messages() {
        let bus = MemoryBus::new();
        let key = "k".repeat(40);
        let replica = |name: &str| {
            let mut c = config(&key, &[]);
            c.replica = Some(name.into());
            Cluster::new(Some(&c)).with_bus(Arc::new(bus.clone()))
        };
        let (a, b) = (replica("a"), replica("b"));
        let stop = CancellationToken::new();
        let mut on_a = a.subscribe(stop.clone()).unwrap();
        let mut on_b = b.subscribe(stop.clone()).unwrap();
        assert!(matches!(on_a.recv().await, Some(BusMessage::Resync)));
        assert!(matches!(on_b.recv().await, Some(BusMessage::Resync)));
        let id = a.seal("2025-11-25", None, false, false).unwrap();
        assert!(b.adopt(&id, None).await.is_some());
        // Deleted on a: b must not adopt it again, and hears of it.
        a.revoke(&id).await;
        assert!(b.adopt(&id, None).await.is_none());
        match on_b.recv().await {
            Some(BusMessage::Revoke { session }) => assert_eq!(session, tag(&id)),
            other => panic!("{other:?}"),
        }
        // A replica does not hear itself.
        assert!(b.publish(BusMessage::Resync).await);
        assert!(matches!(on_a.recv().await, Some(BusMessage::Resync)));
        assert!(on_b.try_recv().is_err());
        stop.cancel();
    }

    fn config(key: &str, previous: &[&str]) -> ClusterConfig {
        ClusterConfig {
            replica: Some("r1".into()),
            session_key: Some(key.into()),
            previous_session_keys: previous.iter().map(|s| s.to_string()).collect(),
            redis_url: None,
            session_max_age: 3600,
        }
    }

    #[tokio::test]
    async fn sealed_ids_open_on_another_replica_and_resist_tampering() {
        let key = "k".repeat(40);
        let a = Cluster::new(Some(&config(&key, &[])));
        let b = Cluster::new(Some(&config(&key, &[])));
        let id = a.seal("2025-11-25", Some("alice"), true, false).unwrap();
        assert!(id.starts_with(SEALED_PREFIX));
        assert!(
            !id.contains("alice") && !id.contains("2025"),
            "the id reveals nothing"
        );
        let state = b.adopt(&id, Some("alice")).await.expect("opens on b");
        assert_eq!(state.version, "2025-11-25");
        assert!(state.can_relay && !state.legacy);
        assert_eq!(state.replica, "r1");
        // Another caller, a flipped bit, a foreign key, garbage: all unknown.
        assert!(b.adopt(&id, Some("mallory")).await.is_none());
        assert!(b.adopt(&id, None).await.is_none());
        let mut bytes = id.clone().into_bytes();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(
            b.adopt(&String::from_utf8(bytes).unwrap(), Some("alice"))
                .await
                .is_none()
        );
        let other = Cluster::new(Some(&config(&"x".repeat(40), &[])));
        assert!(other.adopt(&id, Some("alice")).await.is_none());
        assert!(b.adopt("s1.!!!", Some("alice")).await.is_none());
        assert!(b.adopt("0123456789abcdef", Some("alice")).await.is_none());
        // Two seals of the same state differ (fresh nonce).
        assert_ne!(
            id,
            a.seal("2025-11-25", Some("alice"), true, false).unwrap()
        );
    }

    #[test]
    fn bus_messages_round_trip_with_raw_results() {
        let env = Envelope {
            from: "r1".into(),
            message: BusMessage::Answer {
                session: "abc".into(),
                id: RequestId::String("mcp-gateway-r1-1".into()),
                result: Some(RawValue::from_string(r#"{"x":[1,2]}"#.into()).unwrap()),
                error: None,
            },
        };
        let text = serde_json::to_string(&env).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        match back.message {
            BusMessage::Answer { result, id, .. } => {
                assert_eq!(result.unwrap().get(), r#"{"x":[1,2]}"#);
                assert_eq!(id, RequestId::String("mcp-gateway-r1-1".into()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn rotation_revocation_and_max_age() {
        let old = "o".repeat(40);
        let new = "n".repeat(40);
        let before = Cluster::new(Some(&config(&old, &[])));
        let after = Cluster::new(Some(&config(&new, &[&old])));
        let id = before.seal("2025-06-18", None, false, true).unwrap();
        assert!(
            after.adopt(&id, None).await.is_some(),
            "an old key still opens"
        );
        after.revoke(&id).await;
        assert!(
            after.adopt(&id, None).await.is_none(),
            "deleted stays deleted"
        );
        let mut short = config(&new, &[]);
        short.session_max_age = 1;
        let c = Cluster::new(Some(&short));
        let sealer = c.sealer.as_ref().unwrap();
        let stale = sealer.seal(&SessionState {
            version: "2025-11-25".into(),
            owner: None,
            can_relay: false,
            legacy: false,
            created: now_secs() - 5,
            replica: "r0".into(),
        });
        assert!(c.adopt(&stale, None).await.is_none(), "older than max age");
        assert_eq!(tag(&id).len(), 32);
    }
}
