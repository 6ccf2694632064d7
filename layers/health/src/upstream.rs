//! Health checks of one [`Upstream`]: its probe, its restart, and a fresh start from
//! healthy whenever it comes up again.

use crate::{Health, Probe, spawn_prober};
use mcp_gateway_core::{McpError, McpRequest};
use mcp_gateway_upstream::Upstream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Probes `u` for `health` (MCP `ping`; `tools/list` for a server that has no `ping`),
/// restarts it when it stops answering, and starts from healthy whenever it comes up.
pub fn watch_upstream(u: Upstream, health: Arc<Health>, stop: CancellationToken) {
    use std::sync::atomic::AtomicBool;
    let no_ping = Arc::new(AtomicBool::new(false));
    let probe: Probe = {
        let u = u.clone();
        Arc::new(move || {
            let svc = u.service();
            let no_ping = no_ping.clone();
            Box::pin(async move {
                let method = if no_ping.load(Ordering::Relaxed) {
                    "tools/list"
                } else {
                    "ping"
                };
                match svc.clone().oneshot(McpRequest::new(method, None)).await {
                    Ok(_) => Ok(()),
                    Err(McpError::Rpc { error, .. })
                        if error.code == -32601 && method == "ping" =>
                    {
                        no_ping.store(true, Ordering::Relaxed);
                        svc.oneshot(McpRequest::new("tools/list", None))
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            })
        })
    };
    let ready = {
        let u = u.clone();
        move || u.status().state == mcp_gateway_upstream::State::Ready
    };
    let restart = {
        let u = u.clone();
        move || u.restart()
    };
    spawn_prober(health.clone(), probe, ready, restart, stop.clone());
    tokio::spawn(async move {
        let mut rx = u.subscribe();
        let mut was_ready = rx.borrow().state == mcp_gateway_upstream::State::Ready;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = rx.changed() => if r.is_err() { return },
            }
            let ready = rx.borrow_and_update().state == mcp_gateway_upstream::State::Ready;
            if ready && !was_ready {
                // A fresh process or connection: judge it by its own probes.
                health.reset();
            }
            was_ready = ready;
        }
    });
}
