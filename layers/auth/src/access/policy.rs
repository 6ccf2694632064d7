//! [`AccessPolicy`]: the [`ToolPolicy`] built from access rules.

use mcp_gateway_core::{Glob, glob};
use mcp_gateway_core::{Identity, ItemKind, ToolPolicy};

/// One access rule: whom it applies to (roles, subjects, API key names; `"*"` as a role
/// means everyone, anonymous callers included) and which qualified names it allows and
/// denies: globs over `<server>__<tool>`, `<server>__<prompt>` and `<server>__<resource
/// URI>`. A pattern starting with `tool:`, `prompt:` or `resource:` applies to that kind
/// only (`prompt:github__*`, `resource:fs__file:///srv/*`); any other applies to all three.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct AccessRule {
    roles: Vec<String>,
    subjects: Vec<String>,
    keys: Vec<String>,
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
}

/// A glob, possibly limited to one kind of item.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    kind: Option<ItemKind>,
    glob: Glob,
}

impl Pattern {
    fn new(text: String) -> Self {
        for kind in [ItemKind::Tool, ItemKind::Prompt, ItemKind::Resource] {
            if let Some(rest) = text.strip_prefix(kind.pattern_prefix()) {
                return Self {
                    kind: Some(kind),
                    glob: Glob::new(rest),
                };
            }
        }
        Self {
            kind: None,
            glob: Glob::new(text),
        }
    }

    fn matches(&self, kind: ItemKind, server: &str, name: &str) -> bool {
        if !self.kind.is_none_or(|k| k == kind) {
            return false;
        }
        if self.glob.matches_qualified(server, name) {
            return true;
        }
        // A rule may be written for the name a client sees (`write_file`) as well as the
        // server's own (`write file`): clients only ever see `[a-zA-Z0-9_-]`.
        kind != ItemKind::Resource
            && !glob::is_client_name(name)
            && self
                .glob
                .matches_qualified(server, &glob::client_form(name))
    }
}

fn strings<I: IntoIterator<Item = S>, S: Into<String>>(i: I) -> Vec<String> {
    i.into_iter().map(Into::into).collect()
}

fn globs<I: IntoIterator<Item = S>, S: Into<String>>(i: I) -> Vec<Pattern> {
    i.into_iter().map(|s| Pattern::new(s.into())).collect()
}

impl AccessRule {
    /// A rule that applies to nobody until roles, subjects or keys are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// A rule for every caller, anonymous ones included.
    pub fn everyone() -> Self {
        Self::new().roles(["*"])
    }

    /// Applies to callers holding any of `roles` (`"*"`: everyone).
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles.extend(strings(roles));
        self
    }

    /// Applies to callers whose subject is one of `subjects`.
    pub fn subjects<I: IntoIterator<Item = S>, S: Into<String>>(mut self, subjects: I) -> Self {
        self.subjects.extend(strings(subjects));
        self
    }

    /// Applies to callers that used one of the API keys named `keys`.
    pub fn keys<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.keys.extend(strings(keys));
        self
    }

    /// Allows tools matching any of `patterns`.
    pub fn allow<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.allow.extend(globs(patterns));
        self
    }

    /// Denies tools matching any of `patterns`; a deny in any applicable rule wins.
    pub fn deny<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.deny.extend(globs(patterns));
        self
    }

    /// True when the rule applies to `identity` (`None`: anonymous).
    pub fn applies_to(&self, identity: Option<&Identity>) -> bool {
        if self.roles.iter().any(|r| r == "*") {
            return true;
        }
        let Some(id) = identity else {
            return false;
        };
        id.roles.iter().any(|r| self.roles.contains(r))
            || self.subjects.contains(&id.subject)
            || id.key_name.as_ref().is_some_and(|k| self.keys.contains(k))
    }
}

