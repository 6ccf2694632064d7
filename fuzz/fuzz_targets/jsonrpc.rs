//! JSON-RPC framing and `McpRequest` handling: any bytes a client or server sends.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_gateway_core::McpRequest;
use mcp_gateway_core::jsonrpc::Message;

fuzz_target!(|data: &[u8]| {
    let _ = mcp_gateway_core::body::nested_deeper_than(data, 128);
    let Ok(msg) = serde_json::from_slice::<Message<'_>>(data) else {
        return;
    };
    let Some(method) = msg.method else { return };
    let params = msg.params.map(|p| p.to_owned());
    let mut req = McpRequest::new(method.to_string(), params);
    let _ = req.method();
    let _ = req.tool_name();
    if req.rename_tool("srv__tool").is_ok() {
        let _ = req.strip_tool_prefix(5);
    }
});
