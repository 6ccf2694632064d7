//! Resource URI normalization: idempotent, and nothing it lets through still holds a `..`
//! segment or an encoded separator.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_gateway_auth::access::normalize_uri;

fuzz_target!(|data: &[u8]| {
    let Ok(uri) = std::str::from_utf8(data) else {
        return;
    };
    let Some(n) = normalize_uri(uri) else { return };
    assert_eq!(
        normalize_uri(&n).as_deref(),
        Some(n.as_str()),
        "not idempotent: {uri:?}"
    );
    let lower = n.to_ascii_lowercase();
    assert!(
        !lower.contains("%2f") && !lower.contains("%5c") && !n.contains('\\'),
        "{uri:?} -> {n:?}"
    );
    assert!(
        !n.split(['/', '?', '#']).any(|s| s == ".."),
        "{uri:?} -> {n:?}"
    );
});
