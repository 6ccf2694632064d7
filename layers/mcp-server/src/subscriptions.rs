//! Resource subscriptions of the endpoint's clients: `resources/subscribe` of session
//! clients and `resourceSubscriptions` of 2026-07-28 `subscriptions/listen` streams.
//!
//! Each subscription goes through the MCP plane once, as its client (access rules apply),
//! and the upstream layer subscribes the server once per URI however many clients ask. An
//! update a server announces reaches exactly the clients subscribed to its URI: on a
//! session's GET stream, or on the listen stream tagged with its subscription id. A client
//! that goes away without unsubscribing is swept out, and its subscription released
//! upstream, by the endpoint's housekeeping.

use crate::sessions::Session;
use crate::{Endpoint, McpService, aggregate, sse_event};
use axum::body::Bytes;
use mcp_gateway_core::Identity;
use mcp_gateway_core::jsonrpc::{self, RequestId};
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::mpsc;

/// Who receives the updates of one subscription.
enum Subscriber {
    /// A session-generation client, on its GET stream.
    Session(Weak<Session>),
    /// A 2026-07-28 `subscriptions/listen` stream and its request id.
    Listen(mpsc::Sender<Bytes>, RequestId),
}

struct Entry {
    to: Subscriber,
    /// The caller, to release the subscription upstream as the one who made it.
    who: Option<Arc<Identity>>,
}

impl Entry {
    fn alive(&self) -> bool {
        match &self.to {
            Subscriber::Session(s) => s.strong_count() > 0,
            Subscriber::Listen(tx, _) => !tx.is_closed(),
        }
    }

    fn is_session(&self, session: &Arc<Session>) -> bool {
        matches!(&self.to, Subscriber::Session(s) if std::ptr::eq(s.as_ptr(), Arc::as_ptr(session)))
    }
}

/// Subscribers by URI.
#[derive(Default)]
pub(crate) struct Subscriptions {
    by_uri: Mutex<HashMap<String, Vec<Entry>>>,
}

impl Subscriptions {
    fn has(&self, uri: &str, session: &Arc<Session>) -> bool {
        let map = self.by_uri.lock().expect("lock");
        map.get(uri)
            .is_some_and(|v| v.iter().any(|e| e.is_session(session)))
    }

    fn add(&self, uri: &str, entry: Entry) {
        let mut map = self.by_uri.lock().expect("lock");
        map.entry(uri.to_string()).or_default().push(entry);
    }

    /// Removes the entries `matches` picks; returns their callers.
    fn remove(
        &self,
        uri: Option<&str>,
        mut matches: impl FnMut(&Entry) -> bool,
    ) -> Vec<(String, Option<Arc<Identity>>)> {
        let mut gone = Vec::new();
        let mut map = self.by_uri.lock().expect("lock");
        map.retain(|u, entries| {
            if uri.is_some_and(|want| want != u) {
                return true;
            }
            entries.retain(|e| {
                let drop = matches(e);
                if drop {
                    gone.push((u.clone(), e.who.clone()));
                }
                !drop
            });
            !entries.is_empty()
        });
        gone
    }

    /// Sends `notifications/resources/updated` for `uri` to its subscribers.
    pub(crate) fn deliver(&self, uri: &str) {
        let map = self.by_uri.lock().expect("lock");
        let Some(entries) = map.get(uri) else { return };
        let params = json!({ "uri": uri });
        let plain = sse_event(&jsonrpc::notification_frame(
            "notifications/resources/updated",
            Some(&params.to_string()),
        ));
        for e in entries {
            match &e.to {
                Subscriber::Session(s) => {
                    if let Some(s) = s.upgrade() {
                        s.push(plain.clone());
                    }
                }
                Subscriber::Listen(tx, id) => {
                    let p = json!({"uri": uri, "_meta": {"io.modelcontextprotocol/subscriptionId": id}});
                    let frame = jsonrpc::notification_frame(
                        "notifications/resources/updated",
                        Some(&p.to_string()),
                    );
                    let _ = tx.try_send(sse_event(&frame));
                }
            }
        }
    }
}

fn uri_params(uri: &str) -> Box<RawValue> {
    RawValue::from_string(json!({ "uri": uri }).to_string()).expect("valid JSON")
}

/// `resources/subscribe` of a session client: once per session and URI through the plane.
pub(crate) async fn subscribe<S: McpService>(
    ep: &Endpoint<S>,
    session: &Arc<Session>,
    uri: &str,
    who: Option<&Arc<Identity>>,
) -> Result<Box<RawValue>, jsonrpc::JsonRpcError> {
    if !ep.subscriptions.has(uri, session) {
        let r = aggregate::by_uri(ep, "resources/subscribe", Some(&uri_params(uri)), who).await?;
        ep.subscriptions.add(
            uri,
            Entry {
                to: Subscriber::Session(Arc::downgrade(session)),
                who: who.cloned(),
            },
        );
        return Ok(r);
    }
    Ok(crate::raw(&json!({})))
}

/// `resources/unsubscribe` of a session client.
pub(crate) async fn unsubscribe<S: McpService>(
    ep: &Endpoint<S>,
    session: &Arc<Session>,
    uri: &str,
    who: Option<&Arc<Identity>>,
) -> Result<Box<RawValue>, jsonrpc::JsonRpcError> {
    let gone = ep
        .subscriptions
        .remove(Some(uri), |e| e.is_session(session));
    let mut answer = Ok(crate::raw(&json!({})));
    // One release upstream per subscription made (the upstream counts them).
    for _ in gone {
        answer = aggregate::by_uri(ep, "resources/unsubscribe", Some(&uri_params(uri)), who).await;
    }
    answer
}

/// Subscribes a listen stream to `uris`; returns the ones it may follow.
pub(crate) async fn listen<S: McpService>(
    ep: &Endpoint<S>,
    tx: &mpsc::Sender<Bytes>,
    id: &RequestId,
    uris: &[String],
    who: Option<&Arc<Identity>>,
) -> Vec<String> {
    let mut honored: Vec<String> = Vec::new();
    for uri in uris {
        if honored.contains(uri) {
            continue; // named twice: followed once
        }
        let params = uri_params(uri);
        if aggregate::by_uri(ep, "resources/subscribe", Some(&params), who)
            .await
            .is_ok()
        {
            ep.subscriptions.add(
                uri,
                Entry {
                    to: Subscriber::Listen(tx.clone(), id.clone()),
                    who: who.cloned(),
                },
            );
            honored.push(uri.clone());
        }
    }
    honored
}

/// Releases upstream the subscriptions of clients that are gone (sessions ended or
/// expired, listen streams closed).
pub(crate) async fn sweep<S: McpService>(ep: &Endpoint<S>) {
    let gone = ep.subscriptions.remove(None, |e| !e.alive());
    for (uri, who) in gone {
        let _ = aggregate::by_uri(
            ep,
            "resources/unsubscribe",
            Some(&uri_params(&uri)),
            who.as_ref(),
        )
        .await;
    }
}

/// Hands the catalog's resource updates to subscribers for as long as the endpoint lives.
pub(crate) async fn deliver_updates<S: McpService>(shared: Weak<crate::Shared<S>>) {
    let Some(mut rx) = shared
        .upgrade()
        .and_then(|s| s.current())
        .map(|e| e.catalog.resource_updates())
    else {
        return;
    };
    loop {
        match rx.recv().await {
            Ok(u) => match shared.upgrade() {
                Some(ep) => ep.subscriptions.deliver(&u.uri),
                None => return,
            },
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "resource updates dropped");
            }
            Err(_) => return,
        }
    }
}
