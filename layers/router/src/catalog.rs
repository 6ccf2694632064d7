//! The one catalog: every upstream's tools under the one name a client sees them by, on
//! `/mcp`, in the REST API's `qualifiedName` and in `POST /api/v1/tools/call` alike.
//!
//! Naming policy ([`ToolNaming`]):
//! - `Prefixed` (default): `<prefix>__<tool>`, the prefix being the server's tool prefix or
//!   its id (an empty prefix exposes that server's names bare);
//! - `Bare`: upstream names unchanged; when two servers offer the same name, the server
//!   listed first keeps it and the others get `<id>__<tool>`.
//!
//! Characters outside `[a-zA-Z0-9_-]` become `_`; a name over 64 characters is cut and given
//! a hash suffix; any remaining clash gets `_2`, `_3`, …. The same policy names prompts.
//!
//! A name is resolved in this order: an exposed name; with an explicit server, that
//! server's own name; a bare upstream name offered by exactly one server; `<id>__<tool>`
//! (so a server still starting can be called by the name it will get). A server with a
//! `toolPrefix` of its own answers only to its exposed names.
//! The catalog is an immutable snapshot swapped whole when a server's tool list changes,
//! so a lookup is one read lock and a hash probe or two.

use mcp_gateway_core::{McpError, Route};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// Maps hashed with aHash: a lookup is a hash of a short name or two, and SipHash (std's
/// default) took most of it. aHash's keys are random per process too.
type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// Separator between server id (or prefix) and tool name in qualified tool names.
pub const QUALIFIER: &str = "__";

/// Longest exposed name (clients accept `^[a-zA-Z0-9_-]{1,64}$`).
const MAX_NAME: usize = 64;

/// How upstream tool and prompt names are exposed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ToolNaming {
    /// `<prefix>__<name>` (the prefix defaults to the server id).
    #[default]
    Prefixed,
    /// Names unchanged; the first server (in config order) keeps a contested name.
    Bare,
}

/// One tool as a server lists it.
#[derive(Clone, Debug)]
pub struct ToolEntry {
    /// Its name on the server.
    pub name: Arc<str>,
    /// The server's tool object, raw.
    pub raw: Arc<RawValue>,
}

impl ToolEntry {
    /// A tool known by name only (`{"name": …}`).
    pub fn named(name: &str) -> Self {
        let raw = serde_json::value::to_raw_value(&serde_json::json!({ "name": name }))
            .expect("a name serializes");
        Self {
            name: Arc::from(name),
            raw: Arc::from(raw),
        }
    }
}

/// One tool as clients see it.
#[derive(Debug)]
pub struct ExposedTool {
    /// The one name clients use for it.
    pub name: Arc<str>,
    /// Id of the server offering it.
    pub server: Arc<str>,
    /// Its name on that server.
    pub tool: Arc<str>,
    /// The server's position in config order.
    pub slot: usize,
    /// The server's tool object with `name` replaced by the exposed name.
    pub json: Box<RawValue>,
    /// The server's tool object as it listed it.
    pub raw: Arc<RawValue>,
}

/// A server's state as the aggregating front ends need it.
#[derive(Clone, Debug, Default)]
struct ServerState {
    ready: bool,
    capabilities: Option<Arc<RawValue>>,
    /// Its capabilities name `logging` (read once, not per call).
    logs: bool,
}

/// What the catalog knows at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Bumped on every change of any server's tool list.
    pub epoch: u64,
    /// Tool lists by server slot; `None` until first discovered.
    per_server: Vec<Option<Arc<[ToolEntry]>>>,
    /// Every exposed tool, sorted by exposed name.
    tools: Vec<ExposedTool>,
    /// Exposed name → index in `tools`.
    by_exposed: Map<Arc<str>, usize>,
    /// Upstream name → slots of the servers offering it.
    by_upstream: Map<Arc<str>, Box<[usize]>>,
    /// Indexes in `tools` of each server's tools, in the order the server listed them.
    of_server: Vec<Vec<usize>>,
}

