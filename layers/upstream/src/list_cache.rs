//! Caches an upstream's list results for as long as the server says they stay fresh.
//!
//! A 2026-07-28 server marks `resources/list`, `resources/templates/list` and `prompts/list`
//! results with `ttlMs` (how long they stay fresh) and `cacheScope`: `public` results may be
//! served to any caller, `private` ones only within the authorization context they were
//! fetched in. Towards the server, the gateway's authorization context is the set of headers
//! it sends: the server's own, or those of the per-caller credential rule that applied. So a
//! private result is kept per credential rule, a public one once. `list_changed` from the
//! server drops the lists of its kind. Results without `ttlMs` (every session-generation
//! server) are never kept.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest time a list is kept, whatever `ttlMs` says.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// Most entries kept per server (pages × methods × contexts); beyond it nothing new is kept.
const MAX_ENTRIES: usize = 256;

/// What a cached list was fetched for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    method: &'static str,
    cursor: Option<String>,
    scope: Scope,
}

/// Who may be served a cached list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Scope {
    /// Anyone (`cacheScope: public`).
    Public,
    /// Callers whose calls carry the headers of this credential rule (`None`: the
    /// server's own headers only).
    Context(Option<usize>),
}

/// One server's cached lists.
#[derive(Debug, Default)]
pub(crate) struct ListCache {
    entries: Mutex<HashMap<Key, (Box<RawValue>, Instant)>>,
    /// Bumped by every invalidation: a list fetched before one is not kept after it.
    epoch: std::sync::atomic::AtomicU64,
}

/// A cacheable request: the method and the cursor, when `params` hold nothing else.
pub(crate) fn cacheable(
    method: &str,
    params: Option<&RawValue>,
) -> Option<(&'static str, Option<String>)> {
    let method = match method {
        "resources/list" => "resources/list",
        "resources/templates/list" => "resources/templates/list",
        "prompts/list" => "prompts/list",
        _ => return None,
    };
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        #[serde(default)]
        cursor: Option<String>,
    }
    let cursor = match params {
        None => None,
        Some(p) => serde_json::from_str::<Params>(p.get()).ok()?.cursor,
    };
    Some((method, cursor))
}

impl ListCache {
    /// A fresh list for `(method, cursor)` for a caller in credential context `context`.
    pub(crate) fn get(
        &self,
        method: &'static str,
        cursor: &Option<String>,
        context: Option<usize>,
    ) -> Option<Box<RawValue>> {
        let entries = self.entries.lock().expect("list cache poisoned");
        let now = Instant::now();
        [Scope::Public, Scope::Context(context)]
            .into_iter()
            .find_map(|scope| {
                let key = Key {
                    method,
                    cursor: cursor.clone(),
                    scope,
                };
                entries
                    .get(&key)
                    .filter(|(_, until)| *until > now)
                    .map(|(r, _)| r.clone())
            })
    }

    /// The current epoch, to hand back to [`Self::put`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keeps `result`, fetched at `epoch`, if the server marked it fresh for a while and
    /// nothing invalidated the lists since.
    pub(crate) fn put(
        &self,
        method: &'static str,
        cursor: Option<String>,
        context: Option<usize>,
        result: &RawValue,
        epoch: u64,
    ) {
        #[derive(Deserialize)]
        struct Freshness {
            #[serde(default, rename = "ttlMs")]
            ttl_ms: Option<u64>,
            #[serde(default, rename = "cacheScope")]
            scope: Option<String>,
        }
        if !result.get().contains("\"ttlMs\"") {
            return;
        }
        let Ok(f) = serde_json::from_str::<Freshness>(result.get()) else {
            return;
        };
        let Some(ttl) = f.ttl_ms.filter(|t| *t > 0) else {
            return;
        };
        let scope = match f.scope.as_deref() {
            Some("public") => Scope::Public,
            // Anything else is private: kept only for the context that fetched it.
            _ => Scope::Context(context),
        };
        let until = Instant::now() + Duration::from_millis(ttl).min(MAX_TTL);
        let mut entries = self.entries.lock().expect("list cache poisoned");
        // Checked under the lock that invalidation takes too.
        if self.epoch() != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, (_, u)| *u > now);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        let key = Key {
            method,
            cursor,
            scope,
        };
        entries.insert(key, (result.to_owned(), until));
    }

    /// Drops the lists a `list_changed` of `kind` (`resources`, `prompts`) makes stale.
    pub(crate) fn invalidate(&self, kind: &str) {
        let mut entries = self.entries.lock().expect("list cache poisoned");
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        entries.retain(|k, _| !k.method.starts_with(kind));
    }

    /// Drops everything (the connection was replaced).
    pub(crate) fn clear(&self) {
        let mut entries = self.entries.lock().expect("list cache poisoned");
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.into()).unwrap()
    }

    #[test]
    fn keeps_fresh_lists_by_scope_and_drops_them_on_list_changed() {
        let c = ListCache::default();
        assert_eq!(
            cacheable("prompts/list", Some(&raw(r#"{"cursor":"2"}"#))),
            Some(("prompts/list", Some("2".into())))
        );
        assert_eq!(
            cacheable("prompts/list", Some(&raw(r#"{"cursor":"2","x":1}"#))),
            None
        );
        assert_eq!(cacheable("tools/call", None), None);
        // No freshness: never kept.
        c.put(
            "prompts/list",
            None,
            None,
            &raw(r#"{"prompts":[]}"#),
            c.epoch(),
        );
        assert!(c.get("prompts/list", &None, None).is_none());
        // Private: only for the context that fetched it.
        c.put(
            "prompts/list",
            None,
            Some(1),
            &raw(r#"{"prompts":[],"ttlMs":60000,"cacheScope":"private"}"#),
            c.epoch(),
        );
        assert!(c.get("prompts/list", &None, Some(1)).is_some());
        assert!(c.get("prompts/list", &None, Some(2)).is_none());
        assert!(c.get("prompts/list", &None, None).is_none());
        c.put(
            "resources/templates/list",
            None,
            None,
            &raw(r#"{"resourceTemplates":[],"ttlMs":60000}"#),
            c.epoch(),
        );
        assert!(
            c.get("resources/templates/list", &None, Some(1)).is_none(),
            "private by default"
        );
        assert!(c.get("resources/templates/list", &None, None).is_some());
        // Public: for everyone.
        c.put(
            "resources/list",
            None,
            Some(1),
            &raw(r#"{"resources":[],"ttlMs":60000,"cacheScope":"public"}"#),
            c.epoch(),
        );
        assert!(c.get("resources/list", &None, Some(7)).is_some());
        c.invalidate("resources");
        assert!(c.get("resources/list", &None, Some(7)).is_none());
        assert!(c.get("prompts/list", &None, Some(1)).is_some());
        // Expired.
        c.put(
            "prompts/list",
            Some("x".into()),
            None,
            &raw(r#"{"prompts":[],"ttlMs":1,"cacheScope":"public"}"#),
            c.epoch(),
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get("prompts/list", &Some("x".into()), None).is_none());
        // Fetched before an invalidation: not kept after it.
        let before = c.epoch();
        c.invalidate("prompts");
        let fresh = r#"{"prompts":[],"ttlMs":60000,"cacheScope":"public"}"#;
        c.put("prompts/list", None, None, &raw(fresh), before);
        assert!(c.get("prompts/list", &None, None).is_none());
    }
}
