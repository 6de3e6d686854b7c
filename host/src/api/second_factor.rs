//! Second factors: signing in with one, and an account enrolling and removing its own.
//!
//! A right password on an account with a second factor answers a challenge instead of a
//! session: a random token, held by the store for five minutes and five attempts, that
//! `POST /auth/second-factor` completes with a TOTP code or a recovery code. Every attempt is
//! counted by the sign-in limits like a password, so guessing six digits is as slow as guessing
//! a password. Each TOTP code works once (its time step is recorded in the same statement that
//! accepts it) and each recovery code once.
//!
//! With `[accounts] operator_mfa = "required"`, an operator without a second factor may sign in
//! with the password, but that session can do nothing but enrol one ([`enrolment_only`]).

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::account::limited;
use super::error::{ApiError, ApiResult};
use super::extract::{ClientAddr, JsonBody};
use crate::audit;
use crate::auth::second_factor::{self as factor, RECOVERY_CODES};
use crate::auth::{Identity, secret_token};
use crate::config::MfaPolicy;
use crate::sealed;
use crate::store::users::{self, Role, User};
use crate::store::{now, second_factors};

/// How long a sign-in waits for its second factor.
const CHALLENGE_LIFETIME_SECS: i64 = 5 * 60;
/// Codes one challenge takes before the sign-in must start again with the password.
const CHALLENGE_ATTEMPTS: i64 = 5;

/// The right password was given; a second factor completes the sign-in.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecondFactorNeeded {
    second_factor: Challenge,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Challenge {
    /// Give it back with the code to `POST /auth/second-factor`.
    challenge: String,
    /// What the account can complete the sign-in with.
    methods: Vec<FactorMethod>,
    /// Unix seconds.
    expires_at: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FactorMethod {
    Totp,
    Passkey,
    RecoveryCode,
}

/// A challenge for `user_id`, whose password was just proved.
pub(super) async fn challenge(state: &AppState, user_id: i64) -> ApiResult<SecondFactorNeeded> {
    let token = secret_token::generate();
    let expires_at = now() + CHALLENGE_LIFETIME_SECS;
    let digest = secret_token::digest(&token);
    second_factors::insert_challenge(&state.store, &digest, user_id, expires_at).await?;
    let mut methods = Vec::new();
    let totp = second_factors::totp(&state.store, user_id).await?;
    if totp.is_some_and(|totp| totp.confirmed) {
        methods.push(FactorMethod::Totp);
    }
    let passkeys = !second_factors::passkeys(&state.store, user_id)
        .await?
        .is_empty();
    if passkeys && state.accounts.webauthn.is_some() {
        methods.push(FactorMethod::Passkey);
    }
    if second_factors::recovery_codes_left(&state.store, user_id).await? > 0 {
        methods.push(FactorMethod::RecoveryCode);
    }
    Ok(SecondFactorNeeded {
        second_factor: Challenge {
            challenge: token,
            methods,
            expires_at,
        },
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorAnswer {
    challenge: String,
    /// The six digits the authenticator app shows.
    totp: Option<String>,
    /// One of the account's recovery codes; each works once.
    recovery_code: Option<String>,
    /// The browser's answer to `POST /auth/second-factor/passkey`'s options
    /// (`PublicKeyCredential.toJSON()`).
    #[schema(value_type = Option<Object>)]
    passkey: Option<serde_json::Value>,
}

/// Completes a sign-in with a TOTP code or a recovery code; sets the session cookie.
#[utoipa::path(post, path = "/auth/second-factor", tag = "session", security(()),
    request_body = SecondFactorAnswer,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = super::session::SignedIn),
        (status = 401, description = "A wrong or used code, or a challenge that expired or took too many codes", body = super::openapi::ErrorBody),
    ))]
pub async fn complete_sign_in(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SecondFactorAnswer>,
) -> ApiResult<Response> {
    super::session::refuse_foreign_origin(&headers, &state)?;
    let method = match (&body.totp, &body.recovery_code, &body.passkey) {
        (Some(_), None, None) => "totp",
        (None, Some(_), None) => "recovery_code",
        (None, None, Some(_)) => "passkey",
        _ => {
            return Err(ApiError::BadRequest(
                "give one of totp, recovery_code or passkey".into(),
            ));
        }
    };
    let digest = secret_token::digest(&body.challenge);
    let user =
        match second_factors::attempt_challenge(&state.store, &digest, CHALLENGE_ATTEMPTS).await? {
            Some(user_id) => users::get(&state.store, user_id).await?,
            None => None,
        };
    let user = user
        .filter(|user| !user.disabled)
        .ok_or(ApiError::SignInExpired)?;
    let attempt = limited(&state, &user.username, client).await?;
    let right = match (body.totp, body.recovery_code, body.passkey) {
        (Some(code), _, _) => accept_totp(&state, user.id, &code, false).await?,
        (_, Some(code), _) => {
            let hash = factor::recovery_code_hash(&code);
            second_factors::use_recovery_code(&state.store, user.id, &hash).await?
        }
        (_, _, Some(credential)) => {
            super::passkeys::accept(&state, user.id, &digest, credential).await?
        }
        _ => false,
    };
    if !right {
        audit::record(
            &state.store,
            audit::Entry {
                actor: &format!("user:{}", user.id),
                action: "auth.second_factor_failed",
                target: None,
                detail: json!({ "method": method }),
                client: Some(&client.to_string()),
            },
        )
        .await;
        return Err(ApiError::WrongCode);
    }
    state
        .login_limiter
        .succeeded(&user.username, attempt)
        .await?;
    // One session per challenge, even when two right answers race.
    if !second_factors::take_challenge(&state.store, &digest).await? {
        return Err(ApiError::SignInExpired);
    }
    super::session::start_session(&state, user, client, Some(method)).await
}

