//! Users, managed by admins.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, JsonBody};
use crate::audit;
use crate::auth::password;
use crate::store::sessions;
use crate::store::users::{self, Role, User, UserChanges};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    role: Role,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    password: Option<String>,
    role: Option<Role>,
    disabled: Option<bool>,
}

/// Every account.
#[utoipa::path(get, path = "/users", operation_id = "list_users", tag = "accounts",
    responses((status = 200, description = "Every account", body = Vec<User>)))]
pub async fn list(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(users::list(&state.store).await?))
}

#[utoipa::path(get, path = "/users/{id}", operation_id = "show_user", tag = "accounts",
    params(("id" = i64, Path, description = "The account's id")),
    responses((status = 200, description = "The account", body = User)))]
pub async fn show(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<User>> {
    let user = users::get(&state.store, id).await?;
    user.map(Json).ok_or(ApiError::NotFound)
}

/// Creates an account; the password needs at least 10 characters.
#[utoipa::path(post, path = "/users", operation_id = "create_user", tag = "accounts", request_body = NewUser,
    responses((status = 201, description = "Created", body = User)))]
pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = create_user(&state.store, &body.username, &body.password, body.role).await?;
    audit::record(
        &state.store,
        audit::Entry {
            actor: &admin.actor(),
            action: "user.create",
            target: Some(&format!("user:{}", user.id)),
            detail: json!({ "username": user.username, "role": user.role }),
            client: None,
        },
    )
    .await;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Creates an account after checking the username and password; shared with the CLI.
pub async fn create_user(
    store: &crate::store::Store,
    username: &str,
    password: &str,
    role: Role,
) -> ApiResult<User> {
    check_username(username).map_err(ApiError::BadRequest)?;
    password::check_strength(password).map_err(ApiError::BadRequest)?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|err| ApiError::Internal(err.into()))??;
    match users::insert(store, username, role, &hash).await {
        Err(err) if err.is_unique_violation() => Err(ApiError::Conflict(format!(
            "the username {username:?} is taken"
        ))),
        other => Ok(other?),
    }
}

pub(super) fn check_username(username: &str) -> Result<(), String> {
    let fine = (1..=64).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if fine {
        Ok(())
    } else {
        Err("a username has 1-64 characters: letters, digits, '.', '_', '@' and '-'".into())
    }
}

/// Changes an account's password, role or whether it is disabled; a new password or disabling
/// ends its sessions. The last enabled operator cannot be demoted or disabled.
#[utoipa::path(patch, path = "/users/{id}", operation_id = "update_user", tag = "accounts", request_body = UserPatch,
    params(("id" = i64, Path, description = "The account's id")),
    responses((status = 200, description = "The account as changed", body = User)))]
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
    JsonBody(patch): JsonBody<UserPatch>,
) -> ApiResult<Json<User>> {
    // Another operator can do it, and undo it; alone, an operator would be locked out.
    if id == admin.user.id && (patch.disabled == Some(true) || patch.role == Some(Role::Customer)) {
        return Err(ApiError::Conflict(
            "you cannot disable your own account or take away your own operator role".into(),
        ));
    }
    let password_hash = match &patch.password {
        Some(new) => {
            password::check_strength(new).map_err(ApiError::BadRequest)?;
            let new = new.clone();
            Some(
                tokio::task::spawn_blocking(move || password::hash(&new))
                    .await
                    .map_err(|e| ApiError::Internal(e.into()))??,
            )
        }
        None => None,
    };
    let demotes = patch.role == Some(Role::Customer) || patch.disabled == Some(true);
    let changes = UserChanges {
        role: patch.role,
        password_hash,
        disabled: patch.disabled,
    };
    let ends_sessions = changes.password_hash.is_some() || patch.disabled == Some(true);
    let changes = &changes;
    let updated = state
        .store
        .transaction(|tx| async move {
            let updated = users::update(&tx, id, changes).await?;
            // Never leave the panel without an enabled administrator.
            if demotes && users::count_admins(&tx).await? == 0 {
                return Err(ApiError::Conflict(
                    "this would leave no enabled administrator".into(),
                ));
            }
            if ends_sessions {
                sessions::delete_for_user(&tx, id).await?;
            }
            updated.ok_or(ApiError::NotFound)
        })
        .await?;
    audit::record(&state.store, audit::Entry {
        actor: &admin.actor(),
        action: "user.update",
        target: Some(&format!("user:{id}")),
        detail: json!({
            "role": patch.role, "disabled": patch.disabled, "password_changed": patch.password.is_some()
        }),
        client: None,
    })
    .await;
    Ok(Json(updated))
}

/// Deletes an account that owns no services.
#[utoipa::path(delete, path = "/users/{id}", operation_id = "delete_user", tag = "accounts",
    params(("id" = i64, Path, description = "The account's id")),
    responses((status = 204, description = "Deleted")))]
pub async fn remove(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if id == admin.user.id {
        return Err(ApiError::Conflict(
            "you cannot delete your own account".into(),
        ));
    }
    let removed = state
        .store
        .transaction(|tx| async move {
            let deleted = users::delete(&tx, id).await?;
            if deleted {
                crate::store::audit::forget_account(&tx, id).await?;
            }
            Ok::<_, crate::store::StoreError>(deleted)
        })
        .await;
    let removed = match removed {
        Err(err) if err.is_foreign_key_violation() => Err(ApiError::Conflict(
            "this user still owns services; terminate them first".into(),
        )),
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::NotFound),
        Err(err) => Err(err.into()),
    };
    removed?;
    audit::record(
        &state.store,
        audit::Entry {
            actor: &admin.actor(),
            action: "user.delete",
            target: Some(&format!("user:{id}")),
            detail: json!({}),
            client: None,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
