//! The event-stream parser, fed in arbitrary chunks: never panics, never emits an event
//! over its limit.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize % 8).min(rest.len());
    let (cuts, body) = rest.split_at(n);
    mcp_gateway_upstream::fuzz::sse(body, cuts, 1024);
});
