//! The DNS-rebinding defence every front end applies: which browser `Origin`s may talk to
//! the gateway.

use http::HeaderMap;

/// True when a request with these headers may be served: no `Origin` (not a browser, or a
/// same-origin navigation), a loopback origin (`localhost`, `127.0.0.1`, `[::1]`, any port),
/// or one listed in `allowed` (`"*"`: any).
pub fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    // An Origin that is not even text is foreign.
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed.iter().any(|o| o == origin || o == "*") {
        return true;
    }
    let host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ORIGIN, origin.parse().unwrap());
        h
    }

    #[test]
    fn loopback_and_listed_origins_pass() {
        let allowed = ["https://app.example.com".to_string()];
        assert!(origin_allowed(&allowed, &HeaderMap::new()));
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "http://[::1]:8080",
            "https://app.example.com",
        ] {
            assert!(origin_allowed(&allowed, &with(ok)), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "http://localhost.evil.example",
            "https://app.example.com.evil",
            "null",
        ] {
            assert!(!origin_allowed(&allowed, &with(bad)), "{bad}");
        }
    }
}
