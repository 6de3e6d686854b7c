//! Sign-in, sign-out and "who am I".

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ClientAddr, JsonBody, SESSION_COOKIE, session_cookie};
use crate::audit;
use crate::auth::{Credential, Identity, password, secret_token};
use crate::store::{second_factors, sessions, users};
use std::net::IpAddr;

/// How long a browser session lasts.
const SESSION_LIFETIME_SECS: i64 = 12 * 60 * 60;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

/// The account signed in.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    user: users::User,
}

/// What a right password answers: signed in, or a second factor to give.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    SignedIn(SignedIn),
    SecondFactor(super::second_factor::SecondFactorNeeded),
}

/// Signs in: sets the session cookie, or, for an account with a second factor, answers the
/// challenge to complete with `POST /auth/second-factor`. Limited per account and per client
/// address (429 with `Retry-After`).
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "session",
    security(()),
    request_body = Login,
    responses((status = 200, description = "Signed in (the session cookie is set), or a second factor is needed", body = LoginAnswer))
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Login>,
) -> ApiResult<Response> {
    refuse_foreign_origin(&headers, &state)?;
    // What no account can have is refused before it costs a hash, a limiter entry or an audit row.
    super::accounts::check_username(&body.username).map_err(ApiError::BadRequest)?;
    password::check_length(&body.password).map_err(ApiError::BadRequest)?;
    let attempt = super::account::limited(&state, &body.username, client).await?;
    let user = verify_credentials(&state, &body).await?;
    let Some(user) = user else {
        audit::record(
            &state.store,
            audit::Entry {
                actor: "anonymous",
                action: "auth.login_failed",
                target: Some(&body.username),
                detail: json!({}),
                client: Some(&client.to_string()),
            },
        )
        .await;
        return Err(ApiError::WrongCredentials);
    };
    if second_factors::has_factor(&state.store, user.id).await? {
        // The sign-in is not done: the account's failures stand until the second factor.
        state.login_limiter.password_only(attempt).await?;
        let challenge = super::second_factor::challenge(&state, user.id).await?;
        return Ok(Json(LoginAnswer::SecondFactor(challenge)).into_response());
    }
    state
        .login_limiter
        .succeeded(&body.username, attempt)
        .await?;
    start_session(&state, user, client, None).await
}

/// Signs `user` in from `client`: a new session and its cookie. `second_factor` names the one
/// they proved, for the audit log.
pub(super) async fn start_session(
    state: &AppState,
    user: users::User,
    client: IpAddr,
    second_factor: Option<&str>,
) -> ApiResult<Response> {
    let session = secret_token::generate();
    let digest = secret_token::digest(&session);
    let expires_at = crate::store::now() + SESSION_LIFETIME_SECS;
    let client = client.to_string();
    sessions::insert(&state.store, &digest, user.id, expires_at, Some(&client)).await?;
    let detail = match second_factor {
        Some(factor) => json!({ "second_factor": factor }),
        None => json!({}),
    };
    audit::record(
        &state.store,
        audit::Entry {
            actor: &format!("user:{}", user.id),
            action: "auth.login",
            target: None,
            detail,
            client: Some(&client),
        },
    )
    .await;
    let cookie =
        session_cookie_header(&session, SESSION_LIFETIME_SECS, state.web.secure_cookies())?;
    let answer = LoginAnswer::SignedIn(SignedIn { user });
    Ok(([(header::SET_COOKIE, cookie)], Json(answer)).into_response())
}

/// Checks the password, spending the same time whether or not the user exists.
async fn verify_credentials(state: &AppState, body: &Login) -> ApiResult<Option<users::User>> {
    let username = body.username.clone();
    let found = users::find_for_login(&state.store, &username).await?;
    let password = body.password.clone();
    let verified = tokio::task::spawn_blocking(move || match found {
        Some((user, hash)) if password::verify(&hash, &password) && !user.disabled => Some(user),
        Some(_) => None,
        None => {
            password::verify_dummy(&password);
            None
        }
    })
    .await
    .map_err(|err| ApiError::Internal(err.into()))?;
    Ok(verified)
}

/// Sign-in sets a cookie, so a foreign page must not be able to sign a visitor into our panel.
pub(super) fn refuse_foreign_origin(headers: &HeaderMap, state: &AppState) -> ApiResult<()> {
    match headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    {
        Some(origin) if origin != state.web.origin() => {
            Err(ApiError::Forbidden("cross-origin request refused"))
        }
        _ => Ok(()),
    }
}

/// Signs out: ends the session the cookie names and clears the cookie.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "session",
    responses((status = 204, description = "Signed out"))
)]
pub async fn logout(
    State(state): State<AppState>,
    identity: Identity,
    parts: Parts,
) -> ApiResult<Response> {
    if identity.credential == Credential::Session {
        if let Some(session) = session_cookie(&parts) {
            let digest = secret_token::digest(session);
            sessions::delete(&state.store, &digest).await?;
        }
        audit::record(
            &state.store,
            audit::Entry {
                actor: &identity.actor(),
                action: "auth.logout",
                target: None,
                detail: json!({}),
                client: None,
            },
        )
        .await;
    }
    let cookie = session_cookie_header("", 0, state.web.secure_cookies())?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// Who is asking, and how.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Whoami {
    user: users::User,
    credential: CredentialKind,
    /// What the caller may do beyond its role: every scope for a session.
    #[schema(value_type = Vec<crate::auth::Scope>)]
    scopes: crate::auth::Scopes,
    /// An operator who must enrol a second factor before this session can do anything else.
    must_enrol_second_factor: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Session,
    ApiToken,
}

#[utoipa::path(
    get,
    path = "/whoami",
    tag = "session",
    responses((status = 200, description = "The caller", body = Whoami))
)]
pub async fn whoami(State(state): State<AppState>, identity: Identity) -> ApiResult<Json<Whoami>> {
    let credential = match identity.credential {
        Credential::Session => CredentialKind::Session,
        Credential::ApiToken { .. } => CredentialKind::ApiToken,
    };
    let scopes = identity.scopes();
    let must_enrol_second_factor = identity.credential == Credential::Session
        && super::second_factor::must_enrol(&state, &identity.user).await?;
    Ok(Json(Whoami {
        user: identity.user,
        credential,
        scopes,
        must_enrol_second_factor,
    }))
}

fn session_cookie_header(value: &str, max_age: i64, secure: bool) -> ApiResult<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&cookie).map_err(|err| ApiError::Internal(err.into()))
}
