//! Console endpoints: minting a console token, the console WebSocket, and operators' view of
//! live sessions. Every refusal answers with a reason and leaves an audit entry; the relay itself
//! lives in [`crate::console`].

use axum::Json;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use super::AppState;
use super::error::ApiError;
use super::extract::{Admin, ClientAddr, JsonBody};
use crate::audit;
use crate::auth::Identity;
use crate::console::{
    CloseReason, ConsoleCounters, ConsoleKind, Grant, LiveSessionView, MintError, SessionRequest,
    TokenRefusal, close_at_once, run_session, tokens,
};
use crate::lifecycle::self_service::busy_with;
use crate::proxmox::{MAX_FRAME_BYTES, SUBPROTOCOL, VmPowerState};
use crate::store::services::{self, Service};
use crate::store::{self, StoreError, users};

/// Largest browser message accepted; larger ones (a big paste) are refused, smaller ones above
/// pveproxy's frame cap are split by the relay.
const MAX_BROWSER_MESSAGE: usize = 1024 * 1024;

/// A console request refused, or a failure on our side.
pub enum ConsoleError {
    Refused { status: StatusCode, reason: String },
    Api(ApiError),
}

impl ConsoleError {
    fn refused(status: StatusCode, reason: impl Into<String>) -> Self {
        Self::Refused {
            status,
            reason: reason.into(),
        }
    }
}

impl From<ApiError> for ConsoleError {
    fn from(err: ApiError) -> Self {
        Self::Api(err)
    }
}

impl From<StoreError> for ConsoleError {
    fn from(err: StoreError) -> Self {
        Self::Api(err.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::Refused { status, reason } => {
                (status, Json(json!({ "error": reason }))).into_response()
            }
            Self::Api(err) => err.into_response(),
        }
    }
}

type ConsoleResult<T> = Result<T, ConsoleError>;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleRequest {
    kind: ConsoleKind,
}

/// A single-use console token and the WebSocket to use it on.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsoleTicket {
    /// The WebSocket URL, token included.
    url: String,
    token: String,
    /// Unix seconds; the token is refused after this (30 s at most).
    expires_at: i64,
}

