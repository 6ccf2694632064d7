//! API keys: named keys with roles, stored as SHA-256 digests and compared in constant time.
//!
//! A presented key is hashed once and its digest compared with every configured digest
//! without an early exit, so neither the content of a key nor which key matched shows in
//! the timing. Keys can be configured as plain strings or as `sha256:<hex>` digests (so the
//! secret need not sit in a config file); either way only the digest is kept in memory. The
//! key's *name* is what appears in logs, metrics and the [`Identity`]; the key never does.

use mcp_gateway_core::Identity;
use std::fmt;
use std::sync::Arc;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `sha256:<hex>` of `key`: the form to put in `keyHash` so the file never holds the key.
pub fn hash_key(key: &str) -> String {
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in sha256(key.as_bytes()) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A `keyHash` that is not `sha256:` followed by 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key hash of '{name}' must be sha256:<64 hex digits>")]
pub struct InvalidKeyHash {
    /// Name of the key whose hash is malformed.
    pub name: String,
}

#[derive(Clone)]
struct Entry {
    digest: [u64; 4],
    identity: Arc<Identity>,
}

/// A set of accepted API keys.
///
/// ```
/// use mcp_gateway_auth::{ApiKeys, hash_key};
///
/// let keys = ApiKeys::new()
///     .key("ci-bot", "s3cret", ["reader"])
///     .hashed_key("admin", &hash_key("t0p"), ["admin"])
///     .unwrap();
/// assert_eq!(keys.verify("s3cret").unwrap().subject, "ci-bot");
/// assert_eq!(keys.verify("t0p").unwrap().roles, ["admin"]);
/// assert!(keys.verify("guess").is_none());
/// ```
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Entry>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field(
                "names",
                &self
                    .keys
                    .iter()
                    .map(|e| e.identity.subject.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ApiKeys {
    /// An empty set (accepts nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds key `key`, known in logs as `name`, granting `roles`.
    #[must_use]
    pub fn key<R, I>(mut self, name: impl Into<String>, key: impl AsRef<[u8]>, roles: R) -> Self
    where
        R: IntoIterator<Item = I>,
        I: Into<String>,
    {
        self.push(name.into(), sha256(key.as_ref()), roles);
        self
    }

    /// Adds a key given by its digest `sha256:<hex>` (see [`hash_key`]).
    pub fn hashed_key<R, I>(
        mut self,
        name: impl Into<String>,
        hash: &str,
        roles: R,
    ) -> Result<Self, InvalidKeyHash>
    where
        R: IntoIterator<Item = I>,
        I: Into<String>,
    {
        let name = name.into();
        let digest = parse_hash(hash).ok_or_else(|| InvalidKeyHash { name: name.clone() })?;
        self.push(name, digest, roles);
        Ok(self)
    }

    fn push<R, I>(&mut self, name: String, digest: [u8; 32], roles: R)
    where
        R: IntoIterator<Item = I>,
        I: Into<String>,
    {
        let identity = Identity {
            subject: name.clone(),
            roles: roles.into_iter().map(Into::into).collect(),
            key_name: Some(name),
            ..Identity::default()
        };
        self.keys.push(Entry {
            digest: words(digest),
            identity: Arc::new(identity),
        });
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The identity of the key `presented`, if it is one of ours.
    ///
    /// Takes the same time whichever key matches, and whether any does.
    pub fn verify(&self, presented: &str) -> Option<&Arc<Identity>> {
        let digest = words(sha256(presented.as_bytes()));
        let mut hit = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, e) in self.keys.iter().enumerate() {
            // XOR-OR the four words, then one constant-time test for zero.
            let diff = e
                .digest
                .iter()
                .zip(&digest)
                .fold(0u64, |acc, (a, b)| acc | (a ^ b));
            let eq = diff.ct_eq(&0);
            index.conditional_assign(&(i as u32), eq);
            hit |= eq;
        }
        bool::from(hit).then(|| &self.keys[index as usize].identity)
    }
}

fn words(d: [u8; 32]) -> [u64; 4] {
    let w = |i: usize| u64::from_ne_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    [w(0), w(1), w(2), w(3)]
}

fn parse_hash(hash: &str) -> Option<[u8; 32]> {
    let hex = hash.strip_prefix("sha256:")?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hashed_keys() {
        let h = hash_key("beta-key");
        assert_eq!(h.len(), 71);
        let keys = ApiKeys::new()
            .key("alpha", "alpha-key", ["reader"])
            .hashed_key(
                "beta",
                &h.to_uppercase().replace("SHA256", "sha256"),
                ["writer"],
            )
            .unwrap();
        assert_eq!(keys.len(), 2);
        let a = keys.verify("alpha-key").unwrap();
        assert_eq!(
            (a.subject.as_str(), a.key_name.as_deref()),
            ("alpha", Some("alpha"))
        );
        assert_eq!(keys.verify("beta-key").unwrap().roles, ["writer"]);
        assert!(keys.verify("alpha-key ").is_none());
        assert!(keys.verify("").is_none());
        assert!(ApiKeys::new().verify("x").is_none());
        assert!(ApiKeys::new().hashed_key("x", "sha256:12", ["r"]).is_err());
        assert!(ApiKeys::new().hashed_key("x", &h[7..], ["r"]).is_err());
        let dbg = format!("{keys:?}");
        assert!(dbg.contains("alpha") && !dbg.contains("alpha-key"));
    }
}