impl Snapshot {
    /// Every exposed tool, sorted by exposed name.
    pub fn tools(&self) -> &[ExposedTool] {
        &self.tools
    }

    /// The tool exposed as `name`.
    pub fn get(&self, name: &str) -> Option<&ExposedTool> {
        self.by_exposed.get(name).map(|i| &self.tools[*i])
    }

    /// The tools of the server at `slot`, in the order it listed them.
    pub fn server_tools(&self, slot: usize) -> impl Iterator<Item = &ExposedTool> {
        self.of_server
            .get(slot)
            .into_iter()
            .flatten()
            .map(|i| &self.tools[*i])
    }

    /// Whether the server at `slot` offers `name` (`None`: its tools are not known yet).
    fn server_has(&self, slot: usize, name: &str) -> Option<bool> {
        self.per_server.get(slot)?.as_ref()?;
        Some(
            self.by_upstream
                .get(name)
                .is_some_and(|slots| slots.contains(&slot)),
        )
    }
}

struct Server {
    id: Arc<str>,
    /// `None`: names are exposed bare.
    prefix: Option<Box<str>>,
}

struct Shared {
    servers: Vec<Server>,
    by_id: Map<Arc<str>, usize>,
    naming: ToolNaming,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Serializes writers: a snapshot is rebuilt outside the lock readers take, and
    /// epochs are announced in order.
    writer: std::sync::Mutex<()>,
    states: RwLock<Vec<ServerState>>,
    epoch: AtomicU64,
    changes: broadcast::Sender<u64>,
    updates: broadcast::Sender<ResourceUpdate>,
}

/// A server's `notifications/resources/updated`.
#[derive(Clone, Debug)]
pub struct ResourceUpdate {
    /// The server that sent it.
    pub server: Arc<str>,
    /// The updated resource.
    pub uri: Arc<str>,
}

/// The shared catalog (cheap to clone; clones see the same tools).
#[derive(Clone)]
pub struct Catalog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("servers", &self.server_ids().collect::<Vec<_>>())
            .field("naming", &self.shared.naming)
            .finish()
    }
}

/// Builds a [`Catalog`].
#[derive(Default)]
#[must_use]
pub struct CatalogBuilder {
    servers: Vec<(Arc<str>, Option<String>)>,
    naming: ToolNaming,
    /// The catalog this one replaces: its channels and epochs carry on.
    after: Option<Catalog>,
    /// Tool lists and states known before the catalog starts.
    seeds: Vec<Seed>,
}

/// A server's tools and state, known when a catalog is built.
struct Seed {
    id: Arc<str>,
    tools: Option<Arc<[ToolEntry]>>,
    ready: bool,
    capabilities: Option<Arc<RawValue>>,
}

impl CatalogBuilder {
    /// The naming policy (default [`ToolNaming::Prefixed`]).
    pub fn naming(mut self, naming: ToolNaming) -> Self {
        self.naming = naming;
        self
    }

    /// Adds a server (config order matters: in bare naming the first keeps a contested
    /// name). `prefix`: its tool prefix, `None` for the policy's default, `Some("")` for
    /// bare names.
    pub fn server(mut self, id: impl Into<Arc<str>>, prefix: Option<String>) -> Self {
        self.servers.push((id.into(), prefix));
        self
    }

    /// Makes the catalog the successor of `previous` (a configuration reload): subscribers
    /// of `previous`'s tool-list changes and resource updates hear this one's, and its
    /// epochs continue `previous`'s, so a list fetched under the old catalog is never
    /// taken for a fresh one.
    pub fn after(mut self, previous: &Catalog) -> Self {
        self.after = Some(previous.clone());
        self
    }