/// Mints a single-use console token for a VM the caller may use.
#[utoipa::path(post, path = "/vms/{id}/console", operation_id = "create_console_token", tag = "console", request_body = ConsoleRequest,
    params(("id" = i64, Path, description = "The VM's (service's) id")),
    responses(
        (status = 201, description = "A token for `GET /console/ws`", body = ConsoleTicket),
        (status = 409, description = "The VM cannot have a console now (not running, suspended), with the reason", body = super::openapi::ErrorBody),
        (status = 429, description = "Too many consoles open", body = super::openapi::ErrorBody),
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<ConsoleRequest>,
) -> ConsoleResult<(StatusCode, Json<ConsoleTicket>)> {
    let grant = Grant {
        user_id: me.user.id,
        service_id: id,
        kind: body.kind,
    };
    let service = services::get(&state.store, id)
        .await?
        .filter(|s| me.user.may_use(s.owner_id));
    if let Some(service) = &service
        && let Some(kind) = busy_with(&state.store, service.id).await?
        && kind.replaces_disk()
    {
        return Err(ConsoleError::refused(
            StatusCode::CONFLICT,
            kind.busy_reason(),
        ));
    }
    // Asked only once the service itself allows a console.
    let power = async {
        let Some(service) = &service else {
            return VmPowerState::Unknown;
        };
        let Ok((node, vmid)) = service.usable_vm() else {
            return VmPowerState::Unknown;
        };
        state
            .inventory
            .power_state(&service.cluster, node, vmid)
            .await
    };
    let issued = state
        .console
        .issue_token(grant, service.as_ref(), power, addr)
        .await
        .map_err(|err| match err {
            MintError::NotFound => ConsoleError::Api(ApiError::NotFound),
            MintError::Conflict(reason) => ConsoleError::refused(StatusCode::CONFLICT, reason),
            MintError::Busy(reason) => ConsoleError::refused(StatusCode::TOO_MANY_REQUESTS, reason),
            MintError::Store(err) => ConsoleError::Api(err.into()),
        })?;
    let url = socket_url(&state.web.public_url, &issued.token);
    Ok((
        StatusCode::CREATED,
        Json(ConsoleTicket {
            url,
            token: issued.token,
            expires_at: issued.expires_at,
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SocketQuery {
    /// The token from `POST /vms/{id}/console`.
    token: Option<String>,
}

/// The console WebSocket (subprotocol `binary`): RFB for `vnc` (noVNC), the terminal proxy's
/// protocol for `term` (xterm.js). Checks Origin and redeems the token before upgrading; the
/// Proxmox and VNC authentication happen in the daemon. How a session ends is its close code,
/// one of `ConsoleCloseCode`.
#[utoipa::path(get, path = "/console/ws", operation_id = "console_socket", tag = "console", security(()), params(SocketQuery),
    responses(
        (status = 101, description = "Switched to the console WebSocket"),
        (status = 401, description = "A missing, spent or expired token", body = super::openapi::ErrorBody),
        (status = 403, description = "Not from the panel's origin", body = super::openapi::ErrorBody),
    ))]
pub async fn socket(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Query(query): Query<SocketQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ConsoleResult<Response> {
    let token = query.token.filter(|t| !t.is_empty());
    if let Err((label, error)) = check_origin(&headers, &state.web.origin()) {
        // Name the user behind the token, without spending it, if it is a live one.
        let peeked = match &token {
            Some(token) => tokens::peek(&state.store, token, store::now()).await?,
            None => None,
        };
        return Err(refuse(&state, peeked, label, addr, error).await);
    }
    let upgrade = upgrade
        .map_err(|rejection| ConsoleError::refused(rejection.status(), rejection.body_text()))?;
    let Some(token) = token else {
        let error =
            ConsoleError::refused(StatusCode::UNAUTHORIZED, TokenRefusal::Missing.to_string());
        return Err(refuse(&state, None, TokenRefusal::Missing.label(), addr, error).await);
    };
    let grant = match tokens::redeem(&state.store, &token, store::now()).await? {
        Ok(grant) => grant,
        Err(refusal) => {
            let error = ConsoleError::refused(StatusCode::UNAUTHORIZED, refusal.to_string());
            return Err(refuse(&state, refusal.grant(), refusal.label(), addr, error).await);
        }
    };
    // Admitted before the state check: a revocation from now on reaches this session, and one
    // before it has already changed the state checked below.
    let admission = match state.console.admit(grant, &addr.to_string()).await? {
        Ok(admission) => admission,
        Err(full) => {
            // The cap was free when the token was minted and taken since. Upgrade only to say
            // so with a close code the panel can explain (see `close_at_once`).
            let error = ConsoleError::refused(StatusCode::TOO_MANY_REQUESTS, full.to_string());
            refuse(&state, Some(grant), full.label(), addr, error).await;
            let reason = CloseReason::LimitReached(full);
            return Ok(browser_upgrade(upgrade)
                .on_failed_upgrade(|err| tracing::info!(error = %err, "console upgrade failed"))
                .on_upgrade(move |socket| close_at_once(socket, reason)));
        }
    };
    let service = match allowed_service(&state, grant).await? {
        Ok(service) => service,
        Err((label, error)) => return Err(refuse(&state, Some(grant), label, addr, error).await),
    };
    let (node, vmid) = match service.usable_vm() {
        Ok((node, vmid)) => (node.to_owned(), vmid),
        Err(refusal) => return Err(ConsoleError::refused(StatusCode::CONFLICT, refusal.reason)),
    };
    let client = state
        .inventory
        .client(&service.cluster)
        .cloned()
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "service {} names unknown cluster {:?}",
                service.id,
                service.cluster
            ))
        })?;
    let request = SessionRequest {
        admission,
        client,
        node,
        vmid,
        client_addr: addr,
        limits: state.console.limits().clone(),
    };
    let store = state.store.clone();
    let response = browser_upgrade(upgrade)
        .on_failed_upgrade(|err| tracing::info!(error = %err, "console upgrade failed"))
        .on_upgrade(move |socket| run_session(store, socket, request));
    Ok(response)
}

/// The browser's WebSocket as the relay wants it: subprotocol `binary`, small buffers (an idle
/// session should cost little), and pveproxy's frame cap in mind.
fn browser_upgrade(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .protocols([SUBPROTOCOL])
        .read_buffer_size(8 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(4 * MAX_FRAME_BYTES)
        .max_frame_size(MAX_BROWSER_MESSAGE)
        .max_message_size(MAX_BROWSER_MESSAGE)
}

/// A live session, with the names of its user and VM.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NamedSession {
    #[serde(flatten)]
    session: LiveSessionView,
    username: Option<String>,
    service_name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsoleSessions {
    sessions: Vec<NamedSession>,
    /// This daemon's relay counters since it started.
    counters: ConsoleCounters,
}

/// Live sessions on every daemon, and this daemon's relay counters.
#[utoipa::path(get, path = "/console/sessions", operation_id = "list_console_sessions", tag = "console",
    responses((status = 200, description = "The live sessions", body = ConsoleSessions)))]
