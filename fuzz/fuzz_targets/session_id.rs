//! Sealed session ids: a forged or mangled id never opens (and never panics).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_gateway_cluster::{Cluster, ClusterConfig};
use std::sync::OnceLock;

fn cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        let cfg: ClusterConfig =
            serde_json::from_value(serde_json::json!({ "sessionKey": "k".repeat(40) })).unwrap();
        Cluster::new(Some(&cfg))
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = std::str::from_utf8(data) {
        assert!(
            cluster().peek(id, None).is_none(),
            "a forged session id opened"
        );
        let _ = mcp_gateway_cluster::tag(id);
    }
});
