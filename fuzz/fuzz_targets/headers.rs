//! `Mcp-Name` / `Mcp-Param-*` values: what the gateway sends upstream always decodes back
//! to the original on the receiving side, and arbitrary values and tool schemas never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = http::HeaderValue::from_bytes(data) {
        let _ = mcp_gateway_mcp_server::fuzz::decode_header(&v);
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let sent = mcp_gateway_upstream::fuzz::header_safe(s);
    assert_eq!(
        mcp_gateway_mcp_server::fuzz::decode_header(&sent).as_deref(),
        Some(s),
        "a header value did not survive the round trip"
    );
    if let Some((tool, args)) = s.split_once('\u{1}') {
        mcp_gateway_upstream::fuzz::param_headers(tool, args);
    }
});
