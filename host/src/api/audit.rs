//! `GET /api/v1/audit`: the audit trail for operators, newest first, optionally one action or
//! family of actions, with each acting user's name beside their id.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

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

/// An entry with the name of the user its actor (`user:<id>`) is, while the account exists.
#[derive(Serialize)]
pub struct NamedRecord {
    #[serde(flatten)]
    record: Record,
    actor_name: Option<String>,
}

/// `?action=console&limit=100` (default 100, at most 1000): `console` is every `console.*`.
pub async fn list(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Vec<NamedRecord>>> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let action = query.action.filter(|a| !a.is_empty());
    let records = crate::store::audit::recent(&state.store, action.as_deref(), limit).await?;
    let names = crate::store::users::names(&state.store).await?;
    let named = records
        .into_iter()
        .map(|record| {
            let actor_name = record
                .actor
                .strip_prefix("user:")
                .and_then(|id| id.parse::<i64>().ok())
                .and_then(|id| names.get(&id).cloned());
            NamedRecord { record, actor_name }
        })
        .collect();
    Ok(Json(named))
}
