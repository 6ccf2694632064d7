//! Captured call bodies: which calls keep their arguments and result in the request log
//! ([`CaptureMode`]), how they are redacted before they are stored ([`Redactor`]), cut to
//! a size ([`capture_body`]) and labelled ([`BodyState`], [`Capture`]).
//!
//! Redaction happens before anything is stored, so a secret never reaches memory that an
//! API answer could read: values under keys matching the patterns (at any depth) and at
//! the configured JSON pointers become `"[REDACTED]"`.
//!
//! ```
//! use mcp_gateway_metrics::{BodyState, Redactor, capture_body};
//!
//! let r = Redactor::new(&["*token"], &["/arguments/user/ssn"]);
//! let mut paths = Vec::new();
//! let (body, state) = capture_body(
//!     r#"{"path":"/x","access_token":"s3cr3t","user":{"ssn":"078"}}"#,
//!     "arguments",
//!     &r,
//!     4096,
//!     &mut paths,
//! );
//! assert_eq!(state, BodyState::Redacted);
//! assert_eq!(
//!     body.get(),
//!     r#"{"access_token":"[REDACTED]","path":"/x","user":{"ssn":"[REDACTED]"}}"#
//! );
//! assert_eq!(paths, ["/arguments/access_token", "/arguments/user/ssn"]);
//! ```

use mcp_gateway_core::redact::SecretKeys;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Replaced value of redacted fields.
pub const REDACTED: &str = "[REDACTED]";

/// Most redacted paths remembered per entry (the count beyond is not kept).
const MAX_PATHS: usize = 16;

/// Which calls keep their bodies in the request log (`monitor.captureBodies`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum CaptureMode {
    /// No bodies (the default): recording a call copies nothing.
    #[default]
    None = 0,
    /// Calls whose outcome is not `ok` (failed, refused, tool errors, cancelled).
    Errors = 1,
    /// Every call.
    All = 2,
}

impl CaptureMode {
    pub(crate) fn from_u8(n: u8) -> Self {
        match n {
            1 => CaptureMode::Errors,
            2 => CaptureMode::All,
            _ => CaptureMode::None,
        }
    }
}

/// What the log holds of one body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyState {
    /// Not captured (capture off, or not a call it keeps, or no body: a failed call has no
    /// result).
    #[default]
    None,
    /// Kept whole; nothing matched a redaction rule.
    Full,
    /// Kept whole except the values redaction replaced by `"[REDACTED]"`.
    Redacted,
    /// Kept cut to `monitor.maxBodyBytes` as a string ending in `…` (or only its size, when
    /// far too large or not JSON).
    Truncated,
    /// Captured, then dropped to keep the log within `monitor.captureBytes`.
    Dropped,
}

impl BodyState {
    /// The word used in answers (`full`, `redacted`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BodyState::None => "none",
            BodyState::Full => "full",
            BodyState::Redacted => "redacted",
            BodyState::Truncated => "truncated",
            BodyState::Dropped => "dropped",
        }
    }
}

/// The capture labels of one request-log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capture {
    /// State of the arguments (params of methods other than `tools/call`).
    pub arguments: BodyState,
    /// State of the result.
    pub result: BodyState,
    /// JSON pointers of the redacted values (`/arguments/token`, `/result/...`), at most 16.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
}

/// Redaction rules: key patterns (any depth) and JSON pointers.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    keys: SecretKeys,
    /// Pointers rooted at `{"arguments": ..., "result": ...}`, split into unescaped
    /// segments; `*` stands for any one key or index.
    pointers: Vec<Vec<String>>,
}

impl Redactor {
    /// Redacts values under keys matching `patterns` (see
    /// [`SecretKeys`](mcp_gateway_core::redact::SecretKeys)) and at `pointers`
    /// (RFC 6901, rooted at `/arguments` or `/result`, `*` for any one segment; others are
    /// ignored here, the config refuses them).
    pub fn new<P: AsRef<str>, Q: AsRef<str>>(patterns: &[P], pointers: &[Q]) -> Self {
        Self {
            keys: SecretKeys::new(patterns),
            pointers: pointers
                .iter()
                .filter_map(|p| parse_pointer(p.as_ref()))
                .collect(),
        }
    }

    /// Redacts `v`, the body named `root` (`arguments` or `result`); the pointers of what
    /// it replaced are appended to `paths` (at most 16 in all). True when anything was.
    pub fn redact(&self, root: &str, v: &mut Value, paths: &mut Vec<String>) -> bool {
        let mut path = String::with_capacity(64);
        path.push('/');
        path.push_str(root);
        let mut any = self.redact_keys(v, &mut path, paths);
        for p in &self.pointers {
            if p.first().is_some_and(|s| s == root || s == "*") {
                path.truncate(root.len() + 1);
                any |= redact_at(v, &p[1..], &mut path, paths);
            }
        }
        any
    }

