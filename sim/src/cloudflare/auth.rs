//! API-token authentication: `Authorization: Bearer <token>`.

use super::envelope::CfError;
use super::store::CloudflareState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Refuses the request unless it carries the simulator's API token, as Cloudflare does: no
/// header is a 400, a malformed one a 400, a wrong token a 403.
pub async fn require_token(
    State(state): State<Arc<CloudflareState>>,
    request: Request,
    next: Next,
) -> Response {
    state.record(request.method().as_str(), request.uri().path());
    let header = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let refusal = match header {
        None => Some(CfError::bad_request(
            9106,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
        )),
        Some(value) => match value.strip_prefix("Bearer ") {
            None => Some(CfError::bad_request(
                6111,
                "Invalid format for Authorization header",
            )),
            Some(token) if token.trim() != state.token => Some(CfError::new(
                StatusCode::FORBIDDEN,
                10000,
                "Authentication error",
            )),
            Some(_) => None,
        },
    };
    match refusal {
        Some(err) => err.into_response(),
        None => next.run(request).await,
    }
}
