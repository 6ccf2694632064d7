//! One request-log entry in detail, and sending its call again:
//! `GET /api/v1/requests/{id}` and `POST /api/v1/requests/{id}/replay`.
//!
//! A replay is a new `tools/call` made by whoever sends the replay request: it goes down
//! the same MCP plane as `POST /api/v1/tools/call` with the replaying caller's identity,
//! so their access rules and rate limits apply (never the original caller's), and it is
//! logged as a new entry marked `replayOf`. Its arguments are the captured ones (only when
//! they were captured whole: a redacted or cut body is not what was sent), replaced
//! (`{"arguments": {...}}`) or merge-patched (`{"patch": {...}}`, RFC 7396). The answer
//! carries a structural diff of the new result against the captured one, both redacted by
//! the same rules so a secret never shows up as a "change".
//!
//! Who may: with authentication on, a caller without an admin role (`auth.adminRoles`)
//! sees and replays only their own calls; another caller's entry is `403` for both (the
//! ids are sequence numbers, so hiding that an entry exists would protect nothing).

use super::{ApiError, AppRef, Caller, admin_only, non_admin};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mcp_gateway_core::McpRequest;
use mcp_gateway_metrics::{BodyState, LogEntry, ReplayOf};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

type IdPath = Result<Path<String>, axum::extract::rejection::PathRejection>;

/// Most paths a diff lists per kind (added, removed, changed); `truncated` says when more
/// differed.
const MAX_DIFF: usize = 200;

/// `GET /api/v1/requests/{id}`: `{"request": {...}}`.
pub(super) async fn detail(
    State(st): State<AppRef>,
    caller: Caller,
    id: IdPath,
) -> Result<Json<Value>, ApiError> {
    let e = entry_for(&st, &caller, id, "another caller's request")?;
    let mut v = serde_json::to_value(&e).unwrap_or(Value::Null);
    // What the server speaks now, as `GET /api/v1/servers` reports it.
    let protocol = st
        .slot(&e.server)
        .and_then(|s| s.upstream.as_ref())
        .and_then(|u| u.status().generation)
        .map(|g| g.version().to_string());
    v["protocol"] = json!(protocol);
    if let Some(name) = qualified_name(&st, &e) {
        v["qualifiedName"] = json!(name);
    }
    Ok(Json(json!({ "request": v })))
}

/// The catalog's name of the entry's tool (what `/mcp` lists and the REST API takes).
fn qualified_name(st: &crate::state::AppState, e: &LogEntry) -> Option<String> {
    let tool = e.tool.as_deref()?;
    let slot = st.catalog.slot(&e.server)?;
    st.catalog
        .snapshot()
        .server_tools(slot)
        .find(|t| &*t.tool == tool)
        .map(|t| t.name.to_string())
}

/// The entry `id` names, if this caller may see it.
fn entry_for(
    st: &crate::state::AppState,
    caller: &Caller,
    id: IdPath,
    what: &str,
) -> Result<LogEntry, ApiError> {
    let raw = match id {
        Ok(Path(id)) => id,
        Err(e) => e.body_text(),
    };
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_request",
            format!(
                "no request {raw:?} in the log (unknown, or evicted / past monitor.retentionHours)"
            ),
        )
    };
    let id: u64 = raw.parse().map_err(|_| unknown())?;
    let e = st.recorder.log().get(id).ok_or_else(unknown)?;
    if let Some(who) = non_admin(st, caller)
        && e.subject() != Some(who.subject.as_str())
    {
        return Err(admin_only(what));
    }
    Ok(e)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    /// Arguments to send instead of the captured ones.
    #[serde(default)]
    arguments: Option<Value>,
    /// RFC 7396 merge patch applied to the captured arguments.
    #[serde(default)]
    patch: Option<Value>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn conflict(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "not_replayable", message)
}

