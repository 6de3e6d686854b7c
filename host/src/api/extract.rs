//! Request extractors: the caller's identity, their address, and JSON bodies with 4xx reasons.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Bytes;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Path, Request};
use axum::http::request::Parts;
use axum::http::{Method, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::scopes::{self, Needs};
use super::{AppState, client_addr};
use crate::auth::{Credential, Identity, Scopes, secret_token};
use crate::store::services::{self, Service};
use crate::store::tokens::Presented;
use crate::store::{sessions, tokens};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "porthole_session";

/// The client's address (see [`client_addr`]).
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no peer address on request")))?;
        Ok(ClientAddr(client_addr(
            peer,
            &parts.headers,
            &state.web.trusted_proxies,
        )))
    }
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = bearer_token(parts)? {
            let digest = secret_token::digest(token);
            let (user, token) = match tokens::authenticate(&state.store, &digest).await? {
                Presented::Valid { user, token } => (user, token),
                Presented::Expired => return Err(ApiError::TokenExpired),
                Presented::Unknown => return Err(ApiError::Unauthenticated),
            };
            let identity = Identity {
                user,
                credential: Credential::ApiToken {
                    id: token.id,
                    scopes: token.scopes,
                    expires_at: token.expires_at,
                },
            };
            check_scope(parts, token.scopes)?;
            return Ok(identity);
        }
        let session = session_cookie(parts).ok_or(ApiError::Unauthenticated)?;
        // Cookies ride along on cross-site requests; a state change must come from our own pages.
        if is_state_change(&parts.method) {
            check_same_origin(parts, state)?;
        }
        let digest = secret_token::digest(session);
        let user = sessions::find_user(&state.store, &digest).await?;
        let user = user.ok_or(ApiError::Unauthenticated)?;
        super::second_factor::enrolment_only(parts, api_path(parts), state, &user).await?;
        Ok(Identity {
            user,
            credential: Credential::Session,
        })
    }
}

/// The matched route under `/api/v1`, e.g. `/services/{id}/{action}`.
fn api_path(parts: &Parts) -> &str {
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map_or(parts.uri.path(), MatchedPath::as_str);
    path.strip_prefix("/api/v1").unwrap_or(path)
}

/// Refuses a token whose scopes lack what the matched route needs ([`scopes::needed`]).
fn check_scope(parts: &Parts, held: Scopes) -> Result<(), ApiError> {
    match scopes::needed(&parts.method, api_path(parts)) {
        Needs::Scope(scope) if held.contains(scope) => Ok(()),
        Needs::Scope(scope) => Err(ApiError::MissingScope(scope)),
        Needs::Session => Err(ApiError::Forbidden(
            "this needs a signed-in browser session, not an API token",
        )),
    }
}

/// The service the path's `{id}` names, for a caller who may use it (see
/// [`crate::store::users::User::may_use`]). Another customer's service answers 404, exactly like a missing one, so
/// its existence is not confirmed.
pub struct VisibleService {
    pub me: Identity,
    pub service: Service,
}

impl FromRequestParts<AppState> for VisibleService {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let me = Identity::from_request_parts(parts, state).await?;
        let Path(id) = Path::<i64>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let service = Self::load(state, &me, id).await?;
        Ok(Self { me, service })
    }
}

impl VisibleService {
    /// Service `id`, if `me` may use it; for routes whose path holds more than the id.
    pub async fn load(state: &AppState, me: &Identity, id: i64) -> Result<Service, ApiError> {
        services::get(&state.store, id)
            .await?
            .filter(|s| me.user.may_use(s.owner_id))
            .ok_or(ApiError::NotFound)
    }
}

/// An identity that must be an admin.
pub struct Admin(pub Identity);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let identity = Identity::from_request_parts(parts, state).await?;
        if identity.is_admin() {
            Ok(Admin(identity))
        } else {
            Err(ApiError::Forbidden("this needs an administrator"))
        }
    }
}

fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::Unauthenticated)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(ApiError::BadRequest(
            "the Authorization header must be `Bearer <token>`".into(),
        )),
    }
}

pub fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

fn is_state_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Browsers send `Origin` on every cross-origin request and on same-origin POSTs; a cookie
/// request without it, or with another origin, is refused.
pub fn check_same_origin(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok());
    match origin {
        Some(origin) if origin == state.web.origin() => Ok(()),
        Some(_) => Err(ApiError::Forbidden("cross-origin request refused")),
        None => Err(ApiError::Forbidden(
            "a state change with a session cookie needs an Origin header",
        )),
    }
}

/// How long a client has to send a request's whole body once its headers are in: a body that
/// trickles in a byte at a time would otherwise hold its connection and task for ever.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `read` (which reads the body) within [`BODY_READ_TIMEOUT`].
async fn within_body_deadline<T>(read: impl Future<Output = T>) -> Result<T, ApiError> {
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| ApiError::BodyTooSlow(BODY_READ_TIMEOUT.as_secs()))
}

/// `Json<T>` whose rejections are our JSON errors with the parser's reason, read within the body
/// deadline.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match within_body_deadline(axum::Json::<T>::from_request(req, state)).await? {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection_reason(rejection))),
        }
    }
}

/// The raw body, read within the body deadline.
pub struct BodyBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        within_body_deadline(Bytes::from_request(req, state))
            .await?
            .map(BodyBytes)
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

fn rejection_reason(rejection: JsonRejection) -> String {
    rejection.body_text()
}

/// `Query<T>` whose rejection is our JSON error naming the parameter at fault.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}