    /// Starts server `id` with the tools and state already known for it (a server kept
    /// across a reload): its tools are there from the first snapshot, without a change
    /// announced.
    pub fn seed(
        mut self,
        id: impl Into<Arc<str>>,
        tools: Option<Arc<[ToolEntry]>>,
        ready: bool,
        capabilities: Option<Arc<RawValue>>,
    ) -> Self {
        self.seeds.push(Seed {
            id: id.into(),
            tools,
            ready,
            capabilities,
        });
        self
    }

    /// Builds the catalog (server ids must be unique; later duplicates are ignored).
    pub fn build(self) -> Catalog {
        let mut by_id = Map::default();
        let mut servers = Vec::new();
        for (id, prefix) in self.servers {
            if by_id.contains_key(&id) {
                continue;
            }
            by_id.insert(id.clone(), servers.len());
            let prefix = match (prefix, self.naming) {
                (Some(p), _) if p.is_empty() => None,
                (Some(p), _) => Some(p.into_boxed_str()),
                (None, ToolNaming::Prefixed) => Some(Box::from(&*id)),
                (None, ToolNaming::Bare) => None,
            };
            servers.push(Server { id, prefix });
        }
        let n = servers.len();
        let snapshot = Snapshot {
            per_server: vec![None; n],
            of_server: vec![Vec::new(); n],
            ..Snapshot::default()
        };
        let (epoch, changes, updates) = match &self.after {
            Some(p) => (
                p.epoch() + 1,
                p.shared.changes.clone(),
                p.shared.updates.clone(),
            ),
            None => (0, broadcast::channel(16).0, broadcast::channel(256).0),
        };
        let catalog = Catalog {
            shared: Arc::new(Shared {
                servers,
                by_id,
                naming: self.naming,
                snapshot: RwLock::new(Arc::new(snapshot)),
                writer: std::sync::Mutex::new(()),
                states: RwLock::new(vec![ServerState::default(); n]),
                epoch: AtomicU64::new(epoch),
                changes,
                updates,
            }),
        };
        if !self.seeds.is_empty() {
            let mut per_server = vec![None; n];
            for seed in self.seeds {
                let Some(slot) = catalog.slot(&seed.id) else {
                    continue;
                };
                per_server[slot] = seed.tools;
                catalog.set_server_state(&seed.id, seed.ready, seed.capabilities);
            }
            let fresh = catalog.build_snapshot(per_server, epoch);
            *catalog.shared.snapshot.write().expect("catalog lock") = Arc::new(fresh);
        }
        catalog
    }
}

