//! `x-mcp-header` (2026-07-28, Streamable HTTP): tool parameters a server asks its clients
//! to mirror into `Mcp-Param-{Name}` headers, so that intermediaries can route on them
//! without parsing the body.
//!
//! The upstream supervisor checks every tool definition of a stateless Streamable HTTP server once,
//! when it lists tools ([`tool_headers`]): a tool whose annotations break the rules (empty or
//! not an HTTP token, duplicated case-insensitively, on a non-primitive or `number`
//! parameter, or not reachable from the schema root through `properties` alone) is left out
//! of the catalog with a warning. The valid annotations of the others go into a
//! [`ParamTable`] on the connection, which the transport consults when it builds a
//! `tools/call` POST ([`render`]). Tools without annotations are not in the table, so they
//! cost one hash lookup.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};

/// The JSON Schema keyword carrying the annotation.
const KEYWORD: &str = "x-mcp-header";

/// One annotated parameter: the header to send and where its value sits in `arguments`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamHeader {
    /// `mcp-param-{name}` (header names are case-insensitive; `http` keeps them lower-case).
    pub header: HeaderName,
    /// The chain of property names from the root of `arguments`.
    pub path: Box<[Box<str>]>,
}

/// Annotated parameters by tool name (only tools that have some).
pub type ParamTable = HashMap<Box<str>, Box<[ParamHeader]>>;

/// The `Mcp-Param-*` headers of a tool, or why its definition must be rejected.
///
/// `tool` is the raw tool object from `tools/list`; a tool without annotations gets an empty
/// list without its schema being parsed.
pub fn tool_headers(tool: &RawValue) -> Result<Vec<ParamHeader>, String> {
    if !tool.get().contains(KEYWORD) {
        return Ok(Vec::new());
    }
    let tool: Value =
        serde_json::from_str(tool.get()).map_err(|e| format!("malformed tool: {e}"))?;
    let Some(schema) = tool.get("inputSchema") else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    walk_schema(schema, &mut Vec::new(), true, &mut found)?;
    let mut seen = HashSet::new();
    let mut headers = Vec::with_capacity(found.len());
    for (path, annotated) in found {
        let where_ = display_path(&path);
        let name = match annotated.get(KEYWORD) {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(format!("the {KEYWORD} of {where_} is not a string")),
        };
        if name.is_empty() {
            return Err(format!("the {KEYWORD} of {where_} is empty"));
        }
        if !name.bytes().all(is_tchar) {
            return Err(format!(
                "the {KEYWORD} {name:?} of {where_} is not an HTTP header token"
            ));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(format!(
                "the {KEYWORD} {name:?} is used more than once (names are case-insensitive)"
            ));
        }
        primitive_type(annotated)
            .map_err(|why| format!("the {KEYWORD} {name:?} is on {where_}, which {why}"))?;
        let header = HeaderName::from_bytes(format!("mcp-param-{name}").as_bytes())
            .map_err(|_| format!("Mcp-Param-{name} is not a valid header name"))?;
        headers.push(ParamHeader {
            header,
            path: path.into_iter().map(Into::into).collect(),
        });
    }
    Ok(headers)
}

/// Collects the annotated sub-schemas of `schema` with their property paths; an annotation
/// anywhere but on a chain of `properties` from the root is an error.
fn walk_schema<'a>(
    schema: &'a Value,
    path: &mut Vec<&'a str>,
    reachable: bool,
    found: &mut Vec<(Vec<&'a str>, &'a Value)>,
) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Ok(()); // `true` / `false` schemas
    };
    if obj.contains_key(KEYWORD) {
        if !reachable || path.is_empty() {
            let where_ = if path.is_empty() {
                "the schema root".to_string()
            } else {
                format!("a subschema under {}", display_path(path))
            };
            return Err(format!(
                "an {KEYWORD} on {where_} is not statically reachable through `properties`"
            ));
        }
        found.push((path.clone(), schema));
    }
    for (key, value) in obj {
        match key.as_str() {
            // Maps of name → schema. Only `properties` keeps a static path.
            "properties" => {
                for (name, sub) in value.as_object().into_iter().flatten() {
                    path.push(name);
                    let r = walk_schema(sub, path, reachable, found);
                    path.pop();
                    r?;
                }
            }
            "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                for sub in value.as_object().into_iter().flat_map(|m| m.values()) {
                    walk_schema(sub, path, false, found)?;
                }
            }
            // One schema, or (`items` of old drafts) an array of them.
            "items"
            | "additionalItems"
            | "additionalProperties"
            | "unevaluatedItems"
            | "unevaluatedProperties"
            | "contains"
            | "propertyNames"
            | "not"
            | "if"
            | "then"
            | "else"
            | "allOf"
            | "anyOf"
            | "oneOf"
            | "prefixItems" => match value {
                Value::Array(subs) => {
                    for sub in subs {
                        walk_schema(sub, path, false, found)?;
                    }
                }
                sub => walk_schema(sub, path, false, found)?,
            },
            // Everything else (`const`, `default`, `enum`, `examples`, ...) is data, not schema.
            _ => {}
        }
    }
    Ok(())
}