    fn redact_keys(&self, v: &mut Value, path: &mut String, paths: &mut Vec<String>) -> bool {
        let mut any = false;
        match v {
            Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    let len = path.len();
                    push_segment(path, k);
                    if self.keys.matches(k) {
                        if x.as_str() != Some(REDACTED) {
                            *x = Value::String(REDACTED.into());
                            note(paths, path);
                        }
                        any = true;
                    } else {
                        any |= self.redact_keys(x, path, paths);
                    }
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, x) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&i.to_string());
                    any |= self.redact_keys(x, path, paths);
                    path.truncate(len);
                }
            }
            _ => {}
        }
        any
    }
}

fn note(paths: &mut Vec<String>, path: &str) {
    if paths.len() < MAX_PATHS && !paths.iter().any(|p| p == path) {
        paths.push(path.to_string());
    }
}

/// Appends `/seg` to a pointer, escaped per RFC 6901.
fn push_segment(path: &mut String, seg: &str) {
    path.push('/');
    for c in seg.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// The unescaped segments of a JSON pointer (`None` unless it starts with `/`).
pub(crate) fn parse_pointer(p: &str) -> Option<Vec<String>> {
    let rest = p.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

fn redact_at(v: &mut Value, segs: &[String], path: &mut String, paths: &mut Vec<String>) -> bool {
    let Some((seg, rest)) = segs.split_first() else {
        if v.as_str() != Some(REDACTED) {
            *v = Value::String(REDACTED.into());
            note(paths, path);
        }
        return true;
    };
    let mut any = false;
    let len = path.len();
    match v {
        Value::Object(map) if seg == "*" => {
            for (k, x) in map.iter_mut() {
                push_segment(path, k);
                any |= redact_at(x, rest, path, paths);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            if let Some(x) = map.get_mut(seg) {
                push_segment(path, seg);
                any |= redact_at(x, rest, path, paths);
                path.truncate(len);
            }
        }
        Value::Array(items) if seg == "*" => {
            for (i, x) in items.iter_mut().enumerate() {
                push_segment(path, &i.to_string());
                any |= redact_at(x, rest, path, paths);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            if let Some(x) = seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                push_segment(path, seg);
                any |= redact_at(x, rest, path, paths);
                path.truncate(len);
            }
        }
        _ => {}
    }
    any
}

/// What is kept of a body too large to be worth parsing: its size.
pub(crate) fn size_only(n: usize) -> (Box<RawValue>, BodyState) {
    let what = format!("[{n} bytes, not captured]");
    let v = serde_json::value::to_raw_value(&what).expect("a string serializes");
    (v, BodyState::Truncated)
}

/// A body for the log: parsed, redacted, and kept as JSON when it fits in `limit` bytes
/// ([`BodyState::Full`] or [`BodyState::Redacted`]); else cut to `limit` bytes and kept as a
/// string ending in `…` ([`BodyState::Truncated`]). Bodies too large to be worth parsing
/// (over 64 × `limit`) and bodies that are not JSON keep only their size. `root` names the
/// body for pointers (`arguments` or `result`); redacted pointers go to `paths`.
pub fn capture_body(
    raw: &str,
    root: &str,
    redactor: &Redactor,
    limit: usize,
    paths: &mut Vec<String>,
) -> (Box<RawValue>, BodyState) {
    let note_only = |what: String| {
        let v = serde_json::value::to_raw_value(&what).expect("a string serializes");
        (v, BodyState::Truncated)
    };
    if raw.len() > limit.saturating_mul(64) {
        return size_only(raw.len());
    }
    let Ok(mut v) = serde_json::from_str::<Value>(raw) else {
        return note_only(format!("[{} bytes, not JSON]", raw.len()));
    };
    let redacted = redactor.redact(root, &mut v, paths);
    let text = serde_json::value::to_raw_value(&v).expect("a JSON value serializes");
    if text.get().len() <= limit {
        let state = if redacted {
            BodyState::Redacted
        } else {
            BodyState::Full
        };
        return (text, state);
    }
    let text = text.get();
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    note_only(format!("{}…", &text[..cut]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redact(r: &Redactor, root: &str, v: Value) -> (Value, Vec<String>) {
        let mut v = v;
        let mut paths = Vec::new();
        r.redact(root, &mut v, &mut paths);
        (v, paths)
    }

    #[test]
    fn the_default_patterns_catch_the_usual_secret_names() {
        let r = Redactor::new(mcp_gateway_core::redact::SECRET_KEYS, &[] as &[&str]);
        let (v, paths) = redact(
            &r,
            "arguments",
            json!({"api_key":"a","access_token":"b","client_secret":"c","passwd":"d",
                "privateKey":"e","Cookie":"f","X-API-Key":"g","sessionId":"h","db_pwd":"i",
                "Authorization":"j","credentials":{"user":"u"},"max_tokens":7,"path":"/x",
                "tokens_used":3,"keyboard":"k"}),
        );
        assert_eq!(
            v,
            json!({"api_key":REDACTED,"access_token":REDACTED,"client_secret":REDACTED,
                "passwd":REDACTED,"privateKey":REDACTED,"Cookie":REDACTED,"X-API-Key":REDACTED,
                "sessionId":REDACTED,"db_pwd":REDACTED,"Authorization":REDACTED,
                "credentials":REDACTED,"max_tokens":7,"path":"/x","tokens_used":3,"keyboard":"k"})
        );
        assert_eq!(paths.len(), 11);
        assert!(paths.contains(&"/arguments/X-API-Key".to_string()));
    }

    #[test]
    fn patterns_are_case_insensitive_at_any_depth() {
        let r = Redactor::new(&["password", "apiKey", "ssn*"], &[] as &[&str]);
        let (v, paths) = redact(
            &r,
            "result",
            json!({"user":"a","Password":"p","nested":[{"API_KEY":"k","ok":1},{"d":{"SSN_last4":"1"}}]}),
        );
        assert_eq!(
            v,
            json!({"user":"a","Password":REDACTED,"nested":[{"API_KEY":REDACTED,"ok":1},{"d":{"SSN_last4":REDACTED}}]})
        );
        assert_eq!(
            paths,
            [
                "/result/Password",
                "/result/nested/0/API_KEY",
                "/result/nested/1/d/SSN_last4"
            ]
        );
        // An exact pattern names one key, not every key containing it.
        let (v, _) = redact(&r, "arguments", json!({"password_hint": "h"}));
        assert_eq!(v, json!({"password_hint": "h"}));
    }

    #[test]
    fn pointers_name_values_with_wildcards_and_escapes() {
        let r = Redactor::new(
            &[] as &[&str],
            &[
                "/arguments/query",
                "/result/content/*/text",
                "/*/a~1b",
                "/arguments/missing/deeper",
                "/arguments/list/1",
            ],
        );
        let (v, paths) = redact(
            &r,
            "arguments",
            json!({"query":"select","a/b":1,"list":[1,2,3],"keep":true}),
        );
        assert_eq!(
            v,
            json!({"query":REDACTED,"a/b":REDACTED,"list":[1,REDACTED,3],"keep":true})
        );
        assert_eq!(
            paths,
            ["/arguments/query", "/arguments/a~1b", "/arguments/list/1"]
        );
        let (v, _) = redact(
            &r,
            "result",
            json!({"content":[{"type":"text","text":"t1"},{"type":"text","text":"t2"}],"query":"q"}),
        );
        assert_eq!(
            v,
            json!({"content":[{"type":"text","text":REDACTED},{"type":"text","text":REDACTED}],"query":"q"})
        );
        // A pointer to the whole body.
        let whole = Redactor::new(&[] as &[&str], &["/arguments"]);
        let (v, _) = redact(&whole, "arguments", json!({"a": 1}));
        assert_eq!(v, json!(REDACTED));
    }

    #[test]
    fn bodies_are_labelled_and_cut() {
        let r = Redactor::new(&["password"], &[] as &[&str]);
        let mut paths = Vec::new();
        let (b, s) = capture_body(r#"{"a": 1}"#, "arguments", &r, 4096, &mut paths);
        assert_eq!((b.get(), s), (r#"{"a":1}"#, BodyState::Full));
        let long = format!(r#"{{"password":"p","text":"{}"}}"#, "é".repeat(100));
        let (b, s) = capture_body(&long, "arguments", &r, 50, &mut paths);
        let cut: String = serde_json::from_str(b.get()).unwrap();
        assert_eq!(s, BodyState::Truncated);
        assert!(
            cut.ends_with('…')
                && cut.len() <= 53
                && cut.contains(REDACTED)
                && !cut.contains("\"p\""),
            "{cut}"
        );
        let (b, s) = capture_body(&"x".repeat(10_000), "result", &r, 16, &mut paths);
        assert_eq!(s, BodyState::Truncated);
        assert!(b.get().contains("not captured"), "{}", b.get());
        let (b, s) = capture_body("not json", "result", &r, 4096, &mut paths);
        assert_eq!(
            (b.get(), s),
            (r#""[8 bytes, not JSON]""#, BodyState::Truncated)
        );
    }
}
