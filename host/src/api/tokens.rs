//! A user's own API tokens. The token is returned once, at creation.
//!
//! A token can manage tokens too, but never beyond itself: it may create only tokens with scopes
//! it holds and an expiry no later than its own, and remove only tokens whose scopes it holds,
//! so a leaked narrow token cannot mint or clear away a wider one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ClientAddr, JsonBody};
use crate::audit;
use crate::auth::{Credential, Identity, Scopes, secret_token};
use crate::store::tokens::{self, ApiToken, NewToken};
use crate::store::{Store, now};

/// The longest a token may be made to last, in days: ten years is "never" with an end.
const MAX_LIFETIME_DAYS: u32 = 3650;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    name: String,
    /// What the token may do; all scopes when left out.
    #[schema(value_type = Option<Vec<crate::auth::Scope>>)]
    scopes: Option<Scopes>,
    /// Days until the token stops working; it never expires when left out.
    expires_in_days: Option<u32>,
}

/// A new token: the secret (shown this once) and what is kept of it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    token: String,
    metadata: ApiToken,
}

/// The caller's own tokens (never the secrets).
#[utoipa::path(get, path = "/tokens", operation_id = "list_api_tokens", tag = "tokens",
    responses((status = 200, description = "The caller's tokens", body = Vec<ApiToken>)))]
pub async fn list(State(state): State<AppState>, me: Identity) -> ApiResult<Json<Vec<ApiToken>>> {
    let user_id = me.user.id;
    Ok(Json(tokens::list_for_user(&state.store, user_id).await?))
}

/// Creates a token for the caller; the secret is in this answer only.
#[utoipa::path(post, path = "/tokens", operation_id = "create_api_token", tag = "tokens", request_body = TokenRequest,
    responses((status = 201, description = "Created", body = CreatedToken)))]
pub async fn create(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(client): ClientAddr,
    JsonBody(body): JsonBody<TokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(ApiError::BadRequest(
            "a token name has 1-64 characters".into(),
        ));
    }
    let scopes = body.scopes.unwrap_or(Scopes::FULL);
    if scopes.is_empty() {
        return Err(ApiError::BadRequest(
            "give the token at least one scope".into(),
        ));
    }
    let expires_at = match body.expires_in_days {
        Some(days @ 1..=MAX_LIFETIME_DAYS) => Some(now() + i64::from(days) * 86_400),
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "expires_in_days is 1-{MAX_LIFETIME_DAYS}, or left out for a token that never \
                 expires"
            )));
        }
        None => None,
    };
    within_own_token(&me, scopes, Some(expires_at))?;
    let new = NewToken {
        user_id: me.user.id,
        name,
        scopes,
        expires_at,
    };
    let (token, metadata) = issue_token(&state.store, &new).await?;
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action: "token.create",
            target: Some(&format!("token:{}", metadata.id)),
            detail: json!({
                "name": metadata.name, "scopes": metadata.scopes, "expires_at": metadata.expires_at
            }),
            client: Some(&client.to_string()),
        },
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, metadata })))
}

/// Refuses a token acting on a token wider than itself: `scopes` it does not hold, or (when
/// `expires_at` is given) an expiry later than its own, as it was when the request was
/// authenticated. A browser session may do anything.
fn within_own_token(
    me: &Identity,
    scopes: Scopes,
    expires_at: Option<Option<i64>>,
) -> ApiResult<()> {
    let Credential::ApiToken {
        scopes: held,
        expires_at: own_expiry,
        ..
    } = me.credential
    else {
        return Ok(());
    };
    if let Some(lacking) = scopes.iter().find(|scope| !held.contains(*scope)) {
        return Err(ApiError::MissingScope(lacking));
    }
    match (own_expiry, expires_at) {
        (Some(_), Some(None)) => Err(ApiError::Forbidden(
            "a token that expires cannot create one that never does",
        )),
        (Some(own), Some(Some(new))) if new > own => Err(ApiError::Forbidden(
            "a token cannot create one that outlives it",
        )),
        _ => Ok(()),
    }
}

/// Creates a token and returns it with its metadata; shared with the CLI and demo.
pub async fn issue_token(store: &Store, new: &NewToken<'_>) -> ApiResult<(String, ApiToken)> {
    let token = secret_token::generate_api_token();
    let digest = secret_token::digest(&token);
    let metadata = match tokens::insert(store, new, &digest).await {
        Err(err) if err.is_unique_violation() => Err(ApiError::Conflict(format!(
            "you already have a token named {:?}",
            new.name
        ))),
        other => other.map_err(ApiError::from),
    }?;
    Ok((token, metadata))
}

/// Revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/tokens/{id}", operation_id = "revoke_api_token", tag = "tokens",
    params(("id" = i64, Path, description = "The token's id")),
    responses((status = 204, description = "Revoked")))]
pub async fn remove(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(client): ClientAddr,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let user_id = me.user.id;
    let target = tokens::get(&state.store, user_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    within_own_token(&me, target.scopes, None)?;
    if !tokens::delete(&state.store, user_id, id).await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action: "token.delete",
            target: Some(&format!("token:{id}")),
            detail: json!({ "name": target.name }),
            client: Some(&client.to_string()),
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
