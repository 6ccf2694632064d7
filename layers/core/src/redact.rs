//! Hiding credentials before they are shown: in URLs (API answers, the start banner, logs)
//! and under secret-looking keys of logged JSON bodies ([`is_secret_key`]).
//!
//! An upstream URL may carry a password (`http://user:pass@host/`) or a token in its query
//! (`?token=...`); error messages of HTTP clients repeat the URL. Userinfo becomes `***`
//! and every query or fragment value becomes `***`; the scheme, host, port, path and the
//! parameter names stay, because they are what an operator needs to see which server it is.
//!
//! ```
//! use mcp_gateway_core::redact::{redact_url, redact_urls_in};
//!
//! assert_eq!(
//!     redact_url("http://user:PASS@host:8080/mcp?token=T&v=2"),
//!     "http://***@host:8080/mcp?token=***&v=***"
//! );
//! assert_eq!(
//!     redact_urls_in("error sending request for url (https://h/x?key=s3cret): refused"),
//!     "error sending request for url (https://h/x?key=***): refused"
//! );
//! ```

use std::borrow::Cow;

/// The default key patterns of logged bodies' redaction (`monitor.redact`): globs over a
/// key with its case and its `_`, `-`, `.` and spaces ignored, so `*token` covers
/// `access_token`, `refreshToken` and `id-token` but not `max_tokens`.
pub const SECRET_KEYS: &[&str] = &[
    "*password*",
    "*passwd*",
    "*secret*",
    "*token",
    "*apikey*",
    "*authorization*",
    "*privatekey*",
    "*cookie*",
    "*credential*",
    "*pwd",
    "*passphrase*",
    "*sessionid*",
    "*sessionkey*",
    "*bearer*",
    "*jwt*",
    "*accesskey*",
    "*signingkey*",
    "*encryptionkey*",
];

/// True when `key` matches one of `patterns` (see [`SECRET_KEYS`]): each pattern is a glob
/// (`*`, `?`), compared with the key with case and separators ignored; a pattern without
/// a `*` names one key exactly (`apiKey` is `api_key` is `API-KEY`).
///
/// ```
/// use mcp_gateway_core::redact::{SECRET_KEYS, is_secret_key};
/// for k in ["api_key", "access_token", "client_secret", "passwd", "privateKey", "Cookie",
///           "session_id", "db_pwd", "signingKey"] {
///     assert!(is_secret_key(k, SECRET_KEYS), "{k}");
/// }
/// assert!(!is_secret_key("max_tokens", SECRET_KEYS));
/// assert!(is_secret_key("API_KEY", &["apiKey"]));
/// assert!(!is_secret_key("X-Api-Key", &["apiKey"]));
/// ```
pub fn is_secret_key<S: AsRef<str>>(key: &str, patterns: &[S]) -> bool {
    let key = fold(key);
    patterns
        .iter()
        .any(|p| crate::Glob::new(fold(p.as_ref())).matches(&key))
}

/// Key patterns compiled once (folded and parsed), for redacting many keys: the same
/// matching as [`is_secret_key`] without folding every pattern for every key.
///
/// ```
/// use mcp_gateway_core::redact::{SECRET_KEYS, SecretKeys};
/// let keys = SecretKeys::new(SECRET_KEYS);
/// assert!(keys.matches("client_secret") && keys.matches("X-Session-Id"));
/// assert!(!keys.matches("max_tokens") && !keys.matches("path"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SecretKeys(Vec<crate::Glob>);

impl SecretKeys {
    /// Compiles `patterns` (see [`SECRET_KEYS`] for their form).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        Self(
            patterns
                .iter()
                .map(|p| crate::Glob::new(fold(p.as_ref())))
                .collect(),
        )
    }

    /// True when `key` matches one of the patterns.
    pub fn matches(&self, key: &str) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let key = fold(key);
        self.0.iter().any(|g| g.matches(&key))
    }
}

/// True when `p` is a pointer that `monitor.redactPointers` takes: a JSON pointer
/// (RFC 6901) whose first segment is `arguments`, `result` or `*` (both).
///
/// ```
/// use mcp_gateway_core::redact::is_body_pointer;
/// assert!(is_body_pointer("/arguments/query") && is_body_pointer("/*/token"));
/// assert!(!is_body_pointer("arguments/query") && !is_body_pointer("/params/x"));
/// ```
pub fn is_body_pointer(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    matches!(rest.split('/').next(), Some("arguments" | "result" | "*"))
}