/// `Ok` when the schema's `type` is `string`, `integer` or `boolean` (optionally nullable).
fn primitive_type(schema: &Value) -> Result<(), &'static str> {
    let ok = |t: &str| matches!(t, "string" | "integer" | "boolean");
    match schema.get("type") {
        Some(Value::String(t)) if ok(t) => Ok(()),
        Some(Value::String(t)) if t == "number" => Err("has type number (not permitted)"),
        Some(Value::Array(ts)) => {
            let mut types = ts.iter().filter(|t| t.as_str() != Some("null"));
            match (types.next().and_then(Value::as_str), types.next()) {
                (Some(t), None) if ok(t) => Ok(()),
                _ => Err("is not of a single primitive type (string, integer, boolean)"),
            }
        }
        Some(_) => Err("is not of a primitive type (string, integer, boolean)"),
        None => Err("declares no type (string, integer or boolean required)"),
    }
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn display_path(path: &[&str]) -> String {
    if path.is_empty() {
        "the schema root".into()
    } else {
        format!("property `{}`", path.join("."))
    }
}

/// The `Mcp-Param-*` headers of one call: each annotated value present in `arguments`,
/// rendered per the spec's Value Encoding (strings as they are, integers in decimal,
/// booleans lower-case; Base64 sentinel when not header-safe). Absent and `null` values
/// send no header; objects and arrays neither (the server refuses such arguments anyway).
pub fn render(
    arguments: Option<&RawValue>,
    headers: &[ParamHeader],
) -> Vec<(HeaderName, HeaderValue)> {
    let Some(args) = arguments.and_then(|a| serde_json::from_str::<Value>(a.get()).ok()) else {
        return Vec::new();
    };
    headers
        .iter()
        .filter_map(|h| {
            let value = h.path.iter().try_fold(&args, |v, key| v.get(&**key))?;
            let text = match value {
                Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
                Value::Bool(b) => b.to_string().into(),
                Value::Number(n) => match n.as_f64() {
                    // 42.0 for an integer parameter is the integer 42.
                    Some(f)
                        if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 =>
                    {
                        format!("{}", f as i64).into()
                    }
                    _ => n.to_string().into(),
                },
                Value::Null | Value::Array(_) | Value::Object(_) => return None,
            };
            Some((h.header.clone(), header_safe(&text)))
        })
        .collect()
}

