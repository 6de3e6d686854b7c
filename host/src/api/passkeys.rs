//! Passkeys (WebAuthn) as second factors: an account registers its own, and a sign-in whose
//! password was right completes with one. The relying party is the panel's public URL: its host
//! is the RP ID, so passkeys need the panel on a domain name (`localhost` included), not an IP
//! address. Ceremony states are kept in the store, so any daemon finishes what another began.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use super::AppState;
use super::account::confirm_password;
use super::error::{ApiError, ApiResult};
use super::extract::{ClientAddr, JsonBody};
use crate::auth::Identity;
use crate::store::now;
use crate::store::second_factors::{self, PasskeyInfo};

/// How long the browser has to answer a registration.
const REGISTRATION_LIFETIME_SECS: i64 = 5 * 60;

/// The relying party for `public_url`, or `None` when its host is an IP address (browsers
/// refuse WebAuthn there).
pub fn relying_party(public_url: &Url) -> Option<Arc<Webauthn>> {
    let host = public_url.host()?;
    let url::Host::Domain(domain) = host else {
        return None;
    };
    let built = WebauthnBuilder::new(domain, public_url)
        .and_then(|builder| builder.rp_name("Porthole").build());
    match built {
        Ok(webauthn) => Some(Arc::new(webauthn)),
        Err(err) => {
            tracing::warn!(error = %err, "passkeys are unavailable for this public_url");
            None
        }
    }
}

fn webauthn(state: &AppState) -> ApiResult<&Webauthn> {
    state.accounts.webauthn.as_deref().ok_or(ApiError::Conflict(
        "passkeys need the panel's public_url to be a domain name, not an IP address".into(),
    ))
}

/// The browser's `navigator.credentials` options, as WebAuthn's JSON (for
/// `PublicKeyCredential.parseCreationOptionsFromJSON` or `parseRequestOptionsFromJSON`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CeremonyOptions {
    #[schema(value_type = Object)]
    options: Value,
}

#[utoipa::path(get, path = "/account/passkeys", tag = "account", operation_id = "list_passkeys",
    responses((status = 200, description = "The caller's passkeys", body = Vec<PasskeyInfo>)))]
pub async fn list(
    State(state): State<AppState>,
    me: Identity,
) -> ApiResult<Json<Vec<PasskeyInfo>>> {
    let stored = second_factors::passkeys(&state.store, me.user.id).await?;
    Ok(Json(stored.into_iter().map(|p| p.info).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPasskey {
    /// What the owner calls it, e.g. "laptop".
    name: String,
}

/// Starts registering a passkey: answers the options for `navigator.credentials.create`.
#[utoipa::path(post, path = "/account/passkeys/begin", tag = "account", request_body = NewPasskey,
    responses((status = 200, description = "The creation options", body = CeremonyOptions)))]
pub async fn begin_registration(
    State(state): State<AppState>,
    me: Identity,
    JsonBody(body): JsonBody<NewPasskey>,
) -> ApiResult<Json<CeremonyOptions>> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::BadRequest(
            "a passkey's name has 1-64 characters".into(),
        ));
    }
    let webauthn = webauthn(&state)?;
    let existing = second_factors::passkeys(&state.store, me.user.id).await?;
    let exclude = existing
        .iter()
        .filter_map(|stored| serde_json::from_str::<Passkey>(&stored.passkey).ok())
        .map(|passkey| passkey.cred_id().clone())
        .collect();
    // The user handle names the account to the authenticator without naming the person.
    let handle = Uuid::from_u64_pair(0, u64::try_from(me.user.id).unwrap_or_default());
    let user = &me.user.username;
    let (options, registration) = webauthn
        .start_passkey_registration(handle, user, user, Some(exclude))
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("starting a registration: {err}")))?;
    let registration = serde_json::to_string(&registration).map_err(anyhow::Error::from)?;
    let expires_at = now() + REGISTRATION_LIFETIME_SECS;
    second_factors::put_registration(&state.store, me.user.id, name, &registration, expires_at)
        .await?;
    Ok(Json(CeremonyOptions {
        options: serde_json::to_value(options).map_err(anyhow::Error::from)?,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyCredential {
    /// The new credential as the browser's `PublicKeyCredential.toJSON()` gives it.
    #[schema(value_type = Object)]
    credential: Value,
}

/// A registered passkey, and recovery codes (shown this once) if the account had none.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PasskeyRegistered {
    passkey: PasskeyInfo,
    recovery_codes: Option<Vec<String>>,
}

/// Finishes registering: from now on, sign-in asks for a second factor.
#[utoipa::path(post, path = "/account/passkeys/finish", tag = "account",
    request_body = PasskeyCredential,
    responses(
        (status = 201, description = "Registered", body = PasskeyRegistered),
        (status = 400, description = "The browser's answer does not prove the registration", body = super::openapi::ErrorBody),
    ))]
