//! The caller's own account: their password (and, in the panel, their tokens and activity).
//! Changes here need a browser session ([`super::scopes`]) and the current password, so neither
//! a leaked token nor a moment at an unlocked screen is enough to take the account over.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ClientAddr, JsonBody, session_cookie};
use crate::audit;
use crate::auth::{Identity, password, secret_token};
use crate::store::sessions;
use crate::store::users::{self, UserChanges};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Sets a new password and ends the account's other sessions. The
/// current password is checked under the sign-in limits: this is a way to guess it, too.
#[utoipa::path(
    post,
    path = "/account/password",
    tag = "account",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; the account's other sessions have ended"),
        (status = 403, description = "The current password is wrong, or the request came with an API token", body = super::openapi::ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(client): ClientAddr,
    parts: Parts,
    JsonBody(body): JsonBody<PasswordChange>,
) -> ApiResult<StatusCode> {
    password::check_length(&body.current_password).map_err(ApiError::BadRequest)?;
    password::check_strength(&body.new_password).map_err(ApiError::BadRequest)?;
    let username = me.user.username.clone();
    let attempt = state
        .login_limiter
        .begin(&username, client, crate::store::now())
        .await?
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs(),
        })?;
    let found = users::find_for_login(&state.store, &username).await?;
    let (current, new) = (body.current_password, body.new_password);
    let hashed = tokio::task::spawn_blocking(move || match found {
        Some((_, stored)) if password::verify(&stored, &current) => password::hash(&new).map(Some),
        _ => Ok(None),
    })
    .await
    .map_err(|err| ApiError::Internal(err.into()))??;
    let Some(password_hash) = hashed else {
        return Err(ApiError::Forbidden("the current password is wrong"));
    };
    state.login_limiter.succeeded(&username, attempt).await?;
    let keep = session_cookie(&parts)
        .map(secret_token::digest)
        .ok_or(ApiError::Unauthenticated)?;
    let changes = UserChanges {
        password_hash: Some(password_hash),
        ..UserChanges::default()
    };
    let (user_id, changes, keep) = (me.user.id, &changes, &keep);
    let ended = state
        .store
        .transaction(|tx| async move {
            users::update(&tx, user_id, changes).await?;
            sessions::delete_others(&tx, user_id, keep).await
        })
        .await?;
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action: "account.password",
            target: None,
            detail: json!({ "other_sessions_ended": ended }),
            client: Some(&client.to_string()),
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