/// `POST /api/v1/requests/{id}/replay`.
pub(super) async fn replay(
    State(st): State<AppRef>,
    caller: Caller,
    id: IdPath,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let e = entry_for(&st, &caller, id, "replaying another caller's request")?;
    let (parts, body) = req.into_parts();
    let tool = match (e.method.as_ref(), &e.tool) {
        ("tools/call", Some(t)) => t.clone(),
        (m, _) => {
            return Err(bad(format!(
                "only tools/call entries can be replayed; request {} is {m}",
                e.id
            )));
        }
    };
    let body = replay_body(&st, body).await?;
    let arguments = arguments_for(&e, body)?;
    let raw = serde_json::value::to_raw_value(&arguments).expect("a JSON value serializes");
    let mut call = McpRequest::call_tool(&tool, Some(&raw));
    if &*e.server != "-" {
        call.server = Some(e.server.clone());
    }
    call.identity = caller.map(|axum::Extension(i)| i);
    call.transport = "rest";
    let marker = ReplayOf::new(e.id);
    call.extensions.insert(marker.clone());
    let span = tracing::debug_span!(
        "tools/call",
        transport = "rest",
        tool = %tool,
        replay_of = e.id,
        trace_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let trace = crate::telemetry::continue_trace(
        &span,
        parts
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
        false,
    );
    if let Some(t) = &trace {
        span.record("trace_id", t.trace_id());
    }
    call.ids = mcp_gateway_metrics::RequestIds {
        request_id: request_id(&parts.headers),
        trace_id: trace.as_ref().map(|t| t.trace_id().to_string()),
    };
    if let Some(t) = trace {
        call.extensions.insert(t);
    }
    let res = tracing::Instrument::instrument(st.mcp.clone().oneshot(call), span.clone()).await;
    span.record("outcome", res.as_ref().map_or_else(|e| e.code(), |_| "ok"));
    let replay = json!({"id": marker.logged_as(), "replayOf": e.id});
    let res = match res {
        Ok(r) => r,
        // Shaped as `POST /api/v1/tools/call` answers it, plus which entries.
        Err(err) => return Err(ApiError::from(err).with("replay", replay)),
    };
    let result: Value = serde_json::from_str(res.result.get()).unwrap_or(Value::Null);
    let mut out = json!({
        "id": replay["id"],
        "replayOf": e.id,
        "server": res.server.as_deref().unwrap_or(&e.server),
        "tool": tool,
        "result": result,
    });
    match original_result(&e) {
        Ok(before) => {
            let mut after = result;
            st.recorder
                .redactor()
                .redact("result", &mut after, &mut Vec::new());
            out["diff"] = diff(&before, &after).into_json();
        }
        Err(why) => {
            out["diff"] = Value::Null;
            out["diffUnavailable"] = json!(why);
        }
    }
    Ok(Json(out).into_response())
}

/// The caller's `X-Request-Id`, as `POST /api/v1/tools/call` takes it.
fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect())
}

/// The replay's body: empty (or `null`), `{"arguments": ...}` or `{"patch": ...}`.
async fn replay_body(
    st: &crate::state::AppState,
    body: axum::body::Body,
) -> Result<ReplayBody, ApiError> {
    let bytes = super::read_body(st, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(ReplayBody::default());
    }
    // `null` is an empty body too.
    serde_json::from_slice::<Option<ReplayBody>>(&bytes)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            bad(format!(
                r#"{e}; expected {{}}, {{"arguments": {{...}}}} or {{"patch": {{...}}}}"#
            ))
        })
}

/// The arguments a replay sends: given, patched or captured.
fn arguments_for(e: &LogEntry, body: ReplayBody) -> Result<Value, ApiError> {
    let args = match (body.arguments, body.patch) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "send either \"arguments\" (replacing them) or \"patch\" (merged into the captured ones), not both",
            ));
        }
        (Some(Value::Null), None) => Value::Object(Map::new()),
        (Some(a), None) => a,
        (None, patch) => {
            let mut args = captured_arguments(e, patch.is_some())?;
            if let Some(p) = patch {
                merge_patch(&mut args, &p);
            }
            args
        }
    };
    if !args.is_object() {
        return Err(bad("the arguments must be a JSON object"));
    }
    Ok(args)
}

/// The captured arguments, when they are what was sent.
fn captured_arguments(e: &LogEntry, patching: bool) -> Result<Value, ApiError> {
    let fix = if patching {
        r#"a patch cannot restore them; send the whole arguments: {"arguments": {...}}"#
    } else {
        r#"send the arguments to use: {"arguments": {...}}"#
    };
    let why = match e.capture.arguments {
        BodyState::Full => {
            let raw = e.arguments.as_ref().map_or("{}", |a| a.get());
            return serde_json::from_str(raw)
                .map_err(|err| conflict(format!("the captured arguments do not parse: {err}")));
        }
        BodyState::Redacted => format!(
            "its captured arguments were redacted ({})",
            e.capture.redacted.join(", ")
        ),
        BodyState::Truncated => "its captured arguments were cut to monitor.maxBodyBytes".into(),
        BodyState::Dropped => {
            "its captured arguments were dropped to keep the log within monitor.captureBytes"
                .into()
        }
        BodyState::None => {
            "its arguments were not captured (monitor.captureBodies is none, or errors and the call succeeded)"
                .into()
        }
    };
    Err(conflict(format!(
        "request {} cannot be replayed as it was: {why}; {fix}",
        e.id
    )))
}

