//! Configuration reload: one path for `SIGHUP`, the file watch and `POST
//! /api/v1/admin/reload`.
//!
//! A reload reads and checks the whole new configuration first; an invalid one changes
//! nothing. A valid one becomes the next generation (`AppState::next`): servers are diffed
//! by id, the kept ones keep their process, and the gateway's HTTP service and MCP endpoint
//! switch to it at once: each request is served by the one generation it reached. The
//! servers that were removed or must restart are stopped once the requests of the old
//! generation are done (bounded by `shutdownTimeout`).

use crate::config::{Config, ConfigErrors};
use crate::state::{AppState, Running};
use futures::future::BoxFuture;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

pub use crate::state::ServerChanges;

/// How a reload is started from the REST API: the gateway's own reload, from its file
/// (`None` once the gateway is gone).
pub(crate) type Reloader = Box<dyn Fn() -> BoxFuture<'static, Option<ReloadReport>> + Send + Sync>;

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadReport {
    /// `ok` (applied) or `error` (refused: nothing changed).
    pub result: &'static str,
    /// The configuration generation in force afterwards.
    pub generation: u64,
    /// Why the configuration was refused, one line per problem, as `validate` prints them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What happened to each server.
    pub servers: ServerChanges,
    /// Keys whose change needs a restart of the gateway: they keep their old value, the
    /// rest of the reload applies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restart_required: Vec<&'static str>,
    /// The file read, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// How long the reload took, in milliseconds (not counting the draining of stopped
    /// servers, which goes on in the background).
    pub duration_ms: f64,
}

impl ReloadReport {
    /// True when the new configuration is in force.
    pub fn applied(&self) -> bool {
        self.result == "ok"
    }

    /// A reload refused for `errors`.
    pub(crate) fn refused(
        st: &AppState,
        errors: &ConfigErrors,
        source: Option<&Path>,
        t0: Instant,
    ) -> Self {
        st.rt.reloads[1].fetch_add(1, Ordering::Relaxed);
        let errors: Vec<String> = errors.to_string().lines().map(String::from).collect();
        for e in &errors {
            tracing::error!(target: "mcp_gateway::reload", "{e}");
        }
        tracing::error!(
            target: "mcp_gateway::reload",
            problems = errors.len(),
            generation = st.generation,
            "configuration reload refused; the configuration in force is unchanged"
        );
        Self {
            result: "error",
            generation: st.generation,
            errors,
            servers: ServerChanges::default(),
            restart_required: Vec::new(),
            source: source.map(Path::to_path_buf),
            duration_ms: t0.elapsed().as_secs_f64() * 1e3,
        }
    }
}

/// The keys whose change between `old` and `new` cannot apply while the gateway runs; they
/// are put back to their old value in `new`.
pub(crate) fn keep_fixed(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut fixed = Vec::new();
    macro_rules! fixed {
        ($($key:literal => $($field:ident).+),* $(,)?) => {$(
            if old.$($field).+ != new.$($field).+ {
                fixed.push($key);
                new.$($field).+ = old.$($field).+.clone();
            }
        )*};
    }
    fixed! {
        "port" => port,
        "host" => host,
        "cluster" => cluster,
        "workers" => workers,
        "connections" => connections,
        "logLevel" => log_level,
        "logFormat" => log_format,
        "sessionIdleTimeout" => session_idle_timeout,
        "monitor.prometheus" => monitor.prometheus,
        "monitor.requestLog" => monitor.request_log,
        "monitor.requestLogSize" => monitor.request_log_size,
        "monitor.maxSeries" => monitor.max_series,
        "monitor.tracing" => monitor.tracing,
        "reload" => reload,
    }
    fixed
}

