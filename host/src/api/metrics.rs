//! `/metrics` for Prometheus: on the API for operators, or alone on `metrics_listen`.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Admin;
use crate::metrics::{self, Snapshot};

/// On the API: an operator's session or token.
pub async fn for_operators(State(state): State<AppState>, _: Admin) -> ApiResult<Response> {
    scrape(&state).await
}

/// The router for `metrics_listen`: `/metrics` and nothing else, without authentication; the
/// address is meant for a private network that only Prometheus reaches.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { scrape(&state).await }),
        )
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

async fn scrape(state: &AppState) -> ApiResult<Response> {
    let snapshot = Snapshot::read(&state.store, &state.plugins, &state.console).await?;
    let text = metrics::render(snapshot)
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("cannot encode the metrics: {err}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, metrics::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}