pub async fn finish_registration(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(client): ClientAddr,
    JsonBody(body): JsonBody<PasskeyCredential>,
) -> ApiResult<(StatusCode, Json<PasskeyRegistered>)> {
    let webauthn = webauthn(&state)?;
    let credential: RegisterPublicKeyCredential = serde_json::from_value(body.credential)
        .map_err(|err| ApiError::BadRequest(format!("not a WebAuthn credential: {err}")))?;
    let (name, registration) = second_factors::take_registration(&state.store, me.user.id)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict("no passkey registration is waiting; begin again".into())
        })?;
    let registration: PasskeyRegistration =
        serde_json::from_str(&registration).map_err(anyhow::Error::from)?;
    let passkey = webauthn
        .finish_passkey_registration(&credential, &registration)
        .map_err(|err| ApiError::BadRequest(format!("the passkey was not registered: {err}")))?;
    let record = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
    let credential_id = hex::encode(passkey.cred_id());
    let info = match second_factors::insert_passkey(
        &state.store,
        me.user.id,
        &name,
        &credential_id,
        &record,
    )
    .await
    {
        Err(err) if err.is_unique_violation() => Err(ApiError::Conflict(format!(
            "you already have a passkey named {name:?}, or this one"
        ))),
        other => other.map_err(ApiError::from),
    }?;
    let recovery_codes =
        if second_factors::recovery_codes_left(&state.store, me.user.id).await? == 0 {
            Some(super::second_factor::replace_recovery_codes(&state, me.user.id).await?)
        } else {
            None
        };
    let target = format!("passkey:{}", info.id);
    let detail = json!({ "name": info.name });
    super::second_factor::record(
        &state,
        &me,
        "account.passkey_added",
        Some(&target),
        detail,
        client,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(PasskeyRegistered {
            passkey: info,
            recovery_codes,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovePasskey {
    current_password: String,
}

/// Removes one of the caller's passkeys; needs the password.
#[utoipa::path(post, path = "/account/passkeys/{id}/remove", tag = "account",
    request_body = RemovePasskey,
    params(("id" = i64, Path, description = "The passkey's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 409, description = "Operators must keep a second factor", body = super::openapi::ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(client): ClientAddr,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<RemovePasskey>,
) -> ApiResult<StatusCode> {
    super::second_factor::keep_one_if_required(&state, &me.user).await?;
    confirm_password(&state, &me.user.username, client, body.current_password).await?;
    let user_id = me.user.id;
    let removed = state
        .store
        .transaction(|tx| async move {
            let removed = second_factors::delete_passkey(&tx, user_id, id).await?;
            second_factors::forget_recovery_codes_if_no_factor(&tx, user_id).await?;
            Ok::<_, crate::store::StoreError>(removed)
        })
        .await?;
    if !removed {
        return Err(ApiError::NotFound);
    }
    let target = format!("passkey:{id}");
    super::second_factor::record(
        &state,
        &me,
        "account.passkey_removed",
        Some(&target),
        json!({}),
        client,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeToken {
    challenge: String,
}

/// Starts completing a sign-in with a passkey: answers the options for
/// `navigator.credentials.get`; the credential then goes to `POST /auth/second-factor`.
#[utoipa::path(post, path = "/auth/second-factor/passkey", tag = "session", security(()),
    request_body = ChallengeToken,
    responses((status = 200, description = "The request options", body = CeremonyOptions)))]
pub async fn begin_sign_in(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ChallengeToken>,
) -> ApiResult<Json<CeremonyOptions>> {
    let webauthn = webauthn(&state)?;
    let digest = crate::auth::secret_token::digest(&body.challenge);
    let user_id = second_factors::challenge_user(&state.store, &digest)
        .await?
        .ok_or(ApiError::SignInExpired)?;
    let passkeys = stored_passkeys(&state, user_id).await?;
    if passkeys.is_empty() {
        return Err(ApiError::Conflict("this account has no passkey".into()));
    }
    let (options, authentication) = webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("starting a passkey sign-in: {err}")))?;
    let authentication = serde_json::to_string(&authentication).map_err(anyhow::Error::from)?;
    if !second_factors::set_challenge_passkey(&state.store, &digest, &authentication).await? {
        return Err(ApiError::SignInExpired);
    }
    Ok(Json(CeremonyOptions {
        options: serde_json::to_value(options).map_err(anyhow::Error::from)?,
    }))
}

async fn stored_passkeys(state: &AppState, user_id: i64) -> ApiResult<Vec<Passkey>> {
    let stored = second_factors::passkeys(&state.store, user_id).await?;
    Ok(stored
        .iter()
        .filter_map(|stored| serde_json::from_str(&stored.passkey).ok())
        .collect())
}

/// Whether `credential` proves one of `user_id`'s passkeys for the challenge `digest` names,
/// recording its use if so.
pub(super) async fn accept(
    state: &AppState,
    user_id: i64,
    digest: &[u8; 32],
    credential: Value,
) -> ApiResult<bool> {
    let webauthn = webauthn(state)?;
    let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(credential) else {
        return Ok(false);
    };
    let Some(authentication) = second_factors::challenge_passkey(&state.store, digest).await?
    else {
        return Ok(false);
    };
    let authentication: PasskeyAuthentication =
        serde_json::from_str(&authentication).map_err(anyhow::Error::from)?;
    let Ok(result) = webauthn.finish_passkey_authentication(&credential, &authentication) else {
        return Ok(false);
    };
    let mut passkeys = stored_passkeys(state, user_id).await?;
    let Some(passkey) = passkeys
        .iter_mut()
        .find(|passkey| passkey.cred_id() == result.cred_id())
    else {
        return Ok(false);
    };
    passkey.update_credential(&result);
    let record = serde_json::to_string(&*passkey).map_err(anyhow::Error::from)?;
    let credential_id = hex::encode(passkey.cred_id());
    second_factors::passkey_used(&state.store, user_id, &credential_id, &record).await?;
    Ok(true)
}
