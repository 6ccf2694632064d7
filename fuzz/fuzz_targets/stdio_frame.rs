//! The constant-memory id scanner of oversized stdio lines; when serde_json reads the same
//! bytes as a response with a numeric id, the scanner must find that id.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[derive(serde::Deserialize)]
struct Reply {
    id: serde_json::Value,
    result: Option<serde_json::Value>,
    error: Option<serde_json::Value>,
    method: Option<serde_json::Value>,
}

fuzz_target!(|data: &[u8]| {
    let found = mcp_gateway_upstream::fuzz::stdio_scan(data);
    if let Ok(r) = serde_json::from_slice::<Reply>(data)
        && r.method.is_none()
        && (r.result.is_some() || r.error.is_some())
        && let Some(id) = r.id.as_u64()
        && !has_duplicate_top_level_id(data)
    {
        assert_eq!(found, Some(id), "the scanner missed the id");
    }
});

/// serde keeps the last of duplicate keys; the scanner the last one too, but a top-level
/// `"id"` spelled with escapes (`"\u0069d"`) is not one it looks for.
fn has_duplicate_top_level_id(data: &[u8]) -> bool {
    data.windows(2).any(|w| w == b"\\u")
}
