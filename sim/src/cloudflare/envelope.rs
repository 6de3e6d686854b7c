//! Cloudflare's response envelope and its errors.

use axum::Json;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// An error answer: HTTP status plus `errors: [{code, message}]`.
#[derive(Debug, Clone)]
pub struct CfError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
}

impl CfError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// Cloudflare's answer to a well-formed id that names nothing.
    pub fn route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            7003,
            format!("Could not route to {path}, perhaps your object identifier is invalid?"),
        )
    }

    pub fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for CfError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
            "result": null,
        });
        (self.status, Json(body)).into_response()
    }
}

pub type CfResult = Result<Response, CfError>;

/// `{success: true, result}`.
pub fn ok(result: impl Serialize) -> CfResult {
    let body = json!({"success": true, "errors": [], "messages": [], "result": result});
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// Page `page` (1-based) of `items`, with `result_info`.
pub fn paged(items: Vec<Value>, page: Option<u32>, per_page: Option<u32>) -> CfResult {
    let per_page = per_page.unwrap_or(100).clamp(5, 5000) as usize;
    let page = page.unwrap_or(1).max(1) as usize;
    let total = items.len();
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let body = json!({
        "success": true, "errors": [], "messages": [],
        "result": slice,
        "result_info": {
            "page": page, "per_page": per_page, "count": slice.len(),
            "total_count": total, "total_pages": total.div_ceil(per_page),
        },
    });
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// The body as a JSON object, or Cloudflare's malformed-body error.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, CfError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(CfError::bad_request(9207, "Request body is invalid.")),
    }
}

/// Unknown paths and methods.
pub async fn no_route(uri: Uri) -> CfError {
    CfError::new(
        StatusCode::BAD_REQUEST,
        7000,
        format!("No route for that URI: {}", uri.path()),
    )
}
