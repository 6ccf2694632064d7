//! Glob patterns over qualified names (`<server>__<tool>`), shared by access rules and
//! per-tool rate limits: `*` matches any run of characters (including none), `?` exactly
//! one; everything else matches itself.
//!
//! A pattern with a `__` is a pair: the part before its first `__` matches the server id,
//! the rest the tool, each whole. So `adder__*` never reaches server `adder_`'s tool
//! `shell`, although `adder_` + `__` + `shell` reads `adder__` + `_shell`. A pattern
//! without `__` (`*`, `*read*`) matches the joined name.

/// True when `name` is made only of what clients accept in a name: `[A-Za-z0-9_-]`.
pub fn is_client_name(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `name` as clients see it: every character outside `[A-Za-z0-9_-]` becomes `_` (the
/// catalog's naming rule, before its length bound).
pub fn client_form(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A compiled glob pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: Box<str>,
    /// Where the first `__` starts: the server part ends there.
    split: Option<usize>,
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: impl Into<Box<str>>) -> Self {
        let pattern = pattern.into();
        Self {
            split: pattern.find("__"),
            pattern,
        }
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// True when the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        matches_chars(self.pattern.as_bytes(), text.as_bytes())
    }

    /// True when `server__tool` matches, without building that string.
    pub fn matches_qualified(&self, server: &str, tool: &str) -> bool {
        if server.is_empty() {
            return self.matches(tool);
        }
        if let Some(at) = self.split {
            let p = self.pattern.as_bytes();
            return matches_chars(&p[..at], server.as_bytes())
                && matches_chars(&p[at + 2..], tool.as_bytes());
        }
        let parts: [&[u8]; 3] = [server.as_bytes(), b"__", tool.as_bytes()];
        let text = Joined(parts);
        wildcard(self.pattern.as_bytes(), &text)
    }
}

fn matches_chars(p: &[u8], t: &[u8]) -> bool {
    wildcard(p, &Joined([t, b"", b""]))
}

/// Three byte slices seen as one.
struct Joined<'a>([&'a [u8]; 3]);

impl Joined<'_> {
    fn len(&self) -> usize {
        self.0.iter().map(|p| p.len()).sum()
    }
    fn at(&self, mut i: usize) -> u8 {
        for p in self.0 {
            if i < p.len() {
                return p[i];
            }
            i -= p.len();
        }
        unreachable!("index checked by the caller")
    }
}

/// Iterative wildcard match with single-star backtracking: O(|p|·|t|) worst case, no
/// recursion. `?` matches one byte (names are ASCII in practice).
fn wildcard(p: &[u8], t: &Joined<'_>) -> bool {
    let n = t.len();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < n {
        if pi < p.len() && (p[pi] == b'?' || (p[pi] != b'*' && p[pi] == t.at(ti))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_globs() {
        let g = |p: &str, s: &str, t: &str| Glob::new(p).matches_qualified(s, t);
        assert!(g("*", "fs", "read"));
        assert!(g("fs__*", "fs", "read"));
        assert!(g("fs__read_*", "fs", "read_file"));
        assert!(!g("fs__read_*", "fs", "write_file"));
        assert!(g("*__write_*", "gh", "write_x"));
        assert!(!g("*__write_*", "gh", "rewrite_x"));
        assert!(g("f?__read", "fs", "read"));
        assert!(!g("fs__read", "fs", "read2"));
        assert!(!g("fs", "fs", "read"));
        assert!(g("*read*", "fs", "x_read_y"));
        assert!(g("github__*", "github", "create_issue"));
        assert!(!g("github__*", "githubx", "create_issue"));
        assert!(g("echo", "", "echo"));
        assert!(Glob::new("a*b*c").matches("aXXbYYc"));
        assert!(!Glob::new("a*b*c").matches("aXXbYY"));
        assert!(Glob::new("").matches(""));
    }

    #[test]
    fn a_pair_pattern_stays_within_its_server() {
        let g = |p: &str, s: &str, t: &str| Glob::new(p).matches_qualified(s, t);
        assert!(!g("adder__*", "adder_", "shell"));
        assert!(g("adder__*", "adder", "_shell"));
        assert!(g("adder_*__*", "adder_", "shell"));
        assert!(!g("*__write_*", "gh", "x__write_y"));
        assert!(g("*__*write_*", "gh", "x__write_y"));
        // Resource URIs may hold `__`: only the first one splits.
        assert!(g("fs__file:///a__b/*", "fs", "file:///a__b/c"));
        assert!(!g("fs__file:///a__b/*", "fs__file:///a", "b/c"));
        // No `__`: the joined name.
        assert!(g("*shell", "adder_", "shell"));
    }
}
