//! The tool list the MCP endpoint shows its clients: every upstream tool under a name that
//! is unique, valid for clients (`^[a-zA-Z0-9_-]{1,64}$`) and deterministic.
//!
//! Naming policy (config `toolNaming`):
//! - `prefixed` (default): `<prefix>__<tool>`, the prefix being the server's `toolPrefix`
//!   or its id (`toolPrefix: ""` exposes that server's names bare);
//! - `bare`: upstream names unchanged; when two servers offer the same name, the server
//!   listed first in the config keeps it and the others get `<id>__<tool>`.
//!
//! Characters outside `[a-zA-Z0-9_-]` become `_`; a name over 64 characters is cut and
//! given a hash suffix; any remaining clash gets `_2`, `_3`, …. The list is sorted by name.

use crate::config::ToolNaming;
use crate::state::AppState;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One tool as exposed on the MCP endpoint.
pub(crate) struct ExposedTool {
    pub(crate) name: String,
    pub(crate) server: Arc<str>,
    pub(crate) upstream_name: String,
    /// The server's tool object with `name` replaced by the exposed name.
    pub(crate) json: Box<RawValue>,
}

/// A snapshot of every exposed tool.
pub(crate) struct Exposed {
    pub(crate) epoch: u64,
    pub(crate) tools: Vec<ExposedTool>,
    by_name: HashMap<String, usize>,
}

impl Exposed {
    pub(crate) fn get(&self, name: &str) -> Option<&ExposedTool> {
        self.by_name.get(name).map(|i| &self.tools[*i])
    }
}

const MAX_NAME: usize = 64;

fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    if out.len() > MAX_NAME {
        // FNV-1a of the full name keeps truncated names distinct and stable across runs.
        let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        out.truncate(MAX_NAME - 9);
        out.push_str(&format!("_{:08x}", h as u32));
    }
    out
}

/// Builds the exposed list from the servers' current tools.
pub(crate) fn build(state: &AppState, epoch: u64) -> Exposed {
    let naming = state.config.tool_naming;
    let mut taken: HashMap<String, ()> = HashMap::new();
    let mut tools = Vec::new();
    // Bare mode: the first server (config order) to offer a name keeps it.
    for slot in &state.servers {
        let Some(u) = &slot.upstream else { continue };
        let id: Arc<str> = Arc::from(slot.config.id.as_str());
        let prefix = match (&slot.config.tool_prefix, naming) {
            (Some(p), _) if p.is_empty() => None,
            (Some(p), _) => Some(p.as_str()),
            (None, ToolNaming::Prefixed) => Some(slot.config.id.as_str()),
            (None, ToolNaming::Bare) => None,
        };
        for t in u.tools().iter() {
            let wanted = match prefix {
                Some(p) => sanitize(&format!("{p}__{}", t.name)),
                None => sanitize(&t.name),
            };
            let mut name = if taken.contains_key(&wanted) && prefix.is_none() {
                sanitize(&format!("{}__{}", slot.config.id, t.name))
            } else {
                wanted
            };
            let mut n = 2;
            while taken.contains_key(&name) {
                let suffix = format!("_{n}");
                let mut base = name.clone();
                base.truncate(MAX_NAME - suffix.len());
                name = format!("{base}{suffix}");
                n += 1;
            }
            taken.insert(name.clone(), ());
            let json = match rename(&t.raw, &name) {
                Some(j) => j,
                None => continue,
            };
            tools.push(ExposedTool {
                name,
                server: id.clone(),
                upstream_name: t.name.clone(),
                json,
            });
        }
    }
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    let by_name = tools
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    Exposed {
        epoch,
        tools,
        by_name,
    }
}

fn rename(tool: &RawValue, name: &str) -> Option<Box<RawValue>> {
    let mut obj: BTreeMap<std::borrow::Cow<'_, str>, &RawValue> =
        serde_json::from_str(tool.get()).ok()?;
    let n = RawValue::from_string(serde_json::to_string(name).ok()?).ok()?;
    obj.insert("name".into(), &n);
    RawValue::from_string(serde_json::to_string(&obj).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_and_bounds_names() {
        assert_eq!(sanitize("fs__read.file"), "fs__read_file");
        assert_eq!(sanitize("héllo wörld"), "h_llo_w_rld");
        let long = "x".repeat(100);
        let a = sanitize(&long);
        let b = sanitize(&format!("{long}y"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
