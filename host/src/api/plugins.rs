//! Plugin status and breaker reset, for admins.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Admin;
use crate::audit;
use crate::plugins::PluginStatus;

/// `GET /api/v1/plugins`: every configured plugin with its kind, digest, egress allow-list,
/// state (loaded, refused with the reason, tripped) and recent errors.
#[utoipa::path(get, path = "/plugins", operation_id = "list_plugins", tag = "plugins",
    responses((status = 200, description = "Every configured plugin", body = Vec<PluginStatus>)))]
pub async fn list(State(state): State<AppState>, _: Admin) -> Json<Vec<PluginStatus>> {
    Json(state.plugins.status())
}

/// `POST /api/v1/plugins/{name}/reset`: switches a tripped plugin back on.
#[utoipa::path(post, path = "/plugins/{name}/reset", operation_id = "reset_plugin", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses((status = 200, description = "The plugin's status after the reset", body = PluginStatus)))]
pub async fn reset(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<PluginStatus>> {
    if !state.plugins.reset(&name).await {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &state.store,
        audit::Entry {
            actor: &admin.actor(),
            action: "plugin.reset",
            target: Some(&format!("plugin:{name}")),
            detail: json!({}),
            client: None,
        },
    )
    .await;
    let status = state.plugins.status().into_iter().find(|s| s.name == name);
    status.map(Json).ok_or(ApiError::NotFound)
}