/// Tool-level access control from [`AccessRule`]s: deny wins; otherwise a tool is allowed
/// when an applicable rule allows it, else the default decides.
///
/// ```
/// use mcp_gateway_auth::{AccessPolicy, AccessRule, Identity, ToolPolicy};
///
/// let policy = AccessPolicy::deny_by_default()
///     .rule(AccessRule::new().roles(["reader"]).allow(["filesystem__read_*"]).deny(["*__write_*"]))
///     .rule(AccessRule::new().roles(["admin"]).allow(["*"]));
/// let reader = Identity { subject: "r".into(), roles: vec!["reader".into()], ..Default::default() };
/// assert!(policy.allows(Some(&reader), "filesystem", "read_file"));
/// assert!(!policy.allows(Some(&reader), "github", "create_issue"));
/// assert!(!policy.allows(None, "filesystem", "read_file"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct AccessPolicy {
    rules: Vec<AccessRule>,
    default_allow: bool,
}

impl AccessPolicy {
    /// A policy whose default is to allow (`true`) or deny (`false`).
    pub fn new(default_allow: bool) -> Self {
        Self {
            rules: Vec::new(),
            default_allow,
        }
    }

    /// Denies whatever no rule allows.
    pub fn deny_by_default() -> Self {
        Self::new(false)
    }

    /// Allows whatever no rule denies.
    pub fn allow_by_default() -> Self {
        Self::new(true)
    }

    /// Adds a rule.
    pub fn rule(mut self, rule: AccessRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[AccessRule] {
        &self.rules
    }
}

impl ToolPolicy for AccessPolicy {
    fn allows(&self, identity: Option<&Identity>, server: &str, tool: &str) -> bool {
        self.allows_item(identity, ItemKind::Tool, server, tool)
    }

    fn allows_item(
        &self,
        identity: Option<&Identity>,
        kind: ItemKind,
        server: &str,
        name: &str,
    ) -> bool {
        // Rules about resources are about what a server reads: match the normalized URI, and
        // refuse one that could still be read two ways (see `normalize_uri`).
        let normalized;
        let name = if kind == ItemKind::Resource {
            match super::normalize_uri(name) {
                Some(n) => {
                    normalized = n;
                    normalized.as_str()
                }
                None => return false,
            }
        } else {
            name
        };
        let mut allowed = false;
        for r in self.rules.iter().filter(|r| r.applies_to(identity)) {
            if r.deny.iter().any(|p| p.matches(kind, server, name)) {
                return false;
            }
            allowed = allowed || r.allow.iter().any(|p| p.matches(kind, server, name));
        }
        allowed || self.default_allow
    }

