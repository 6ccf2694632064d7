//! Resources, resource templates, prompts and completions across every upstream.
//!
//! Lists fan out to the servers that advertise the capability and are merged into one page.
//! Prompt names follow the catalog's naming policy, as tools do (`<prefix>__<name>` by
//! default); resource URIs are kept as they are, since they already name their origin,
//! and the server that listed a URI is remembered so `resources/read` and completions go
//! back to it (a URI never listed is tried on each server in config order).
//!
//! Access rules are the MCP plane's: its access-control layer cuts each server's resource
//! and template lists to what the caller may see and refuses forbidden items, which this
//! module answers with the same error as an unknown one. Prompt lists are taken whole
//! (`CatalogListing`), named for everyone, then cut with the same policy.

use crate::{Endpoint, McpService};
use mcp_gateway_core::jsonrpc::{self, JsonRpcError};
use mcp_gateway_core::{Identity, ItemKind, McpError, McpRequest};
use mcp_gateway_router::Catalog;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use tower::ServiceExt;

/// Upper bound on pages fetched from one server for one list.
const MAX_PAGES: usize = 100;

/// Where aggregated names and URIs came from.
#[derive(Default)]
pub(crate) struct Origins {
    /// Exposed prompt name → (server, upstream name).
    prompts: RwLock<HashMap<String, (Arc<str>, String)>>,
    /// Resource URI → server.
    resources: RwLock<HashMap<String, Arc<str>>>,
}

/// Which of the optional server features any ready upstream offers.
pub(crate) fn capabilities<S: McpService>(ep: &Endpoint<S>) -> Value {
    let mut caps = json!({"tools": {"listChanged": true}, "logging": {}});
    for (key, cap) in [
        ("resources", "resources"),
        ("prompts", "prompts"),
        ("completions", "completions"),
    ] {
        if !servers_with(ep, cap).is_empty() {
            caps[key] = match key {
                "completions" => json!({}),
                // Subscriptions are the gateway's own (kept once per URI upstream): a
                // 2026-07-28 server serves them through `subscriptions/listen`.
                "resources" => json!({"listChanged": false, "subscribe": true}),
                _ => json!({"listChanged": false}),
            };
        }
    }
    caps
}

/// Ready servers whose advertised capabilities include `cap`, in config order.
fn servers_with<S: McpService>(ep: &Endpoint<S>, cap: &str) -> Vec<Arc<str>> {
    ep.catalog.servers_with(cap)
}

async fn call<S: McpService>(
    ep: &Endpoint<S>,
    who: Option<&Arc<Identity>>,
    server: &Arc<str>,
    method: &str,
    params: Option<Box<RawValue>>,
) -> Result<Box<RawValue>, McpError> {
    let mut req = McpRequest::new(mcp_gateway_core::protocol::method_text(method), params)
        .with_server(server.clone());
    req.identity = who.cloned();
    if method == "prompts/list" {
        // Prompt names depend on every server's prompts (a contested bare name stays with
        // the first server), so the list is taken whole and cut here, after naming, with
        // the plane's own policy: the same names for every caller.
        req.extensions.insert(mcp_gateway_core::CatalogListing);
    }
    ep.mcp.clone().oneshot(req).await.map(|r| r.result)
}

/// How long an aggregated list stays fresh and who may share it (`ttlMs`, `cacheScope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Freshness {
    pub(crate) ttl_ms: u64,
    pub(crate) public: bool,
}

impl Freshness {
    /// Fresh for a long time, for anyone: what combining starts from.
    const OPEN: Freshness = Freshness {
        ttl_ms: u64::MAX,
        public: true,
    };

    /// The freshness of a list built from this one and `other`: the shorter, the narrower.
    fn and(self, other: Freshness) -> Freshness {
        Freshness {
            ttl_ms: self.ttl_ms.min(other.ttl_ms),
            public: self.public && other.public,
        }
    }

    /// Of an upstream result: unknown freshness (a session-generation server) is none, and
    /// an unknown scope is private.
    fn of(result: &RawValue) -> Freshness {
        #[derive(Deserialize)]
        struct F<'a> {
            #[serde(default, rename = "ttlMs")]
            ttl_ms: Option<u64>,
            #[serde(default, rename = "cacheScope", borrow)]
            scope: Option<Cow<'a, str>>,
        }
        let f: Option<F<'_>> = serde_json::from_str(result.get()).ok();
        Freshness {
            ttl_ms: f.as_ref().and_then(|f| f.ttl_ms).unwrap_or(0),
            public: f.and_then(|f| f.scope).is_some_and(|s| s == "public"),
        }
    }

    /// The `"ttlMs":…,"cacheScope":…` members.
    pub(crate) fn members(self) -> String {
        let ttl = if self.ttl_ms == u64::MAX {
            0
        } else {
            self.ttl_ms
        };
        let scope = if self.public { "public" } else { "private" };
        format!(r#""ttlMs":{ttl},"cacheScope":"{scope}""#)
    }
}

