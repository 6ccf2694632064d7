//! [`Bus`]: what replicas share besides the sealed ids — revocation marks and one message
//! channel — behind a small trait, with two implementations: [`RedisBus`] for replicas in
//! different processes and [`MemoryBus`] for several in one process (and for tests).

use crate::{BusMessage, Envelope};
use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Bus round trips slower than this count as the bus being unreachable.
pub(crate) const BUS_TIMEOUT: Duration = Duration::from_millis(500);

/// Where replicas record revoked sessions and send each other messages. Failures are
/// reported, never fatal: a replica keeps serving what it can alone.
pub trait Bus: Send + Sync + 'static {
    /// Marks session `tag` revoked for `ttl_secs` seconds.
    fn revoke<'a>(&'a self, tag: &'a str, ttl_secs: u64) -> BoxFuture<'a, Result<(), String>>;
    /// Which of `tags` are revoked, in order.
    fn revoked<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Result<Vec<bool>, String>>;
    /// Sends `envelope` to every replica subscribed.
    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>>;
    /// The messages of every replica but `me` until `stop`, each (re)connection announced
    /// first as [`BusMessage::Resync`].
    fn subscribe(&self, me: String, stop: CancellationToken) -> mpsc::Receiver<BusMessage>;
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Replicas in one process: revocations in a shared map, messages on a broadcast channel.
/// Clones share both.
#[derive(Clone, Debug)]
pub struct MemoryBus {
    revoked: Arc<Mutex<HashMap<String, u64>>>,
    channel: broadcast::Sender<Envelope>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self {
            revoked: Arc::default(),
            channel: broadcast::channel(256).0,
        }
    }
}

impl MemoryBus {
    /// A bus of its own; give clones to the replicas that share it.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Bus for MemoryBus {
    fn revoke<'a>(&'a self, tag: &'a str, ttl_secs: u64) -> BoxFuture<'a, Result<(), String>> {
        let now = now_secs();
        let mut map = self.revoked.lock().expect("lock");
        map.retain(|_, until| *until > now);
        map.insert(tag.to_string(), now.saturating_add(ttl_secs));
        Box::pin(async { Ok(()) })
    }

    fn revoked<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Result<Vec<bool>, String>> {
        let now = now_secs();
        let map = self.revoked.lock().expect("lock");
        let flags = tags
            .iter()
            .map(|t| map.get(t).is_some_and(|until| *until > now))
            .collect();
        Box::pin(async { Ok(flags) })
    }

    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        // No receiver is not a failure: no other replica is listening yet.
        let _ = self.channel.send(envelope.clone());
        Box::pin(async { Ok(()) })
    }

    fn subscribe(&self, me: String, stop: CancellationToken) -> mpsc::Receiver<BusMessage> {
        let (tx, rx) = mpsc::channel(256);
        let mut sub = self.channel.subscribe();
        tokio::spawn(async move {
            if tx.send(BusMessage::Resync).await.is_err() {
                return;
            }
            loop {
                let env = tokio::select! {
                    _ = stop.cancelled() => return,
                    e = sub.recv() => e,
                };
                match env {
                    Ok(env) if env.from != me => {
                        if tx.send(env.message).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // Missed messages: the replica checks its sessions again.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if tx.send(BusMessage::Resync).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        rx
    }
}

/// Replicas in different processes: revocation marks as Redis keys with a TTL, messages on
/// one pub/sub channel; the connection recovers by itself.
pub struct RedisBus {
    client: redis::Client,
    conn: ConnectionManager,
    channel: String,
    prefix: String,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisBus")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// A bus on the Redis at `url` (connected lazily; needs a Tokio runtime).
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(BUS_TIMEOUT))
            .set_response_timeout(Some(BUS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), cfg)?;
        Ok(Self {
            client,
            conn,
            channel: "mcp-gateway:cluster".into(),
            prefix: "mcp-gateway:session:revoked:".into(),
        })
    }
}

async fn with_timeout<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(BUS_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 500 ms".into()),
    }
}

impl Bus for RedisBus {
    fn revoke<'a>(&'a self, tag: &'a str, ttl_secs: u64) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut set = redis::cmd("SET");
            set.arg(format!("{}{tag}", self.prefix))
                .arg(1)
                .arg("EX")
                .arg(ttl_secs.max(1));
            with_timeout(set.query_async::<()>(&mut conn)).await
        })
    }

    fn revoked<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Result<Vec<bool>, String>> {
        Box::pin(async move {
            if tags.is_empty() {
                return Ok(Vec::new());
            }
            // One pipelined round trip for all of them.
            let mut pipe = redis::pipe();
            for t in tags {
                pipe.cmd("EXISTS").arg(format!("{}{t}", self.prefix));
            }
            let mut conn = self.conn.clone();
            with_timeout(pipe.query_async::<Vec<bool>>(&mut conn)).await
        })
    }

    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let payload = serde_json::to_string(envelope).expect("bus message serializes");
            let mut conn = self.conn.clone();
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(&self.channel).arg(payload);
            with_timeout(publish.query_async::<i64>(&mut conn))
                .await
                .map(|_| ())
        })
    }

    fn subscribe(&self, me: String, stop: CancellationToken) -> mpsc::Receiver<BusMessage> {
        let (tx, rx) = mpsc::channel(256);
        let client = self.client.clone();
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            let mut was_down = false;
            loop {
                let attempt = async {
                    let mut ps = client.get_async_pubsub().await?;
                    ps.subscribe(&channel).await?;
                    redis::RedisResult::Ok(ps)
                };
                let ps = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = tokio::time::timeout(BUS_TIMEOUT * 4, attempt) => r,
                };
                match ps {
                    Ok(Ok(ps)) => {
                        if was_down {
                            tracing::info!("cluster: Redis channel is back");
                        }
                        was_down = false;
                        if tx.send(BusMessage::Resync).await.is_err() {
                            return;
                        }
                        delay = Duration::from_millis(100);
                        let mut stream = ps.into_on_message();
                        loop {
                            let msg = tokio::select! {
                                _ = stop.cancelled() => return,
                                m = futures::StreamExt::next(&mut stream) => m,
                            };
                            let Some(msg) = msg else { break };
                            let Ok(env) =
                                serde_json::from_slice::<Envelope>(msg.get_payload_bytes())
                            else {
                                tracing::debug!("cluster: skipped a malformed message");
                                continue;
                            };
                            if env.from != me && tx.send(env.message).await.is_err() {
                                return;
                            }
                        }
                        tracing::warn!("cluster: lost the Redis channel; reconnecting");
                    }
                    Ok(Err(e)) if !was_down => {
                        tracing::warn!(error = %e, "cluster: Redis channel unavailable; retrying");
                        was_down = true;
                    }
                    Err(_) if !was_down => {
                        tracing::warn!("cluster: Redis did not answer; retrying");
                        was_down = true;
                    }
                    _ => {}
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        });
        rx
    }
}