pub async fn sessions(
    State(state): State<AppState>,
    _: Admin,
) -> ConsoleResult<Json<ConsoleSessions>> {
    let live = state.console.sessions_everywhere().await?;
    // The names of the services with a session, not of every service.
    let ids: std::collections::BTreeSet<i64> = live.iter().map(|s| s.service_id).collect();
    let mut services = std::collections::HashMap::new();
    for id in ids {
        if let Some(service) = services::get(&state.store, id).await? {
            services.insert(id, service.name);
        }
    }
    let users = users::names(&state.store).await?;
    // Names beside the ids, so the operators' page can say who is on which VM.
    let sessions = live
        .into_iter()
        .map(|session| NamedSession {
            username: users.get(&session.user_id).cloned(),
            service_name: services.get(&session.service_id).cloned(),
            session,
        })
        .collect();
    Ok(Json(ConsoleSessions {
        sessions,
        counters: state.console.counters(),
    }))
}

/// Closes one live session, whichever daemon relays it (close code 4004).
#[utoipa::path(delete, path = "/console/sessions/{id}", operation_id = "close_console_session", tag = "console",
    params(("id" = i64, Path, description = "The session's id")),
    responses((status = 204, description = "Closed")))]
pub async fn close_session(
    State(state): State<AppState>,
    Admin(me): Admin,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<i64>,
) -> ConsoleResult<StatusCode> {
    if !state.console.close_anywhere(id).await? {
        return Err(ConsoleError::Api(ApiError::NotFound));
    }
    let client = addr.to_string();
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action: "console.close_requested",
            target: Some(&format!("console_session:{id}")),
            detail: json!({}),
            client: Some(&client),
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The service of a redeemed grant, if its user may still open it now.
async fn allowed_service(
    state: &AppState,
    grant: Grant,
) -> ConsoleResult<Result<Service, (&'static str, ConsoleError)>> {
    let user = users::get(&state.store, grant.user_id).await?;
    let service = services::get(&state.store, grant.service_id).await?;
    let (Some(user), Some(service)) = (user, service) else {
        return Ok(Err(("not_found", ConsoleError::Api(ApiError::NotFound))));
    };
    if user.disabled || !user.may_use(service.owner_id) {
        return Ok(Err(("not_found", ConsoleError::Api(ApiError::NotFound))));
    }
    let usable = service.usable_vm().map(drop);
    Ok(usable.map(|()| service).map_err(|refusal| {
        let error = ConsoleError::refused(StatusCode::CONFLICT, refusal.reason);
        (refusal.label, error)
    }))
}

/// Browsers send `Origin` on every WebSocket; only the panel's own pages may open a console.
fn check_origin(headers: &HeaderMap, expected: &str) -> Result<(), (&'static str, ConsoleError)> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match origin {
        Some(origin) if origin == expected => Ok(()),
        Some(_) => Err((
            "wrong_origin",
            ConsoleError::refused(
                StatusCode::FORBIDDEN,
                "a console can only be opened from the panel's own pages",
            ),
        )),
        None => Err((
            "missing_origin",
            ConsoleError::refused(
                StatusCode::FORBIDDEN,
                "a console WebSocket needs an Origin header",
            ),
        )),
    }
}

/// Counts and audits a refusal, and hands back the error to answer with.
async fn refuse(
    state: &AppState,
    grant: Option<Grant>,
    label: &'static str,
    client: std::net::IpAddr,
    error: ConsoleError,
) -> ConsoleError {
    state.console.refused(grant, label, client).await;
    error
}

/// `ws(s)://panel/…/api/v1/console/ws?token=…`, below the public URL's path.
fn socket_url(public_url: &Url, token: &str) -> String {
    let mut base = public_url.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    let Ok(mut url) = base.join("api/v1/console/ws") else {
        return format!("/api/v1/console/ws?token={token}");
    };
    // `http`→`ws` and `https`→`wss` are both special schemes, so the switch cannot fail.
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    let _ = url.set_scheme(scheme);
    url.query_pairs_mut().append_pair("token", token);
    url.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn socket_urls_follow_the_public_url() {
        let url = |public: &str| socket_url(&Url::parse(public).unwrap(), "abc");
        assert_eq!(
            url("https://panel.example.com"),
            "wss://panel.example.com/api/v1/console/ws?token=abc"
        );
        assert_eq!(
            url("http://127.0.0.1:8080/"),
            "ws://127.0.0.1:8080/api/v1/console/ws?token=abc"
        );
        assert_eq!(
            url("https://example.com/panel"),
            "wss://example.com/panel/api/v1/console/ws?token=abc"
        );
    }

    #[test]
    fn the_origin_must_be_the_panels_own() {
        let mut headers = HeaderMap::new();
        assert!(check_origin(&headers, "https://panel").is_err());
        headers.insert(header::ORIGIN, "https://evil".parse().unwrap());
        assert!(check_origin(&headers, "https://panel").is_err());
        headers.insert(header::ORIGIN, "https://panel".parse().unwrap());
        assert!(check_origin(&headers, "https://panel").is_ok());
    }
}