/// Sets the log level of every server that logs to the most verbose level any session
/// wants: a session-generation server's level is one for all of the gateway's clients,
/// which each get only their own level's messages from the gateway. Sent only when that
/// level changes.
pub(crate) async fn forward_log_level<S: McpService>(ep: &Endpoint<S>) {
    let wanted = ep
        .sessions
        .all()
        .iter()
        .filter_map(|s| s.log_level())
        .min()
        .unwrap_or(mcp_gateway_core::protocol::LogLevel::Debug);
    let code = wanted as u8 + 1;
    if ep
        .upstream_log_level
        .swap(code, std::sync::atomic::Ordering::Relaxed)
        == code
    {
        return;
    }
    let params = raw(&json!({ "level": wanted.as_str() }));
    for server in servers_with(ep, "logging") {
        if let Err(e) = call(ep, None, &server, "logging/setLevel", Some(params.clone())).await {
            tracing::debug!(server = %server, error = %e, "logging/setLevel not forwarded");
        }
    }
}

/// Every page of `method` from `server`, as the raw items under `key`, and how fresh the
/// pages said they are.
async fn list_all<S: McpService>(
    ep: &Endpoint<S>,
    who: Option<&Arc<Identity>>,
    server: &Arc<str>,
    method: &str,
    key: &str,
) -> Result<(Vec<Box<RawValue>>, Freshness), McpError> {
    let mut items = Vec::new();
    let mut fresh = Freshness::OPEN;
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.as_ref().map(|c| raw(&json!({ "cursor": c })));
        let result = call(ep, who, server, method, params).await?;
        fresh = fresh.and(Freshness::of(&result));
        let mut page: BTreeMap<String, Box<RawValue>> = serde_json::from_str(result.get())
            .map_err(|e| McpError::Upstream {
                server: server.clone(),
                reason: format!("malformed {method} result: {e}"),
            })?;
        if let Some(list) = page.remove(key) {
            let list: Vec<Box<RawValue>> = serde_json::from_str(list.get()).unwrap_or_default();
            items.extend(list);
        }
        cursor = page
            .get("nextCursor")
            .and_then(|c| serde_json::from_str::<String>(c.get()).ok())
            .filter(|c| !c.is_empty());
        if cursor.is_none() {
            break;
        }
    }
    Ok((items, fresh))
}

