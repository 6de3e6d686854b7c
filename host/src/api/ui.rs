//! Serves the built web panel (`panel-ui/dist`) at `/`: static files with a strict
//! Content-Security-Policy, and `index.html` for any other non-API path so the panel's own
//! routes survive a reload. Without a built panel the API still works and `/` says how to build it.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// No inline script, no third-party origin; WebSockets to ourselves for the console.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// Where the panel is built by default: `<repo>/panel-ui/dist`, next to the daemon crate.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../panel-ui/dist")
}

/// Fallback handler: a file of the built panel, `index.html` for panel routes, 404 under `/api`.
pub async fn serve(State(state): State<AppState>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || !(method == Method::GET || method == Method::HEAD) {
        return super::ApiError::NotFound.into_response();
    }
    let dir = &state.web.ui_dir;
    let Some(relative) = safe_relative(path) else {
        return super::ApiError::NotFound.into_response();
    };
    let is_asset = relative.extension().is_some();
    let file = if is_asset {
        dir.join(&relative)
    } else {
        dir.join("index.html")
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => with_headers(StatusCode::OK, content_type(&file), bytes, is_asset),
        Err(_) if is_asset => super::ApiError::NotFound.into_response(),
        Err(_) => not_built(dir),
    }
}

/// The request path as a path below the panel directory, refusing `..` and anything absolute.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let relative = Path::new(decoded.trim_start_matches('/'));
    let normal = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    normal.then(|| relative.to_path_buf())
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Hashed assets are immutable; `index.html` is revalidated so a new build shows at once.
fn with_headers(status: StatusCode, kind: &'static str, body: Vec<u8>, asset: bool) -> Response {
    let cache = if asset {
        "public, max-age=3600"
    } else {
        "no-cache"
    };
    let mut response = (status, Body::from(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn not_built(dir: &Path) -> Response {
    let text = format!(
        "The Porthole web panel is not built ({} has no index.html).\n\
         Build it with `npm ci && npm run build` in panel-ui/, or run `cargo xtask demo`.\n\
         The JSON API is under /api/v1.\n",
        dir.display()
    );
    let mut response = with_headers(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain; charset=utf-8",
        text.into_bytes(),
        false,
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_served() {
        assert_eq!(
            safe_relative("/assets/app.js"),
            Some(PathBuf::from("assets/app.js"))
        );
        assert_eq!(safe_relative("/"), Some(PathBuf::new()));
        assert_eq!(safe_relative("/../etc/passwd"), None);
        assert_eq!(safe_relative("/a/%2e%2e/%2e%2e/x"), None);
        assert_eq!(
            safe_relative("//etc/passwd"),
            Some(PathBuf::from("etc/passwd"))
        );
    }
}