/// Lower case without `_`, `-`, `.` and spaces.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `url` with its userinfo and its query and fragment values replaced by `***`.
///
/// Works on any text shaped like a URL, valid or not, so that a malformed URL in an error
/// message is hidden as well as a good one.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return redact_tail(url, 0);
    };
    let auth_start = scheme_end + 3;
    let auth_end = url[auth_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| auth_start + i);
    match url[auth_start..auth_end].rfind('@') {
        Some(at) => {
            let mut out = String::with_capacity(url.len());
            out.push_str(&url[..auth_start]);
            out.push_str("***");
            out.push_str(&url[auth_start + at..auth_end]);
            out.push_str(&redact_tail(&url[auth_end..], 0));
            Cow::Owned(out)
        }
        None => match redact_tail(&url[auth_end..], 0) {
            Cow::Borrowed(_) => Cow::Borrowed(url),
            Cow::Owned(t) => Cow::Owned(format!("{}{t}", &url[..auth_end])),
        },
    }
}

/// The part after the authority: `?a=1&b=2#c=3` keeps its names and separators and loses
/// its values.
fn redact_tail(tail: &str, from: usize) -> Cow<'_, str> {
    let Some(q) = tail[from..].find(['?', '#']).map(|i| from + i) else {
        return Cow::Borrowed(tail);
    };
    let mut out = String::with_capacity(tail.len());
    out.push_str(&tail[..=q]);
    let mut rest = &tail[q + 1..];
    loop {
        let end = rest.find(['&', ';', '#']).unwrap_or(rest.len());
        let pair = &rest[..end];
        match pair.split_once('=') {
            Some((name, _)) => {
                out.push_str(name);
                out.push_str("=***");
            }
            // A bare value (`?s3cret`, `#token`) may itself be the secret.
            None if pair.is_empty() => {}
            None => out.push_str("***"),
        }
        match rest[end..].chars().next() {
            Some(sep) => {
                out.push(sep);
                rest = &rest[end + 1..];
            }
            None => break,
        }
    }
    Cow::Owned(out)
}

/// `text` with every URL in it (anything from a `scheme://` to the next space, quote or
/// bracket) passed through [`redact_url`]: for error messages that quote a URL.
pub fn redact_urls_in(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        // The scheme runs back over letters, digits, `+`, `-` and `.`.
        let start = rest[..sep]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[sep..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ']' | '`'))
            .map_or(rest.len(), |i| sep + i);
        // Punctuation that ends a sentence is not part of the URL.
        let end = start
            + rest[start..end]
                .trim_end_matches([':', ',', '.', ';'])
                .len();
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_userinfo_and_query_values() {
        let cases = [
            ("http://host/mcp", "http://host/mcp"),
            ("http://u:p@host/mcp", "http://***@host/mcp"),
            ("http://u@host", "http://***@host"),
            // An `@` in the password: the last one ends the userinfo.
            ("https://u:p@ss@h:1/x", "https://***@h:1/x"),
            // An `@` in the path is not userinfo.
            ("http://h/a@b", "http://h/a@b"),
            ("http://h/x?token=T", "http://h/x?token=***"),
            ("http://h?token=T&a=1", "http://h?token=***&a=***"),
            ("http://h/x?s3cret", "http://h/x?***"),
            ("http://h/x#access_token=T", "http://h/x#access_token=***"),
            ("http://h/x?a=1#b=2", "http://h/x?a=***#b=***"),
            ("ws://u:p@h/ws?k=v", "ws://***@h/ws?k=***"),
            ("/messages?sessionId=abc", "/messages?sessionId=***"),
            ("not a url", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn hides_every_url_in_a_message() {
        assert_eq!(
            redact_urls_in(
                "cannot reach http://u:PASS@h/mcp?token=T: error sending request for url (http://u:PASS@h/mcp?token=T)"
            ),
            "cannot reach http://***@h/mcp?token=***: error sending request for url (http://***@h/mcp?token=***)"
        );
        assert_eq!(
            redact_urls_in("\"ws://u:p@h\" is not valid"),
            "\"ws://***@h\" is not valid"
        );
        assert_eq!(redact_urls_in("no url here"), "no url here");
        assert!(matches!(redact_urls_in("http://h/x"), Cow::Owned(_)));
    }
}