/// `resources/list`, `resources/templates/list` or `prompts/list` across servers, showing
/// `who` only what the access rules let them use.
pub(crate) async fn list<S: McpService>(
    ep: &Endpoint<S>,
    method: &str,
    who: Option<&Arc<Identity>>,
) -> Result<Box<RawValue>, JsonRpcError> {
    let (key, cap) = match method {
        "resources/list" => ("resources", "resources"),
        "resources/templates/list" => ("resourceTemplates", "resources"),
        _ => ("prompts", "prompts"),
    };
    let servers = servers_with(ep, cap);
    let lists =
        futures::future::join_all(servers.iter().map(|s| list_all(ep, who, s, method, key))).await;
    let mut out: Vec<Box<RawValue>> = Vec::new();
    let mut prompt_names: HashMap<String, (Arc<str>, String)> = HashMap::new();
    let mut prompts: Vec<(Arc<str>, String, Box<RawValue>)> = Vec::new();
    // Public only when every caller sees the same list and every server said so.
    let mut fresh = Freshness {
        public: ep.lists_are_shared(),
        ..Freshness::OPEN
    };
    for (server, items) in servers.iter().zip(lists) {
        let items = match items {
            Ok((i, f)) => {
                fresh = fresh.and(f);
                i
            }
            Err(e) => {
                tracing::debug!(server = %server, error = %e, method, "skipping a server in an aggregated list");
                continue;
            }
        };
        for item in items {
            let obj: BTreeMap<Cow<'_, str>, &RawValue> = match serde_json::from_str(item.get()) {
                Ok(o) => o,
                Err(_) => continue,
            };
            match key {
                "prompts" => {
                    let Some(name) = obj
                        .get("name")
                        .and_then(|n| serde_json::from_str::<String>(n.get()).ok())
                    else {
                        continue;
                    };
                    drop(obj);
                    prompts.push((server.clone(), name, item));
                }
                "resources" => {
                    let Some(uri) = obj
                        .get("uri")
                        .and_then(|u| serde_json::from_str::<String>(u.get()).ok())
                    else {
                        continue;
                    };
                    ep.origins
                        .resources
                        .write()
                        .expect("lock")
                        .insert(uri, server.clone());
                    out.push(item);
                }
                _ => out.push(item),
            }
        }
    }
    if key == "prompts" {
        // Names in two rounds, as the catalog names tools: a name that is valid as it is
        // keeps it; one that had to be sanitized yields.
        let mut exposed: Vec<Option<String>> = vec![None; prompts.len()];
        for valid_round in [true, false] {
            for (i, (server, name, _)) in prompts.iter().enumerate() {
                let wanted = ep.catalog.item_name(server, name);
                if (wanted == ep.catalog.item_name_unsanitized(server, name)) != valid_round {
                    continue;
                }
                let e = if prompt_names.contains_key(&wanted) {
                    Catalog::fallback_name(server, name)
                } else {
                    wanted
                };
                prompt_names.insert(e.clone(), (server.clone(), name.clone()));
                exposed[i] = Some(e);
            }
        }
        for ((server, name, item), e) in prompts.iter().zip(exposed) {
            let (Some(e), Ok(mut obj)) = (
                e,
                serde_json::from_str::<BTreeMap<Cow<'_, str>, &RawValue>>(item.get()),
            ) else {
                continue;
            };
            let n = raw(&json!(e));
            obj.insert("name".into(), &n);
            if ep.visible_item(who.map(|w| &**w), ItemKind::Prompt, server, name) {
                out.push(raw_map(&obj));
            }
        }
        // Merged, not replaced: another caller's list may show prompts this one cannot.
        ep.origins
            .prompts
            .write()
            .expect("lock")
            .extend(prompt_names);
    }
    let mut text = format!(r#"{{"{key}":["#);
    for (i, item) in out.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(item.get());
    }
    text.push_str("],");
    text.push_str(&fresh.members());
    text.push('}');
    Ok(RawValue::from_string(text).expect("built from valid JSON"))
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<Cow<'a, str>>,
}

async fn prompt_origin<S: McpService>(
    ep: &Endpoint<S>,
    name: &str,
    who: Option<&Arc<Identity>>,
) -> Option<(Arc<str>, String)> {
    if let Some(o) = ep.origins.prompts.read().expect("lock").get(name) {
        return Some(o.clone());
    }
    // Not listed yet by this caller: list once, as them, to learn the names.
    let _ = list(ep, "prompts/list", who).await;
    ep.origins.prompts.read().expect("lock").get(name).cloned()
}

/// `prompts/get`: routed by exposed prompt name, renamed to the server's own.
pub(crate) async fn get_prompt<S: McpService>(
    ep: &Endpoint<S>,
    params: Option<&RawValue>,
    who: Option<&Arc<Identity>>,
) -> Result<Box<RawValue>, JsonRpcError> {
    let p = params.ok_or_else(|| {
        JsonRpcError::new(
            jsonrpc::INVALID_PARAMS,
            "prompts/get needs params with a name",
        )
    })?;
    let name = serde_json::from_str::<Named<'_>>(p.get())
        .ok()
        .and_then(|n| n.name.map(Cow::into_owned))
        .ok_or_else(|| JsonRpcError::new(jsonrpc::INVALID_PARAMS, "prompts/get needs a name"))?;
    let unknown = || JsonRpcError::new(jsonrpc::INVALID_PARAMS, format!("unknown prompt '{name}'"));
    let (server, upstream) = prompt_origin(ep, &name, who).await.ok_or_else(unknown)?;
    let params = mcp_gateway_router::rename_tool(p, &upstream).map_err(|e| e.to_jsonrpc())?;
    call(ep, who, &server, "prompts/get", Some(params))
        .await
        .map_err(|e| hide_forbidden(e, unknown))
}

