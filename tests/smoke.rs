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

/// The server speaks HTTP/2 to a client that starts with it (prior knowledge), as well as
/// HTTP/1.1, on the same port.
#[tokio::test]
async fn the_gateway_serves_http2_with_prior_knowledge() {
    let yaml = format!("servers:\n{}", test_server_yaml("t", &[], ""));
    let gw = TestGateway::start(config(&yaml)).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for text_in in ["one", "two"] {
        let res = h2
            .post(gw.url("/api/v1/tools/call"))
            .json(&json!({"tool": "echo", "arguments": {"text": text_in}}))
            .send()
            .await
            .expect("HTTP/2 POST");
        assert_eq!(res.version(), reqwest::Version::HTTP_2);
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = res.json().await.unwrap();
        assert_eq!(text(&v), text_in);
    }
    let (status, v) = gw
        .call(json!({"tool": "echo", "arguments": {"text": "h1"}}))
        .await;
    assert_eq!((status, text(&v)), (200, "h1"), "{v}");
    gw.stop().await;
}