    fn allows_everything(&self) -> bool {
        self.default_allow && self.rules.iter().all(|r| r.deny.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_the_name_clients_see_and_stay_within_a_server() {
        let p = AccessPolicy::allow_by_default()
            .rule(AccessRule::everyone().deny(["weird__write_*", "adder__*"]));
        assert!(!p.allows(None, "weird", "write file"));
        assert!(!p.allows(None, "weird", "write_file"));
        assert!(p.allows(None, "weird", "read file"));
        assert!(!p.allows(None, "adder", "add"));
        assert!(p.allows(None, "adder_", "shell"));
        // Resource URIs are matched as they are (after normalization), never rewritten.
        let r = AccessPolicy::deny_by_default()
            .rule(AccessRule::everyone().allow(["resource:fs__file:///srv/a_b"]));
        assert!(!r.allows_item(None, ItemKind::Resource, "fs", "file:///srv/a b"));
    }

    #[test]
    fn resource_rules_see_through_dot_segments_and_encodings() {
        // The README's rule: reads (and list entries) outside /srv are refused however the
        // URI spells its way out.
        let p = AccessPolicy::deny_by_default()
            .rule(AccessRule::everyone().allow(["resource:fs__file:///srv/*"]));
        let ok = |uri: &str| p.allows_item(None, ItemKind::Resource, "fs", uri);
        assert!(ok("file:///srv/a.txt"));
        assert!(ok("file:///srv/x/../a.txt"));
        for uri in [
            "file:///srv/../etc/passwd",
            "file:///srv/./../etc/passwd",
            "file:///srv//../../etc/passwd",
            "file:///srv/%2e%2e/etc/passwd",
            "file:///srv/..%2fetc/passwd",
            "file:///srv/a?/../../etc/passwd",
            "file:///srv/a#/../../etc/passwd",
            "file:///srv/../etc/shadow",
        ] {
            assert!(!ok(uri), "{uri}");
        }
        // A deny rule cannot be stepped around either.
        let d = AccessPolicy::allow_by_default()
            .rule(AccessRule::everyone().deny(["resource:fs__file:///secret/*"]));
        assert!(!d.allows_item(
            None,
            ItemKind::Resource,
            "fs",
            "file:///srv/%2e%2e/secret/k"
        ));
        assert!(d.allows_item(None, ItemKind::Resource, "fs", "file:///srv/k"));
    }

    #[test]
    fn allows_everything_only_without_a_deny_anywhere() {
        assert!(AccessPolicy::new(true).allows_everything());
        let extra = AccessPolicy::new(true).rule(AccessRule::everyone().allow(["fs__*"]));
        assert!(extra.allows_everything());
        let denies = AccessPolicy::new(true).rule(AccessRule::everyone().deny(["fs__rm"]));
        assert!(!denies.allows_everything());
        assert!(!AccessPolicy::deny_by_default().allows_everything());
    }

    #[test]
    fn kind_prefixes_limit_patterns() {
        let policy = AccessPolicy::deny_by_default().rule(
            AccessRule::everyone()
                .allow(["fs__read_*", "prompt:gh__*", "resource:fs__file:///pub/*"])
                .deny(["resource:fs__file:///pub/secret*"]),
        );
        let p = |kind, server, name| policy.allows_item(None, kind, server, name);
        assert!(p(ItemKind::Tool, "fs", "read_file"));
        assert!(p(ItemKind::Prompt, "gh", "review"));
        assert!(
            !p(ItemKind::Tool, "gh", "review"),
            "prompt: patterns are not tools"
        );
        assert!(p(ItemKind::Resource, "fs", "file:///pub/a.txt"));
        assert!(!p(ItemKind::Resource, "fs", "file:///pub/secret.txt"));
        assert!(!p(ItemKind::Resource, "fs", "file:///etc/passwd"));
        // Unprefixed patterns cover every kind.
        assert!(p(ItemKind::Prompt, "fs", "read_me"));
    }

    fn who(subject: &str, roles: &[&str], key: Option<&str>) -> Identity {
        Identity {
            subject: subject.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            key_name: key.map(str::to_string),
            ..Identity::default()
        }
    }

    #[test]
    fn deny_wins_and_defaults_apply() {
        let p = AccessPolicy::deny_by_default()
            .rule(
                AccessRule::new()
                    .roles(["reader"])
                    .allow(["fs__*"])
                    .deny(["*__write_*"]),
            )
            .rule(AccessRule::new().roles(["writer"]).allow(["fs__write_*"]))
            .rule(AccessRule::new().subjects(["alice"]).allow(["gh__*"]))
            .rule(AccessRule::new().keys(["ci"]).allow(["gh__status"]))
            .rule(AccessRule::everyone().allow(["public__*"]));
        let reader = who("bob", &["reader"], None);
        let both = who("carol", &["reader", "writer"], None);
        assert!(p.allows(Some(&reader), "fs", "read_file"));
        assert!(!p.allows(Some(&reader), "fs", "write_file"));
        // deny in the reader rule wins over the writer rule's allow
        assert!(!p.allows(Some(&both), "fs", "write_file"));
        assert!(p.allows(Some(&who("alice", &[], None)), "gh", "issue"));
        assert!(p.allows(Some(&who("k", &[], Some("ci"))), "gh", "status"));
        assert!(!p.allows(Some(&who("k", &[], Some("ci"))), "gh", "issue"));
        assert!(p.allows(None, "public", "x"));
        assert!(!p.allows(None, "fs", "read_file"));
        let open = AccessPolicy::allow_by_default()
            .rule(AccessRule::new().roles(["intern"]).deny(["*__delete_*"]));
        assert!(open.allows(None, "fs", "delete_all"));
        assert!(!open.allows(Some(&who("i", &["intern"], None)), "fs", "delete_all"));
        assert!(open.allows(Some(&who("i", &["intern"], None)), "fs", "read"));
    }
}
