//! How the API answers failures: a status and a reason a person can act on.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("sign in first")]
    Unauthenticated,
    #[error("wrong username or password")]
    WrongCredentials,
    #[error("this API token has expired")]
    TokenExpired,
    #[error("wrong code, or one already used")]
    WrongCode,
    #[error("this sign-in has expired or taken too many codes; sign in again with the password")]
    SignInExpired,
    #[error("this API token lacks the \"{0}\" scope")]
    MissingScope(crate::auth::Scope),
    #[error("{0}")]
    Forbidden(&'static str),
    /// Also what a customer gets for another customer's object: its existence is not confirmed.
    #[error("not found")]
    NotFound,
    /// A path under `/api/v1` that no route has (see `/api/v1/openapi.json` for those there are).
    #[error("no such API route; the routes are described at /api/v1/openapi.json")]
    NoSuchRoute,
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but it contradicts what was asked before (a reused idempotency key).
    #[error("{0}")]
    Unprocessable(String),
    #[error("the request body did not arrive within {0} s")]
    BodyTooSlow(u64),
    #[error("too many attempts; try again in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// Nothing was changed and the same request may simply be sent again in a moment.
    #[error("{0}; nothing was changed, try again")]
    Unavailable(&'static str),
    /// Something failed on our side; the details go to the log, not to the caller.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        // Both roll the request's transaction back whole, so a retry is safe.
        if err.is_retryable() {
            tracing::warn!(error = %err, "a request kept losing races with others in the database");
            ApiError::Unavailable("the database is busy with conflicting changes")
        } else if let StoreError::Pool(reason) = &err {
            tracing::warn!(%reason, "a request found no database connection");
            ApiError::Unavailable("the database cannot be reached")
        } else {
            ApiError::Internal(err.into())
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::Internal(err)
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated
            | ApiError::WrongCredentials
            | ApiError::TokenExpired
            | ApiError::WrongCode
            | ApiError::SignInExpired => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::MissingScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NoSuchRoute => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BodyTooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            tracing::error!(error = format!("{err:#}"), "request failed");
        }
        let status = self.status();
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        let retry_after_secs = match self {
            ApiError::TooManyRequests { retry_after_secs } => Some(retry_after_secs),
            ApiError::Unavailable(_) => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_database_out_of_reach_answers_503_with_a_retry_after_and_no_detail() {
        let err = StoreError::Pool("connection refused to 10.0.0.5:5432".into());
        let response = ApiError::from(err).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(1))
        );
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"error":"the database cannot be reached; nothing was changed, try again"}"#
        );
    }
}
