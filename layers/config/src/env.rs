//! `${VAR}` / `${VAR:-default}` substitution in config text.
//!
//! Substitution runs on the raw text, line by line, so parser errors afterwards still point
//! at the right line. Whole-line comments (`#` in YAML and TOML) are left alone, so a
//! commented-out example never needs its variables set. `$${` writes a literal `${`.

/// A variable referenced by the config but not set, with the line that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// Variable name.
    pub var: String,
    /// 1-based line number.
    pub line: usize,
}

/// Marker substituted for a missing variable so the caller can find which key used it.
pub(crate) fn marker(var: &str) -> String {
    format!("__MCP_GATEWAY_UNSET_{var}__")
}

/// Substitutes variables using `lookup`. Returns the new text and the missing variables
/// (each replaced by a marker naming it).
pub fn substitute(
    text: &str,
    comments: bool,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, Vec<Missing>), String> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if comments && line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix("${") {
                out.push_str("${");
                rest = tail;
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                out.push('$');
                rest = after;
                continue;
            };
            let Some(end) = body.find('}') else {
                return Err(format!(
                    "line {}: unterminated ${{ in {:?}",
                    i + 1,
                    line.trim_end()
                ));
            };
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!(
                    "line {}: invalid variable name in ${{{expr}}}",
                    i + 1
                ));
            }
            // Like the shell: `:-` also replaces a variable that is set but empty.
            let value = match (lookup(name), default) {
                (Some(v), Some(d)) if v.is_empty() => Some(d.to_string()),
                (Some(v), _) => Some(v),
                (None, d) => d.map(str::to_string),
            };
            match value {
                Some(v) => out.push_str(&v),
                None => {
                    missing.push(Missing {
                        var: name.to_string(),
                        line: i + 1,
                    });
                    out.push_str(&marker(name));
                }
            }
            rest = &body[end + 1..];
        }
        out.push_str(rest);
    }
    Ok((out, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME_DIR" => Some("/home/me".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_defaults_and_reports_missing() {
        let (out, missing) = substitute(
            "a: ${HOME_DIR}/x\nb: ${NOPE:-fallback}\nc: ${GONE}\n# d: ${IGNORED}\ne: $${LITERAL} $5\nf: '${EMPTY:-x}'\n",
            true,
            env,
        )
        .unwrap();
        assert!(out.contains("a: /home/me/x\n"));
        assert!(out.contains("b: fallback\n"));
        assert!(out.contains(&format!("c: {}\n", marker("GONE"))));
        assert!(out.contains("# d: ${IGNORED}"));
        assert!(out.contains("e: ${LITERAL} $5"));
        assert!(
            out.contains("f: 'x'"),
            "empty counts as unset with :- : {out}"
        );
        assert_eq!(
            missing,
            vec![Missing {
                var: "GONE".into(),
                line: 3
            }]
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        assert!(substitute("a: ${OPEN\n", true, env).is_err());
        assert!(substitute("a: ${1X}\n", true, env).is_err());
    }
}