/// The captured result to compare with, or why there is none.
fn original_result(e: &LogEntry) -> Result<Value, String> {
    match e.capture.result {
        BodyState::Full | BodyState::Redacted => e
            .result
            .as_ref()
            .and_then(|r| serde_json::from_str(r.get()).ok())
            .ok_or_else(|| "the original result does not parse".to_string()),
        BodyState::Truncated => {
            Err("the original result was cut to monitor.maxBodyBytes".into())
        }
        BodyState::Dropped => Err(
            "the original result was dropped to keep the log within monitor.captureBytes".into(),
        ),
        BodyState::None if e.status != 200 => {
            Err(format!("the original call failed ({}) and had no result", e.outcome))
        }
        BodyState::None => Err(
            "the original result was not captured (monitor.captureBodies is none, or errors and the call succeeded)"
                .into(),
        ),
    }
}

/// Applies an RFC 7396 JSON merge patch: objects merge key by key, `null` removes a key,
/// anything else replaces the target.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// How one JSON document differs from another, by JSON pointer.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Diff {
    /// Present only in the new document.
    pub added: Vec<String>,
    /// Present only in the old one.
    pub removed: Vec<String>,
    /// Present in both with another value (a scalar, or a different kind of value).
    pub changed: Vec<(String, Value, Value)>,
    /// More differences than [`MAX_DIFF`] of one kind.
    pub truncated: bool,
}

impl Diff {
    fn into_json(self) -> Value {
        let changed: Vec<Value> = self
            .changed
            .into_iter()
            .map(|(path, from, to)| json!({"path": path, "from": from, "to": to}))
            .collect();
        let mut v = json!({"added": self.added, "removed": self.removed, "changed": changed});
        if self.truncated {
            v["truncated"] = json!(true);
        }
        v
    }

    fn note(list: &mut Vec<String>, truncated: &mut bool, path: &str) {
        if list.len() < MAX_DIFF {
            list.push(path.to_string());
        } else {
            *truncated = true;
        }
    }
}

/// The structural difference from `old` to `new`: objects compared key by key, arrays
/// index by index (a longer array has its extra items added, a shorter one removed).
pub(crate) fn diff(old: &Value, new: &Value) -> Diff {
    let mut d = Diff::default();
    let mut path = String::new();
    walk(old, new, &mut path, &mut d);
    d
}

fn walk(old: &Value, new: &Value, path: &mut String, d: &mut Diff) {
    let len = path.len();
    let at = |path: &mut String, seg: &str| {
        path.push('/');
        path.push_str(&seg.replace('~', "~0").replace('/', "~1"));
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, x) in a {
                at(path, k);
                match b.get(k) {
                    Some(y) => walk(x, y, path, d),
                    None => Diff::note(&mut d.removed, &mut d.truncated, path),
                }
                path.truncate(len);
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                at(path, k);
                Diff::note(&mut d.added, &mut d.truncated, path);
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                at(path, &i.to_string());
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(x, y, path, d),
                    (Some(_), None) => Diff::note(&mut d.removed, &mut d.truncated, path),
                    (None, _) => Diff::note(&mut d.added, &mut d.truncated, path),
                }
                path.truncate(len);
            }
        }
        (a, b) if a != b => {
            if d.changed.len() < MAX_DIFF {
                d.changed.push((path.clone(), a.clone(), b.clone()));
            } else {
                d.truncated = true;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // The examples of RFC 7396, appendix A.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            let mut t = target.clone();
            merge_patch(&mut t, &patch);
            assert_eq!(t, want, "{target} + {patch}");
        }
    }

    #[test]
    fn diff_lists_paths_added_removed_and_changed() {
        let old = json!({"content":[{"type":"text","text":"one"}],"a":{"x":1,"gone":true},"list":[1,2,3],"same":"s"});
        let new = json!({"content":[{"type":"text","text":"two"},{"type":"text","text":"more"}],"a":{"x":"1","new/key":2},"list":[1],"same":"s","isError":true});
        let d = diff(&old, &new);
        assert_eq!(d.added, ["/a/new~1key", "/content/1", "/isError"]);
        assert_eq!(d.removed, ["/a/gone", "/list/1", "/list/2"]);
        assert_eq!(
            d.changed,
            [
                ("/a/x".to_string(), json!(1), json!("1")),
                ("/content/0/text".to_string(), json!("one"), json!("two")),
            ]
        );
        assert!(!d.truncated);
        assert_eq!(diff(&old, &old), Diff::default());
        // Different kinds at the root: one change of the whole document.
        let d = diff(&json!({"a":1}), &json!([1]));
        assert_eq!(d.changed, [(String::new(), json!({"a":1}), json!([1]))]);
        // Bounded.
        let many: Map<String, Value> = (0..300).map(|i| (format!("k{i}"), json!(i))).collect();
        let d = diff(&json!({}), &Value::Object(many));
        assert_eq!((d.added.len(), d.truncated), (MAX_DIFF, true));
        let j = d.into_json();
        assert_eq!(j["truncated"], true);
    }
}