/// Applies `config` (read from `source`) as the next generation after `old`; `swap` puts
/// the new generation's HTTP service in place.
pub(crate) async fn apply(
    old: Arc<AppState>,
    config: Config,
    source: Option<&Path>,
    swap: impl FnOnce(&Arc<AppState>),
) -> ReloadReport {
    let t0 = Instant::now();
    let rt = old.rt.clone();
    let _one = rt.reload_lock.lock().await;
    // The generation in force once this reload has its turn.
    let old = rt.current.load_full().unwrap_or(old);
    let file = source.unwrap_or(Path::new("<config>"));
    let mut config = config;
    let restart_required = keep_fixed(&old.config, &mut config);
    let plan = match config.plan(file) {
        Ok(p) => p,
        Err(errs) => return ReloadReport::refused(&old, &errs, source, t0),
    };
    let (next, servers, drained) = AppState::next(&old, plan).await;
    next.install();
    swap(&next);
    rt.reloads[0].fetch_add(1, Ordering::Relaxed);
    let report = ReloadReport {
        result: "ok",
        generation: next.generation,
        errors: Vec::new(),
        servers,
        restart_required,
        source: source.map(Path::to_path_buf),
        duration_ms: t0.elapsed().as_secs_f64() * 1e3,
    };
    let s = &report.servers;
    tracing::info!(
        target: "mcp_gateway::reload",
        generation = report.generation,
        added = ?s.added,
        removed = ?s.removed,
        restarted = ?s.restarted,
        updated = ?s.updated,
        duration_ms = report.duration_ms,
        "configuration reloaded"
    );
    for key in &report.restart_required {
        tracing::warn!(
            target: "mcp_gateway::reload",
            key = *key,
            "{key} changed in the configuration but cannot change while the gateway runs; \
             it keeps its old value until a restart"
        );
    }
    let limit = Duration::from_millis(next.config.shutdown_timeout);
    tokio::spawn(drain(Arc::downgrade(&old), drained, limit));
    report
}

/// Stops `servers` once the generation `old` serves no request any more (its calls in
/// flight finish), or after `limit`.
async fn drain(old: Weak<AppState>, servers: Vec<Running>, limit: Duration) {
    if servers.is_empty() {
        return;
    }
    let endpoint = old.upgrade().map(|st| Arc::downgrade(&st.endpoint));
    let deadline = tokio::time::Instant::now() + limit;
    let busy = || old.strong_count() > 0 || endpoint.as_ref().is_some_and(|e| e.strong_count() > 0);
    while busy() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if busy() {
        tracing::warn!(
            target: "mcp_gateway::reload",
            "calls of the previous configuration still running after {} ms; stopping its \
             removed servers anyway",
            limit.as_millis()
        );
    }
    let ids: Vec<String> = servers.iter().map(|r| r.config.id.clone()).collect();
    futures::future::join_all(servers.into_iter().map(Running::stop)).await;
    tracing::info!(target: "mcp_gateway::reload", servers = ?ids, "stopped servers the reload removed or replaced");
}

/// Watches `path` and reloads through `reload` when its content changes: polled twice a
/// second, applied once the file has been stable for one poll. Polling sees every way a
/// file is replaced (written in place, written to a temporary and renamed over it, a
/// Kubernetes ConfigMap's symlink swap) at the cost of one `stat` per poll.
pub(crate) async fn watch<F, Fut>(
    path: PathBuf,
    loaded: Option<Vec<u8>>,
    reload: F,
    stop: tokio_util::sync::CancellationToken,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stamp = |p: &Path| {
        std::fs::metadata(p).ok().map(|m| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                inode(&m),
            )
        })
    };
    let content = |p: &Path| std::fs::read(p).ok();
    // Compared with what the gateway loaded, so a save made before this task first runs
    // is not taken for the starting point.
    let mut applied = loaded.or_else(|| content(&path));
    let mut seen = stamp(&path);
    let mut pending = applied != content(&path);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = stamp(&path);
        if now != seen {
            // Changed since the last poll: wait for it to settle (an editor may still be
            // writing).
            seen = now;
            pending = true;
            continue;
        }
        if !pending {
            continue;
        }
        pending = false;
        let text = content(&path);
        if text.is_none() || text == applied {
            continue;
        }
        applied = text;
        tracing::info!(target: "mcp_gateway::reload", file = %path.display(), "configuration file changed; reloading");
        reload().await;
    }
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}
