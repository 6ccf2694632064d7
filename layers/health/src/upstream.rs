//! Health checks of one [`Upstream`]: its probe, its restart, and a fresh start from
//! healthy whenever it comes up again.

use crate::{Health, Probe, spawn_prober};
use mcp_gateway_core::{McpError, McpRequest};
use mcp_gateway_upstream::Upstream;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Probes `u` for `health` with MCP `ping`, restarts it when it stops answering, and starts
/// from healthy whenever it comes up. Any JSON-RPC answer proves the server alive: a
/// 2026-07-28 server has no `ping` (nor, if it serves only resources, `tools/list`) and
/// answers "Method not found", which is an answer all the same.
pub fn watch_upstream(u: Upstream, health: Arc<Health>, stop: CancellationToken) {
    let probe: Probe = {
        let u = u.clone();
        Arc::new(move || {
            let svc = u.service();
            Box::pin(async move {
                match svc.oneshot(McpRequest::new("ping", None)).await {
                    Ok(_) | Err(McpError::Rpc { .. }) => Ok(()),
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