/// `resources/read` (and `resources/subscribe`-style calls keyed by URI): the server that
/// listed the URI, else each resource server in turn.
pub(crate) async fn by_uri<S: McpService>(
    ep: &Endpoint<S>,
    method: &str,
    params: Option<&RawValue>,
    who: Option<&Arc<Identity>>,
) -> Result<Box<RawValue>, JsonRpcError> {
    let p = params.ok_or_else(|| {
        JsonRpcError::new(
            jsonrpc::INVALID_PARAMS,
            format!("{method} needs params with a uri"),
        )
    })?;
    let uri = serde_json::from_str::<Named<'_>>(p.get())
        .ok()
        .and_then(|n| n.uri.map(Cow::into_owned))
        .ok_or_else(|| {
            JsonRpcError::new(jsonrpc::INVALID_PARAMS, format!("{method} needs a uri"))
        })?;
    let known = ep
        .origins
        .resources
        .read()
        .expect("lock")
        .get(&uri)
        .cloned();
    let candidates: Vec<Arc<str>> = match known {
        Some(s) => vec![s],
        None => servers_with(ep, "resources"),
    };
    let mut last = JsonRpcError::new(
        jsonrpc::INVALID_PARAMS,
        format!("Resource not found: {uri}"),
    );
    for server in candidates {
        match call(ep, who, &server, method, Some(p.to_owned())).await {
            Ok(r) => {
                // Only a read proves the server has the resource: a 2026-07-28 server
                // accepts a subscription to any URI (its listen stream just stays quiet).
                if method == "resources/read" {
                    ep.origins
                        .resources
                        .write()
                        .expect("lock")
                        .insert(uri, server);
                }
                return Ok(r);
            }
            // Refused by access rules: as if this server had no such resource.
            Err(McpError::Forbidden(_)) => {}
            Err(e) => last = e.to_jsonrpc(),
        }
    }
    Err(last)
}

/// `completion/complete`: routed by the prompt name or resource URI it refers to.
pub(crate) async fn complete<S: McpService>(
    ep: &Endpoint<S>,
    params: Option<&RawValue>,
    who: Option<&Arc<Identity>>,
) -> Result<Box<RawValue>, JsonRpcError> {
    let p = params.ok_or_else(|| {
        JsonRpcError::new(jsonrpc::INVALID_PARAMS, "completion/complete needs params")
    })?;
    let mut v: Value = serde_json::from_str(p.get())
        .map_err(|e| JsonRpcError::new(jsonrpc::INVALID_PARAMS, e.to_string()))?;
    let what = match v.pointer("/ref/type").and_then(Value::as_str) {
        Some("ref/prompt") => format!(
            "unknown prompt '{}'",
            v.pointer("/ref/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
        _ => format!(
            "unknown resource '{}'",
            v.pointer("/ref/uri")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
    };
    let server = match v.pointer("/ref/type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = v
                .pointer("/ref/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let (server, upstream) = prompt_origin(ep, &name, who).await.ok_or_else(|| {
                JsonRpcError::new(jsonrpc::INVALID_PARAMS, format!("unknown prompt '{name}'"))
            })?;
            v["ref"]["name"] = json!(upstream);
            server
        }
        Some("ref/resource") => {
            let uri = v
                .pointer("/ref/uri")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let known = ep.origins.resources.read().expect("lock").get(uri).cloned();
            known
                .or_else(|| servers_with(ep, "resources").into_iter().next())
                .ok_or_else(|| {
                    JsonRpcError::new(jsonrpc::INVALID_PARAMS, format!("unknown resource '{uri}'"))
                })?
        }
        _ => {
            return Err(JsonRpcError::new(
                jsonrpc::INVALID_PARAMS,
                "completion/complete needs ref of type ref/prompt or ref/resource",
            ));
        }
    };
    call(ep, who, &server, "completion/complete", Some(raw(&v)))
        .await
        .map_err(|e| hide_forbidden(e, || JsonRpcError::new(jsonrpc::INVALID_PARAMS, what)))
}

/// A refusal by the access rules, answered as `unknown` would be: a forbidden item is
/// indistinguishable from a missing one.
fn hide_forbidden(e: McpError, unknown: impl FnOnce() -> JsonRpcError) -> JsonRpcError {
    match e {
        McpError::Forbidden(_) => unknown(),
        e => e.to_jsonrpc(),
    }
}

fn raw(v: &Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).expect("serialized JSON is valid")
}

fn raw_map(m: &BTreeMap<Cow<'_, str>, &RawValue>) -> Box<RawValue> {
    RawValue::from_string(serde_json::to_string(m).expect("map serializes"))
        .expect("serialized JSON is valid")
}