/// Whether `code` is the account's TOTP code now, accepting it (once) if so. `confirming`
/// checks the secret being enrolled instead of the enrolled one.
async fn accept_totp(
    state: &AppState,
    user_id: i64,
    code: &str,
    confirming: bool,
) -> ApiResult<bool> {
    let Some(row) = second_factors::totp(&state.store, user_id).await? else {
        return Ok(false);
    };
    if row.confirmed == confirming {
        return Ok(false);
    }
    let secret = sealed::open(&state.accounts.data_key, &row.sealed_secret)
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("a TOTP secret does not open: {err}")))?;
    let clock = u64::try_from(now()).unwrap_or_default();
    let Some(step) = factor::check_totp(&secret, code, clock) else {
        return Ok(false);
    };
    Ok(second_factors::accept_totp_step(&state.store, user_id, step, confirming).await?)
}

/// The account's second factors as it sees them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecondFactors {
    /// An authenticator app guards sign-in.
    totp: bool,
    passkeys: Vec<second_factors::PasskeyInfo>,
    /// Whether passkeys can be used here (the panel is on a domain name).
    passkeys_available: bool,
    recovery_codes_left: i64,
    /// Whether this account must have a second factor (operators, when the policy says so).
    required: bool,
}

#[utoipa::path(get, path = "/account/second-factors", tag = "account", operation_id = "second_factors",
    responses((status = 200, description = "The caller's second factors", body = SecondFactors)))]
pub async fn status(State(state): State<AppState>, me: Identity) -> ApiResult<Json<SecondFactors>> {
    let user_id = me.user.id;
    let totp = second_factors::totp(&state.store, user_id)
        .await?
        .is_some_and(|totp| totp.confirmed);
    let passkeys = second_factors::passkeys(&state.store, user_id).await?;
    Ok(Json(SecondFactors {
        totp,
        passkeys: passkeys.into_iter().map(|p| p.info).collect(),
        passkeys_available: state.accounts.webauthn.is_some(),
        recovery_codes_left: second_factors::recovery_codes_left(&state.store, user_id).await?,
        required: required_for(&state, &me.user),
    }))
}

/// A secret to add to an authenticator app; it guards nothing until confirmed with a code.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing into the app.
    secret: String,
    /// The same as an `otpauth://` URL, for a QR code.
    otpauth_url: String,
}

/// Starts enrolling an authenticator app (again, if an earlier start was not confirmed).
#[utoipa::path(post, path = "/account/totp", tag = "account",
    responses(
        (status = 201, description = "A new secret, shown this once", body = TotpEnrolment),
        (status = 409, description = "An authenticator is already enrolled", body = super::openapi::ErrorBody),
    ))]
pub async fn begin_totp(
    State(state): State<AppState>,
    me: Identity,
) -> ApiResult<(StatusCode, Json<TotpEnrolment>)> {
    let secret = factor::new_secret();
    let sealed = sealed::seal(&state.accounts.data_key, &secret);
    if !second_factors::begin_totp(&state.store, me.user.id, &sealed).await? {
        return Err(ApiError::Conflict(
            "an authenticator app is already enrolled; remove it first".into(),
        ));
    }
    let enrolment = factor::enrolment(&secret, &me.user.username)
        .map_err(|reason| ApiError::Internal(anyhow::anyhow!(reason)))?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolment {
            secret: enrolment.secret_base32,
            otpauth_url: enrolment.otpauth_url,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    code: String,
}

/// Recovery codes, shown this once: each signs in once in place of the authenticator.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

/// Finishes enrolling with a code from the app: from now on sign-in asks for one. Answers the
/// account's recovery codes.
#[utoipa::path(post, path = "/account/totp/confirm", tag = "account", request_body = TotpCode,
    responses(
        (status = 200, description = "Enrolled", body = RecoveryCodes),
        (status = 403, description = "The code is wrong", body = super::openapi::ErrorBody),
    ))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(client): ClientAddr,
    JsonBody(body): JsonBody<TotpCode>,
) -> ApiResult<Json<RecoveryCodes>> {
    let attempt = limited(&state, &me.user.username, client).await?;
    if !accept_totp(&state, me.user.id, &body.code, true).await? {
        // 403, not 401: the session is fine, the code is not.
        return Err(ApiError::Forbidden(
            "the code is wrong; check that the app's clock is right",
        ));
    }
    state
        .login_limiter
        .succeeded(&me.user.username, attempt)
        .await?;
    let codes = replace_recovery_codes(&state, me.user.id).await?;
    record(&state, &me, "account.totp_enabled", None, json!({}), client).await;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// New recovery codes in place of the old ones (used or not).
#[utoipa::path(post, path = "/account/recovery-codes", tag = "account",
    responses((status = 200, description = "The new codes, shown this once", body = RecoveryCodes)))]
