//! The mcp-gateway dashboard: a single-page app (plain JavaScript modules, no build step)
//! embedded in the binary and served under one path prefix.
//!
//! The app reads only the gateway's public JSON API (`/api/v1/...`) with the browser's
//! credential, so it shows nothing the API would not. Every answer carries a strict
//! `Content-Security-Policy` (scripts, styles and connections from the gateway's own origin
//! only, no inline script, no framing).
//!
//! ```
//! # #[tokio::main] async fn main() {
//! use tower::ServiceExt;
//! let app = mcp_gateway_ui::router("/ui");
//! let res = app
//!     .oneshot(http::Request::get("/ui/").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), 200);
//! assert!(res.headers()["content-security-policy"].to_str().unwrap().contains("'self'"));
//! # }
//! ```

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};

/// The policy every answer carries: nothing but the gateway's own origin, no inline code,
/// no framing (clickjacking), no plugins, no base-URI or form hijacking.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        &[$(Asset { name: $name, bytes: include_bytes!(concat!("../assets/", $name)) }),*]
    };
}

/// Every file of the app, flat (no directories: a name never contains `/`).
static ASSETS: &[Asset] = assets![
    "index.html",
    "style.css",
    "icon.svg",
    "app.js",
    "api.js",
    "dom.js",
    "route.js",
    "format.js",
    "series.js",
    "search.js",
    "schema-form.js",
    "form-view.js",
    "result-view.js",
    "charts.js",
    "virtual-list.js",
    "page-overview.js",
    "page-servers.js",
    "page-tools.js",
    "page-requests.js",
    "page-metrics.js",
];

/// The embedded files' total size in bytes (the binary's cost of the dashboard).
pub fn embedded_bytes() -> usize {
    ASSETS.iter().map(|a| a.bytes.len()).sum()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// A file name the dashboard may serve: flat, lowercase, one extension.
fn valid_name(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && matches!(
            ext,
            "html" | "js" | "mjs" | "css" | "svg" | "png" | "json" | "ico"
        )
}

/// The bytes of `name`: from `MCP_GATEWAY_UI_DIR` when set (for working on the dashboard
/// without rebuilding), else embedded.
fn load(name: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    if !valid_name(name) {
        return None;
    }
    if let Some(dir) = std::env::var_os("MCP_GATEWAY_UI_DIR") {
        return std::fs::read(std::path::Path::new(&dir).join(name))
            .ok()
            .map(Into::into);
    }
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.bytes.into())
}

fn secured(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The app is small and changes with the binary; revalidating is cheap and never serves
    // an old app against a new API.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

fn serve(name: &str) -> Response {
    let res = match load(name) {
        Some(bytes) => (
            [(header::CONTENT_TYPE, content_type(name))],
            Body::from(bytes),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such dashboard file",
        )
            .into_response(),
    };
    secured(res)
}

/// The dashboard's routes under `path` (for instance `/ui`): the app at `path/`, its files
/// at `path/<file>`, and `path` itself redirecting to `path/` so relative URLs resolve.
pub fn router(path: &str) -> Router {
    let base = path.trim_end_matches('/').to_string();
    let slash = format!("{base}/");
    Router::new()
        .route(
            &base,
            get(move || {
                let to = slash.clone();
                async move { secured(Redirect::permanent(&to).into_response()) }
            }),
        )
        .route(&format!("{base}/"), get(|| async { serve("index.html") }))
        .route(
            &format!("{base}/{{file}}"),
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        router("/ui")
            .oneshot(http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn serves_the_app_with_its_security_headers() {
        let res = get("/ui/").await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(b"<!doctype html>"));
    }

    #[tokio::test]
    async fn redirects_the_bare_path_and_refuses_other_names() {
        let res = get("/ui").await;
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(res.headers()[header::LOCATION], "/ui/");
        for bad in [
            "/ui/..%2fCargo.toml",
            "/ui/.hidden.js",
            "/ui/App.JS",
            "/ui/x.rs",
        ] {
            assert_eq!(get(bad).await.status(), 404, "{bad}");
        }
    }

    #[test]
    fn every_file_of_the_app_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                valid_name(&name),
                "assets/{name}: not a name the dashboard serves"
            );
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "assets/{name} is missing from ASSETS in layers/ui/src/lib.rs"
            );
        }
    }

    #[test]
    fn names_are_flat_and_typed() {
        assert!(valid_name("app.js"));
        assert!(valid_name("schema-form.mjs"));
        assert!(!valid_name("../app.js"));
        assert!(!valid_name("a/b.js"));
        assert!(!valid_name("app"));
        assert!(!valid_name(".js"));
    }
}
