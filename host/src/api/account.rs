//! The caller's own account: their password (and, in the panel, their tokens and activity).
//! Changes here need a browser session ([`super::scopes`]) and the current password, so neither
//! a leaked token nor a moment at an unlocked screen is enough to take the account over.

use std::net::IpAddr;

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

/// Counts an attempt at `username`'s sign-in limits: a code or a password checked outside the
/// sign-in form is a way to guess it too.
pub(super) async fn limited(
    state: &AppState,
    username: &str,
    client: IpAddr,
) -> ApiResult<crate::auth::login_limit::Attempt> {
    state
        .login_limiter
        .begin(username, client, crate::store::now())
        .await?
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after_secs: wait.as_secs(),
        })
}

/// Checks that `given` is `username`'s password, under the sign-in limits; a wrong one is 403
/// (the caller is signed in: 401 would say their session ended).
pub(super) async fn confirm_password(
    state: &AppState,
    username: &str,
    client: IpAddr,
    given: String,
) -> ApiResult<()> {
    let attempt = limited(state, username, client).await?;
    let found = users::find_for_login(&state.store, username).await?;
    let right = tokio::task::spawn_blocking(move || {
        found.is_some_and(|(_, stored)| password::verify(&stored, &given))
    })
    .await
    .map_err(|err| ApiError::Internal(err.into()))?;
    if !right {
        return Err(ApiError::Forbidden("the current password is wrong"));
    }
    state.login_limiter.succeeded(username, attempt).await?;
    Ok(())
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
    confirm_password(&state, &me.user.username, client, body.current_password).await?;
    let new = body.new_password;
    let password_hash = tokio::task::spawn_blocking(move || password::hash(&new))
        .await
        .map_err(|err| ApiError::Internal(err.into()))??;
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