pub async fn new_recovery_codes(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(client): ClientAddr,
) -> ApiResult<Json<RecoveryCodes>> {
    if !second_factors::has_factor(&state.store, me.user.id).await? {
        return Err(ApiError::Conflict(
            "recovery codes stand in for a second factor; enrol one first".into(),
        ));
    }
    let codes = replace_recovery_codes(&state, me.user.id).await?;
    record(
        &state,
        &me,
        "account.recovery_codes",
        None,
        json!({}),
        client,
    )
    .await;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CurrentPassword {
    current_password: String,
}

/// Removes the authenticator app (and the recovery codes with it); needs the password.
#[utoipa::path(post, path = "/account/totp/remove", tag = "account", request_body = CurrentPassword,
    responses(
        (status = 204, description = "Removed: sign-in asks for the password only"),
        (status = 403, description = "The password is wrong", body = super::openapi::ErrorBody),
        (status = 409, description = "Operators must keep a second factor", body = super::openapi::ErrorBody),
    ))]
pub async fn remove_totp(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(client): ClientAddr,
    JsonBody(body): JsonBody<CurrentPassword>,
) -> ApiResult<StatusCode> {
    keep_one_if_required(&state, &me.user).await?;
    super::account::confirm_password(&state, &me.user.username, client, body.current_password)
        .await?;
    let user_id = me.user.id;
    state
        .store
        .transaction(|tx| async move {
            second_factors::delete_totp(&tx, user_id).await?;
            second_factors::forget_recovery_codes_if_no_factor(&tx, user_id).await
        })
        .await?;
    record(&state, &me, "account.totp_removed", None, json!({}), client).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses to remove the last second factor of an account that must have one.
pub(super) async fn keep_one_if_required(state: &AppState, user: &User) -> ApiResult<()> {
    if required_for(state, user) && second_factors::count_factors(&state.store, user.id).await? <= 1
    {
        return Err(ApiError::Conflict(
            "operators must keep a second factor here; enrol another before removing this one"
                .into(),
        ));
    }
    Ok(())
}

pub(super) async fn replace_recovery_codes(
    state: &AppState,
    user_id: i64,
) -> ApiResult<Vec<String>> {
    let codes = factor::new_recovery_codes();
    let hashes: Vec<[u8; 32]> = codes
        .iter()
        .map(|c| factor::recovery_code_hash(c))
        .collect();
    debug_assert_eq!(hashes.len(), RECOVERY_CODES);
    let hashes = &hashes;
    state
        .store
        .transaction(|tx| async move {
            second_factors::replace_recovery_codes(&tx, user_id, hashes).await
        })
        .await?;
    Ok(codes)
}

/// Audits a change the caller made to their own second factors.
pub(super) async fn record(
    state: &AppState,
    me: &Identity,
    action: &str,
    target: Option<&str>,
    detail: serde_json::Value,
    client: std::net::IpAddr,
) {
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action,
            target,
            detail,
            client: Some(&client.to_string()),
        },
    )
    .await;
}

/// Whether `user` must have a second factor.
fn required_for(state: &AppState, user: &User) -> bool {
    state.accounts.operator_mfa == MfaPolicy::Required && user.role == Role::Admin
}

/// What a session that must enrol a second factor first may still do: see who it is, enrol,
/// and sign out.
fn enrolment_allows(method: &Method, path: &str) -> bool {
    matches!(
        (method.as_str(), path),
        ("GET", "/whoami")
            | ("GET", "/account/second-factors")
            | ("POST", "/account/totp")
            | ("POST", "/account/totp/confirm")
            | ("GET", "/account/passkeys")
            | ("POST", "/account/passkeys/begin")
            | ("POST", "/account/passkeys/finish")
            | ("POST", "/auth/logout")
    )
}

/// Refuses a browser session of an operator who must have a second factor and has none,
/// except for enrolling one. `path` is the matched route under `/api/v1`.
pub async fn enrolment_only(
    parts: &Parts,
    path: &str,
    state: &AppState,
    user: &User,
) -> ApiResult<()> {
    if enrolment_allows(&parts.method, path) || !must_enrol(state, user).await? {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "operators must enrol a second factor before anything else: see /account/second-factors",
    ))
}

/// Whether `user` signed in but must enrol a second factor before anything else.
pub async fn must_enrol(state: &AppState, user: &User) -> ApiResult<bool> {
    if !required_for(state, user) {
        return Ok(false);
    }
    Ok(!second_factors::has_factor(&state.store, user.id).await?)
}