impl Catalog {
    /// Starts a catalog.
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder::default()
    }

    /// Ids of every server, in config order.
    pub fn server_ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.shared.servers.iter().map(|s| &s.id)
    }

    /// The slot (config position) of server `id`.
    pub fn slot(&self, id: &str) -> Option<usize> {
        self.shared.by_id.get(id).copied()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.read().expect("catalog lock").clone()
    }

    /// The epoch of the current snapshot (changes whenever any tool list changes).
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }

    /// Receives the new epoch each time a tool list changes.
    pub fn subscribe(&self) -> broadcast::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Tells subscribers the tool lists changed (who may see which tool did, for
    /// instance), with a new epoch.
    pub fn announce_change(&self) {
        let _writer = self.shared.writer.lock().expect("catalog writer");
        let epoch = self.shared.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let _ = self.shared.changes.send(epoch);
    }

    /// Announces that server `server` updated resource `uri`.
    pub fn publish_resource_update(&self, server: Arc<str>, uri: Arc<str>) {
        let _ = self.shared.updates.send(ResourceUpdate { server, uri });
    }

    /// Receives every resource update servers announce.
    pub fn resource_updates(&self) -> broadcast::Receiver<ResourceUpdate> {
        self.shared.updates.subscribe()
    }

    /// Replaces the tools of server `id` (after every discovery) and announces the change.
    pub fn set_tools(&self, id: &str, tools: impl IntoIterator<Item = ToolEntry>) {
        let Some(slot) = self.slot(id) else { return };
        let tools: Arc<[ToolEntry]> = tools.into_iter().collect();
        let _writer = self.shared.writer.lock().expect("catalog writer");
        let mut per_server = self.snapshot().per_server.clone();
        // An unchanged list (a server re-announcing the same tools, or a reload handing
        // the list on) changes nothing and announces nothing.
        if per_server[slot].as_ref().is_some_and(|old| {
            old.len() == tools.len()
                && old
                    .iter()
                    .zip(tools.iter())
                    .all(|(a, b)| a.name == b.name && a.raw.get() == b.raw.get())
        }) {
            return;
        }
        per_server[slot] = Some(tools);
        let epoch = self.shared.epoch.load(Ordering::Acquire) + 1;
        // Built without holding the readers' lock: resolving calls never wait for it.
        let fresh = Arc::new(self.build_snapshot(per_server, epoch));
        *self.shared.snapshot.write().expect("catalog lock") = fresh;
        self.shared.epoch.store(epoch, Ordering::Release);
        let _ = self.shared.changes.send(epoch);
    }

    /// Records whether server `id` is ready and the capabilities it advertised.
    pub fn set_server_state(&self, id: &str, ready: bool, capabilities: Option<Arc<RawValue>>) {
        let Some(slot) = self.slot(id) else { return };
        let logs = capabilities.as_ref().is_some_and(|c| {
            serde_json::from_str::<BTreeMap<&str, serde::de::IgnoredAny>>(c.get())
                .is_ok_and(|m| m.contains_key("logging"))
        });
        self.shared.states.write().expect("catalog lock")[slot] = ServerState {
            ready,
            capabilities,
            logs,
        };
    }

    /// True when the server in `slot` declared `logging`: only its calls can carry log
    /// messages to relay.
    pub fn logs(&self, slot: usize) -> bool {
        let states = self.shared.states.read().expect("catalog lock");
        states.get(slot).is_some_and(|s| s.logs)
    }

    /// Ready servers whose capabilities include `cap` (`"prompts"`, `"resources"`, …), in
    /// config order.
    pub fn servers_with(&self, cap: &str) -> Vec<Arc<str>> {
        let states = self.shared.states.read().expect("catalog lock");
        self.shared
            .servers
            .iter()
            .zip(states.iter())
            .filter(|(_, st)| {
                st.ready
                    && st.capabilities.as_ref().is_some_and(|c| {
                        serde_json::from_str::<BTreeMap<&str, serde::de::IgnoredAny>>(c.get())
                            .is_ok_and(|m| m.contains_key(cap))
                    })
            })
            .map(|(s, _)| s.id.clone())
            .collect()
    }

    /// The name a prompt (or tool) `name` of `server` wants under the naming policy, before
    /// clashes with other names are settled (see [`Catalog::fallback_name`]).
    pub fn item_name(&self, server: &str, name: &str) -> String {
        sanitize(&self.item_name_unsanitized(server, name))
    }

    /// [`Catalog::item_name`] before sanitizing: equal to it when the name is valid as it is.
    pub fn item_name_unsanitized(&self, server: &str, name: &str) -> String {
        match self
            .slot(server)
            .and_then(|s| self.shared.servers[s].prefix.as_deref())
        {
            Some(p) => format!("{p}{QUALIFIER}{name}"),
            None => name.to_string(),
        }
    }

    /// The name an item of `server` gets when the one it wanted is taken: `<id>__<name>`.
    pub fn fallback_name(server: &str, name: &str) -> String {
        sanitize(&format!("{server}{QUALIFIER}{name}"))
    }

    fn build_snapshot(&self, per_server: Vec<Option<Arc<[ToolEntry]>>>, epoch: u64) -> Snapshot {
        let mut taken: Map<Arc<str>, ()> = Map::default();
        let mut tools = Vec::new();
        let mut by_upstream: Map<Arc<str>, Vec<usize>> = Map::default();
        // Names are given in two rounds: first to the tools whose wanted name is valid as it
        // is, then to those that had to be sanitized, so that `delete.all` (shown as
        // `delete_all`) never takes the name of a real `delete_all`. Within a round the first
        // server (config order) to offer a name keeps it.
        let mut names: Vec<Vec<Option<String>>> = per_server
            .iter()
            .map(|l| vec![None; l.as_ref().map_or(0, |l| l.len())])
            .collect();
        for valid_round in [true, false] {
            for (slot, (server, list)) in self.shared.servers.iter().zip(&per_server).enumerate() {
                for (i, t) in list.iter().flat_map(|l| l.iter()).enumerate() {
                    let raw = match &server.prefix {
                        Some(p) => format!("{p}{QUALIFIER}{}", t.name),
                        None => t.name.to_string(),
                    };
                    let wanted = sanitize(&raw);
                    if (wanted == raw) != valid_round {
                        continue;
                    }
                    let mut name = if taken.contains_key(&*wanted) && server.prefix.is_none() {
                        Self::fallback_name(&server.id, &t.name)
                    } else {
                        wanted
                    };
                    let mut n = 2;
                    while taken.contains_key(&*name) {
                        let suffix = format!("_{n}");
                        let mut base = name.clone();
                        base.truncate(MAX_NAME - suffix.len());
                        name = format!("{base}{suffix}");
                        n += 1;
                    }
                    taken.insert(Arc::from(name.as_str()), ());
                    names[slot][i] = Some(name);
                }
            }
        }
        for (slot, (server, list)) in self.shared.servers.iter().zip(&per_server).enumerate() {
            for (i, t) in list.iter().flat_map(|l| l.iter()).enumerate() {
                let v = by_upstream.entry(t.name.clone()).or_default();
                if !v.contains(&slot) {
                    v.push(slot);
                }
                let Some(name) = names[slot][i].take() else {
                    continue;
                };
                let Some(json) = rename(&t.raw, &name) else {
                    continue;
                };
                tools.push(ExposedTool {
                    name: Arc::from(name),
                    server: server.id.clone(),
                    tool: t.name.clone(),
                    slot,
                    json,
                    raw: t.raw.clone(),
                });
            }
        }
        // Each server's tools in listing order, before the whole list is sorted by name.
        let mut order: Vec<usize> = (0..tools.len()).collect();
        order.sort_by(|a, b| tools[*a].name.cmp(&tools[*b].name));
        let mut position = vec![0; tools.len()];
        for (new, old) in order.iter().enumerate() {
            position[*old] = new;
        }
        let mut of_server = vec![Vec::new(); per_server.len()];
        for (old, t) in tools.iter().enumerate() {
            of_server[t.slot].push(position[old]);
        }
        let mut slots: Vec<Option<ExposedTool>> = tools.into_iter().map(Some).collect();
        let tools: Vec<ExposedTool> = order
            .iter()
            .map(|i| slots[*i].take().expect("each index once"))
            .collect();
        let by_exposed = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Snapshot {
            epoch,
            per_server,
            tools,
            by_exposed,
            by_upstream: by_upstream
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            of_server,
        }
    }

    /// Decides where a call of tool `name` (explicit target `server`, if any) goes.
    ///
    /// The snapshot is read under the lock rather than through a cloned `Arc`: a lookup
    /// then costs two atomic operations instead of four, and nothing is allocated.
    pub fn resolve(&self, name: &str, server: Option<&str>) -> Result<Route, McpError> {
        let snap = self.shared.snapshot.read().expect("catalog lock");
        let servers = &self.shared.servers;
        let route = |slot: usize, tool: Arc<str>| Route {
            server: servers[slot].id.clone(),
            tool,
            slot,
        };
        let exposed = snap.by_exposed.get(name).map(|i| &snap.tools[*i]);
        if let Some(sid) = server {
            let slot = self
                .slot(sid)
                .ok_or_else(|| McpError::UnknownServer(sid.into()))?;
            let id = &servers[slot].id;
            return match snap.server_has(slot, name) {
                Some(true) => Ok(route(slot, upstream_name(&snap, name))),
                // Not listed yet (still starting or down since boot): let the upstream answer.
                None => Ok(route(slot, Arc::from(name))),
                Some(false) => match exposed.filter(|t| t.slot == slot) {
                    Some(t) => Ok(route(slot, t.tool.clone())),
                    None => match qualified(name, id)
                        .filter(|_| servers[slot].prefix.as_deref().is_none_or(|p| p == &**id))
                        .filter(|t| snap.server_has(slot, t) == Some(true))
                    {
                        Some(t) => Ok(route(slot, upstream_name(&snap, t))),
                        None => Err(McpError::UnknownTool {
                            name: name.to_string(),
                            hint: Some(format!("server '{id}' has no such tool")),
                        }),
                    },
                },
            };
        }
        if let Some(t) = exposed {
            return Ok(route(t.slot, t.tool.clone()));
        }
        // A server's own name, when one server offers it; a server with a prefix of its own
        // answers only to its exposed names.
        if let Some((key, slots)) = snap.by_upstream.get_key_value(name) {
            let own_prefix = |i: &usize| {
                servers[*i]
                    .prefix
                    .as_deref()
                    .is_some_and(|p| p != &*servers[*i].id)
            };
            let mut open = slots.iter().filter(|i| !own_prefix(i));
            match (open.next(), open.next()) {
                (Some(one), None) => return Ok(route(*one, key.clone())),
                (Some(_), Some(_)) => {
                    return Err(McpError::AmbiguousTool {
                        name: name.to_string(),
                        servers: slots
                            .iter()
                            .filter(|i| !own_prefix(i))
                            .map(|i| servers[*i].id.to_string())
                            .collect(),
                    });
                }
                (None, _) => {}
            }
        }
        // `<id>__<tool>` where that is, or would be once discovered, the exposed name (and
        // for bare servers, whose clashing names take that form); a server with a prefix of
        // its own answers only to it.
        for (slot, s) in servers.iter().enumerate() {
            if s.prefix.as_deref().is_some_and(|p| p != &*s.id) {
                continue;
            }
            if let Some(tool) = qualified(name, &s.id) {
                match snap.server_has(slot, tool) {
                    Some(true) => return Ok(route(slot, upstream_name(&snap, tool))),
                    None => return Ok(route(slot, Arc::from(tool))),
                    Some(false) => {}
                }
            }
        }
        let unknown: Vec<&str> = servers
            .iter()
            .enumerate()
            .filter(|(i, _)| snap.per_server[*i].is_none())
            .map(|(_, s)| &*s.id)
            .collect();
        Err(McpError::UnknownTool {
            name: name.to_string(),
            hint: (!unknown.is_empty()).then(|| {
                format!(
                    "tools of {} are not known yet: disabled, starting or down",
                    unknown.join(", ")
                )
            }),
        })
    }
}

