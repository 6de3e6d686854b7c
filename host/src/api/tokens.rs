//! A user's own API tokens. The token is returned once, at creation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use crate::audit;
use crate::auth::{Identity, secret_token};
use crate::store::tokens::{self, ApiToken};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
}

pub async fn list(State(state): State<AppState>, me: Identity) -> ApiResult<Json<Vec<ApiToken>>> {
    let user_id = me.user.id;
    Ok(Json(tokens::list_for_user(&state.store, user_id).await?))
}

pub async fn create(
    State(state): State<AppState>,
    me: Identity,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if body.name.trim().is_empty() || body.name.len() > 64 {
        return Err(ApiError::BadRequest(
            "a token name has 1-64 characters".into(),
        ));
    }
    let (token, metadata) = issue_token(&state.store, me.user.id, &body.name).await?;
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action: "token.create",
            target: Some(&format!("token:{}", metadata.id)),
            detail: json!({ "name": metadata.name }),
            client: None,
        },
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "metadata": metadata })),
    ))
}

/// Creates a token for `user_id` and returns it with its metadata; shared with the CLI and demo.
pub async fn issue_token(
    store: &crate::store::Store,
    user_id: i64,
    name: &str,
) -> ApiResult<(String, ApiToken)> {
    let token = secret_token::generate_api_token();
    let digest = secret_token::digest(&token);
    let metadata = match tokens::insert(store, user_id, name, &digest).await {
        Err(err) if err.is_unique_violation() => Err(ApiError::Conflict(format!(
            "you already have a token named {name:?}"
        ))),
        other => other.map_err(ApiError::from),
    }?;
    Ok((token, metadata))
}

pub async fn remove(
    State(state): State<AppState>,
    me: Identity,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let user_id = me.user.id;
    let removed = tokens::delete(&state.store, user_id, id).await?;
    if !removed {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action: "token.delete",
            target: Some(&format!("token:{id}")),
            detail: json!({}),
            client: None,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