/// Checks a client's `Mcp-Param-*` headers against the `arguments` of its `tools/call`, as a
/// server that reads the body must: every annotated value present in the body has its
/// header, sent once, equal after decoding the Base64 sentinel (integers compared as
/// numbers); a header without a value in the body is refused too. `Err` names the fault.
pub fn validate(
    headers: &HeaderMap,
    arguments: Option<&RawValue>,
    annotated: &[ParamHeader],
) -> Result<(), String> {
    let args = match arguments {
        Some(a) => serde_json::from_str::<Value>(a.get()).map_err(|e| format!("arguments: {e}"))?,
        None => Value::Null,
    };
    for h in annotated {
        let name = h.header.as_str();
        let mut sent = headers.get_all(&h.header).iter();
        let (first, again) = (sent.next(), sent.next());
        if again.is_some() {
            return Err(format!("{name} header is repeated"));
        }
        let body = h
            .path
            .iter()
            .try_fold(&args, |v, key| v.get(&**key))
            .filter(|v| !v.is_null());
        let header = match first {
            Some(v) => Some(decode(v).ok_or_else(|| format!("{name} header is not valid"))?),
            None => None,
        };
        match (body, header) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(format!("{name} header is sent but the argument is absent"));
            }
            (Some(_), None) => return Err(format!("{name} header is missing")),
            (Some(v), Some(text)) => {
                let same = match v {
                    Value::String(s) => *s == text,
                    Value::Bool(b) => text == if *b { "true" } else { "false" },
                    Value::Number(n) => same_number(n, &text),
                    _ => false,
                };
                if !same {
                    return Err(format!(
                        "{name} header value {text:?} does not match body value {v}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// True when header text `text` names the number `n`: exactly for integers (beyond 2^53 a
/// float comparison would let another value pass), numerically otherwise (`42.0` is `42`).
fn same_number(n: &serde_json::Number, text: &str) -> bool {
    if let (Some(a), Ok(b)) = (n.as_i64(), text.parse::<i64>()) {
        return a == b;
    }
    if let (Some(a), Ok(b)) = (n.as_u64(), text.parse::<u64>()) {
        return a == b;
    }
    let exact = |f: f64| f.fract() != 0.0 || f.abs() < 9.007_199_254_740_992e15;
    match (n.as_f64(), text.parse::<f64>()) {
        (Some(a), Ok(b)) => a == b && exact(a),
        _ => false,
    }
}

/// A header value as text, with the `=?base64?…?=` sentinel decoded; `None` when it is not
/// visible ASCII or the sentinel does not decode to UTF-8.
pub fn decode(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    match s
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => String::from_utf8(BASE64.decode(b64).ok()?).ok(),
        None => Some(s.to_string()),
    }
}

/// A header value: as is when it is plain visible ASCII, otherwise (or when it looks like
/// the sentinel itself) `=?base64?…?=` of its UTF-8 bytes, as 2026-07-28 requires for
/// `Mcp-Name` and `Mcp-Param-*`.
pub fn header_safe(v: &str) -> HeaderValue {
    let looks_encoded = v.starts_with("=?base64?") && v.ends_with("?=");
    let plain = !v.is_empty()
        && v.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !looks_encoded;
    if plain {
        HeaderValue::from_str(v).expect("visible ASCII is a valid header value")
    } else {
        let text = format!("=?base64?{}?=", BASE64.encode(v.as_bytes()));
        HeaderValue::from_str(&text).expect("Base64 is a valid header value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: &Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    fn tool(properties: Value) -> Box<RawValue> {
        raw(&json!({"name": "t", "inputSchema": {"type": "object", "properties": properties}}))
    }

    fn check(properties: Value) -> Result<Vec<(String, String)>, String> {
        tool_headers(&tool(properties)).map(|hs| {
            hs.into_iter()
                .map(|h| (h.header.as_str().to_string(), h.path.join(".")))
                .collect()
        })
    }

    #[test]
    fn finds_annotations_on_properties_chains() {
        let got = check(json!({
            "region": {"type": "string", "x-mcp-header": "Region"},
            "query": {"type": "string"},
            "opts": {"type": "object", "properties": {
                "limit": {"type": "integer", "x-mcp-header": "Limit"},
                "dry": {"type": ["boolean", "null"], "x-mcp-header": "Dry-Run"},
            }},
            // A property *named* like the keyword is no annotation.
            "x-mcp-header": {"type": "array", "items": {"type": "string"}, "default": {"x-mcp-header": 1}},
        }))
        .unwrap();
        let mut got = got;
        got.sort();
        assert_eq!(
            got,
            [
                ("mcp-param-dry-run".into(), "opts.dry".into()),
                ("mcp-param-limit".into(), "opts.limit".into()),
                ("mcp-param-region".into(), "region".into()),
            ]
        );
        let plain = raw(&json!({"name": "echo", "inputSchema": {"type": "object"}}));
        assert_eq!(tool_headers(&plain).unwrap(), []);
    }

    #[test]
    fn rejects_invalid_annotations_with_a_reason() {
        let cases = [
            (
                json!({"a": {"type": "string", "x-mcp-header": ""}}),
                "empty",
            ),
            (
                json!({"a": {"type": "string", "x-mcp-header": "Bad Name"}}),
                "token",
            ),
            (
                json!({"a": {"type": "string", "x-mcp-header": "Bad\r\nX: y"}}),
                "token",
            ),
            (
                json!({"a": {"type": "string", "x-mcp-header": 5}}),
                "not a string",
            ),
            (
                json!({"a": {"type": "string", "x-mcp-header": "Dup"},
                       "b": {"type": "integer", "x-mcp-header": "dUP"}}),
                "more than once",
            ),
            (
                json!({"a": {"type": "number", "x-mcp-header": "A"}}),
                "number",
            ),
            (
                json!({"a": {"type": "object", "x-mcp-header": "A"}}),
                "primitive",
            ),
            (json!({"a": {"x-mcp-header": "A"}}), "no type"),
            (
                json!({"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}}),
                "statically reachable",
            ),
            (
                json!({"a": {"anyOf": [{"type": "string", "x-mcp-header": "A"}]}}),
                "statically reachable",
            ),
        ];
        for (props, why) in cases {
            let e = check(props.clone()).unwrap_err();
            assert!(e.contains(why), "{props}: {e}");
        }
        let in_defs = raw(&json!({"name": "t", "inputSchema": {"type": "object",
            "$defs": {"r": {"type": "string", "x-mcp-header": "R"}},
            "properties": {"r": {"$ref": "#/$defs/r"}}}}));
        assert!(tool_headers(&in_defs).unwrap_err().contains("reachable"));
        let on_root =
            raw(&json!({"name": "t", "inputSchema": {"type": "object", "x-mcp-header": "R"}}));
        assert!(tool_headers(&on_root).unwrap_err().contains("root"));
    }

    #[test]
    fn renders_values_per_the_value_encoding() {
        let hs = tool_headers(&tool(json!({
            "s": {"type": "string", "x-mcp-header": "S"},
            "i": {"type": "integer", "x-mcp-header": "I"},
            "b": {"type": "boolean", "x-mcp-header": "B"},
            "n": {"type": ["string", "null"], "x-mcp-header": "N"},
            "missing": {"type": "string", "x-mcp-header": "Missing"},
            "o": {"type": "object", "properties": {"deep": {"type": "string", "x-mcp-header": "Deep"}}},
        })))
        .unwrap();
        let args = raw(&json!({"s": "Hello, 世界", "i": -7, "b": false, "n": null,
            "o": {"deep": "=?base64?literal?="}}));
        let mut got: Vec<(String, String)> = render(Some(&args), &hs)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        got.sort();
        let want = [
            ("mcp-param-b", "false"),
            ("mcp-param-deep", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="),
            ("mcp-param-i", "-7"),
            ("mcp-param-s", "=?base64?SGVsbG8sIOS4lueVjA==?="),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        let float = raw(&json!({"i": 42.0}));
        assert_eq!(render(Some(&float), &hs)[0].1, "42");
        assert!(render(None, &hs).is_empty());
    }

    #[test]
    fn encodes_unsafe_values_with_the_base64_sentinel() {
        assert_eq!(header_safe("get_weather"), "get_weather");
        assert_eq!(header_safe("us-west1"), "us-west1");
        assert_eq!(
            header_safe("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(header_safe(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(header_safe("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(
            header_safe("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(BASE64.encode(b"ab"), "YWI=");
        assert_eq!(BASE64.encode(b""), "");
    }

    #[test]
    fn validates_client_headers_against_the_body() {
        let tool = RawValue::from_string(
            json!({"name": "t", "inputSchema": {"type": "object", "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "n": {"type": "integer", "x-mcp-header": "N"}}}})
            .to_string(),
        )
        .unwrap();
        let annotated = tool_headers(&tool).unwrap();
        let args = |v: Value| RawValue::from_string(v.to_string()).unwrap();
        let hm = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            h
        };
        let a = args(json!({"region": "eu west", "n": 42}));
        let ok = hm(&[("mcp-param-region", "eu west"), ("mcp-param-n", "42.0")]);
        assert_eq!(validate(&ok, Some(&a), &annotated), Ok(()));
        let b64 = hm(&[
            ("mcp-param-region", "=?base64?ZXUgd2VzdA==?="),
            ("mcp-param-n", "42"),
        ]);
        assert_eq!(validate(&b64, Some(&a), &annotated), Ok(()));
        let wrong = hm(&[("mcp-param-region", "us"), ("mcp-param-n", "42")]);
        assert!(validate(&wrong, Some(&a), &annotated).is_err());
        let missing = hm(&[("mcp-param-n", "42")]);
        assert!(validate(&missing, Some(&a), &annotated).is_err());
        let twice = hm(&[
            ("mcp-param-region", "eu west"),
            ("mcp-param-region", "eu west"),
            ("mcp-param-n", "42"),
        ]);
        assert!(validate(&twice, Some(&a), &annotated).is_err());
        let absent = args(json!({"region": null}));
        assert_eq!(validate(&hm(&[]), Some(&absent), &annotated), Ok(()));
        assert!(validate(&hm(&[("mcp-param-n", "1")]), Some(&absent), &annotated).is_err());
        assert_eq!(decode(&header_safe("é")).as_deref(), Some("é"));
        let n = |v: Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        assert!(same_number(&n(json!(42)), "42.0"));
        assert!(same_number(&n(json!(42)), "42"));
        assert!(same_number(&n(json!(1.5)), "1.5"));
        assert!(!same_number(
            &n(json!(9007199254740993_u64)),
            "9007199254740992"
        ));
        assert!(same_number(
            &n(json!(9007199254740993_u64)),
            "9007199254740993"
        ));
        assert_eq!(decode(&HeaderValue::from_static("=?base64?Y===?=")), None);
    }
}