/// The catalog's own copy of an upstream name it knows (no allocation).
fn upstream_name(snap: &Snapshot, name: &str) -> Arc<str> {
    snap.by_upstream
        .get_key_value(name)
        .map_or_else(|| Arc::from(name), |(k, _)| k.clone())
}

/// `tool` when `name` is `<server>__<tool>`.
pub(crate) fn qualified<'a>(name: &'a str, server: &str) -> Option<&'a str> {
    name.strip_prefix(server)?
        .strip_prefix(QUALIFIER)
        .filter(|t| !t.is_empty())
}

/// A name valid for clients: `[a-zA-Z0-9_-]`, at most 64 characters, stable.
pub fn sanitize(s: &str) -> String {
    let mut out = mcp_gateway_core::glob::client_form(s);
    if out.is_empty() {
        out.push('_');
    }
    if out.len() > MAX_NAME {
        // FNV-1a of the full name keeps truncated names distinct and stable across runs.
        let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        out.truncate(MAX_NAME - 9);
        out.push_str(&format!("_{:08x}", h as u32));
    }
    out
}

/// `tool` with its `name` member replaced.
fn rename(tool: &RawValue, name: &str) -> Option<Box<RawValue>> {
    let mut obj: BTreeMap<std::borrow::Cow<'_, str>, &RawValue> =
        serde_json::from_str(tool.get()).ok()?;
    let n = RawValue::from_string(serde_json::to_string(name).ok()?).ok()?;
    obj.insert("name".into(), &n);
    RawValue::from_string(serde_json::to_string(&obj).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(c: &Catalog) -> Vec<(String, String, String)> {
        c.snapshot()
            .tools()
            .iter()
            .map(|t| (t.name.to_string(), t.server.to_string(), t.tool.to_string()))
            .collect()
    }

    fn tools(names: &[&str]) -> Vec<ToolEntry> {
        names.iter().map(|n| ToolEntry::named(n)).collect()
    }

    #[test]
    fn sanitizes_and_bounds_names() {
        assert_eq!(sanitize("fs__read.file"), "fs__read_file");
        assert_eq!(sanitize("héllo wörld"), "h_llo_w_rld");
        let long = "x".repeat(100);
        let a = sanitize(&long);
        let b = sanitize(&format!("{long}y"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn a_valid_name_keeps_its_name() {
        let c = Catalog::builder().server("weird", None).build();
        // The sanitized name comes first in the listing and still yields.
        c.set_tools("weird", tools(&["delete.all", "delete_all", "write file"]));
        let n = names(&c);
        let got: Vec<(&str, &str)> = n.iter().map(|(a, _, c)| (a.as_str(), c.as_str())).collect();
        assert_eq!(
            got,
            [
                ("weird__delete_all", "delete_all"),
                ("weird__delete_all_2", "delete.all"),
                ("weird__write_file", "write file"),
            ]
        );
        let r = c.resolve("weird__delete_all", None).unwrap();
        assert_eq!(&*r.tool, "delete_all");
        // The server's listing order is kept for its own view.
        let snap = c.snapshot();
        let own: Vec<&str> = snap.server_tools(0).map(|t| &*t.tool).collect();
        assert_eq!(own, ["delete.all", "delete_all", "write file"]);
    }

    #[test]
    fn names_by_policy_and_resolves_every_name_it_shows() {
        let c = Catalog::builder()
            .naming(ToolNaming::Bare)
            .server("a", None)
            .server("b", None)
            .server("c", Some("cc".into()))
            .build();
        c.set_tools("a", tools(&["read", "x.y"]));
        c.set_tools("b", tools(&["read", "write"]));
        c.set_tools("c", tools(&["read"]));
        let n = names(&c);
        let want = [
            ("b__read", "b", "read"),
            ("cc__read", "c", "read"),
            ("read", "a", "read"),
            ("write", "b", "write"),
            ("x_y", "a", "x.y"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(n, want);
        for t in c.snapshot().tools() {
            let r = c.resolve(&t.name, None).unwrap();
            assert_eq!((&*r.server, &*r.tool), (&*t.server, &*t.tool), "{}", t.name);
        }
        // The server's own name with an explicit server, and `<id>__<tool>`.
        let r = c.resolve("read", Some("b")).unwrap();
        assert_eq!((&*r.server, &*r.tool), ("b", "read"));
        let r = c.resolve("b__write", None).unwrap();
        assert_eq!((&*r.server, &*r.tool), ("b", "write"));
        // A server with a prefix of its own answers to that name only.
        assert!(c.resolve("c__read", None).is_err());
        let only_c = Catalog::builder().server("c", Some("cc".into())).build();
        only_c.set_tools("c", tools(&["read"]));
        assert!(only_c.resolve("read", None).is_err());
        assert_eq!(&*only_c.resolve("cc__read", None).unwrap().server, "c");
        assert!(matches!(
            c.resolve("nope", None),
            Err(McpError::UnknownTool { .. })
        ));
        let order: Vec<_> = c
            .snapshot()
            .server_tools(0)
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(order, ["read", "x_y"]);
    }
}
