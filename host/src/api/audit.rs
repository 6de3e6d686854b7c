//! `GET /api/v1/audit`: the audit trail for operators, newest first, optionally one action.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::AppState;
use super::error::ApiResult;
use super::extract::Admin;
use crate::audit::Record;

/// Most entries one request returns.
const MAX_LIMIT: u32 = 1000;

#[derive(Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    limit: Option<u32>,
}

/// `?action=console.opened&limit=100` (default 100, at most 1000).
pub async fn list(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Vec<Record>>> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let action = query.action.filter(|a| !a.is_empty());
    let records = state
        .store
        .call(move |c| crate::store::audit::recent(c, action.as_deref(), limit))
        .await?;
    Ok(Json(records))
}
