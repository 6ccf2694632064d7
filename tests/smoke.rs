//! Quick end-to-end check of the vertical slice with the test server.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn rest_call_through_test_server() {
    let yaml = format!("servers:\n{}", test_server_yaml("t", &[], ""));
    let gw = TestGateway::start(config(&yaml)).await;
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "hi"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(text(&v), "hi");
    gw.stop().await;
}
