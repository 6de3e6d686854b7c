//! The caller's SSH keychain: keys to choose at order and at reinstall.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, ClientAddr, JsonBody};
use crate::audit;
use crate::auth::Identity;
use crate::store::ssh_keys::{self, NewKey, StoredKey};
use crate::store::users;
use crate::store::{Db, StoreError};

/// How many keys one account may keep.
const MAX_KEYS: i64 = 32;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSshKey {
    /// A label, 1-64 characters, unique in the keychain.
    name: String,
    /// One line of an OpenSSH `.pub` file: `ssh-ed25519 AAAA… comment`.
    public_key: String,
}

/// The caller's keys, oldest first.
#[utoipa::path(get, path = "/ssh-keys", operation_id = "list_ssh_keys", tag = "ssh-keys",
    responses((status = 200, description = "The caller's keys", body = Vec<StoredKey>)))]
pub async fn list(State(state): State<AppState>, me: Identity) -> ApiResult<Json<Vec<StoredKey>>> {
    Ok(Json(ssh_keys::list(&state.store, me.user.id).await?))
}

/// An account's keys, oldest first, for an operator helping its owner. Read-only: a keychain is
/// its owner's to change.
#[utoipa::path(get, path = "/users/{id}/ssh-keys", operation_id = "list_user_ssh_keys", tag = "ssh-keys",
    params(("id" = i64, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account's keys", body = Vec<StoredKey>),
        (status = 404, description = "No such account", body = super::openapi::ErrorBody),
    ))]
pub async fn list_of_user(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<StoredKey>>> {
    if users::get(&state.store, id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(ssh_keys::list(&state.store, id).await?))
}

/// Adds a key after parsing it: ed25519, ECDSA and RSA of 2048 bits or more are accepted.
#[utoipa::path(post, path = "/ssh-keys", operation_id = "add_ssh_key", tag = "ssh-keys", request_body = NewSshKey,
    responses(
        (status = 201, description = "Added", body = StoredKey),
        (status = 400, description = "Not an OpenSSH public key, or a bad name, with the reason", body = super::openapi::ErrorBody),
        (status = 409, description = "The name or the key is in the keychain already, or it is full", body = super::openapi::ErrorBody),
    ))]
pub async fn add(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(client): ClientAddr,
    JsonBody(body): JsonBody<NewSshKey>,
) -> ApiResult<(StatusCode, Json<StoredKey>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "a key's name has 1-64 characters".into(),
        ));
    }
    let key = crate::ssh_keys::parse(&body.public_key).map_err(ApiError::BadRequest)?;
    let user_id = me.user.id;
    let new = NewKey {
        user_id,
        name,
        public_key: &key.line,
        fingerprint: &key.fingerprint,
    };
    let new = &new;
    let stored = state
        .store
        .transaction(|tx| async move { add_within_limit(&tx, new).await })
        .await?
        .map_err(|err| match err {
            Refusal::Full => ApiError::Conflict(format!(
                "a keychain holds at most {MAX_KEYS} keys; remove one first"
            )),
            Refusal::Duplicate => ApiError::Conflict(format!(
                "your keychain already has a key named {name:?} or this key ({})",
                key.fingerprint
            )),
        })?;
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action: "ssh_key.added",
            target: Some(&format!("ssh_key:{}", stored.id)),
            detail: json!({ "name": stored.name, "fingerprint": stored.fingerprint }),
            client: Some(&client.to_string()),
        },
    )
    .await;
    Ok((StatusCode::CREATED, Json(stored)))
}

enum Refusal {
    Full,
    Duplicate,
}

/// Counts and inserts in one transaction, so two adds at once cannot pass the limit together.
async fn add_within_limit(
    db: &impl Db,
    new: &NewKey<'_>,
) -> Result<Result<StoredKey, Refusal>, StoreError> {
    if ssh_keys::count(db, new.user_id).await? >= MAX_KEYS {
        return Ok(Err(Refusal::Full));
    }
    match ssh_keys::insert(db, new).await {
        Err(err) if err.is_unique_violation() => Ok(Err(Refusal::Duplicate)),
        other => other.map(Ok),
    }
}

/// Removes a key from the keychain. VMs built with it keep it in their `authorized_keys`.
#[utoipa::path(delete, path = "/ssh-keys/{id}", operation_id = "remove_ssh_key", tag = "ssh-keys",
    params(("id" = i64, Path, description = "The key's id")),
    responses((status = 204, description = "Removed")))]
pub async fn remove(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(client): ClientAddr,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let removed = ssh_keys::delete(&state.store, me.user.id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action: "ssh_key.removed",
            target: Some(&format!("ssh_key:{id}")),
            detail: json!({ "name": removed.name, "fingerprint": removed.fingerprint }),
            client: Some(&client.to_string()),
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The key lines of the caller's keys `ids`; 400 naming an id that is not in the keychain.
pub async fn chosen_lines(db: &impl Db, user_id: i64, ids: &[i64]) -> ApiResult<Vec<String>> {
    let keys = ssh_keys::chosen(db, user_id, ids).await?;
    if let Some(missing) = ids.iter().find(|id| !keys.iter().any(|k| k.id == **id)) {
        return Err(ApiError::BadRequest(format!(
            "SSH key {missing} is not in the keychain"
        )));
    }
    Ok(keys.into_iter().map(|k| k.public_key).collect())
}
