//! The request engine: settings, endpoint failover, authentication, retries, and turning
//! pveproxy's answers into data or [`ProxmoxError`]s. The typed calls live in `api.rs`.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::auth::{AuthHeaders, Credentials, TicketAuth, TicketResponse, token_header};
use super::error::{CallContext, ProxmoxError, TlsFailure};
use super::tls::{self, TlsConfigError, TlsTrust};

pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// PVE tickets live two hours; renewing well before that avoids a failed call at the edge.
pub const DEFAULT_TICKET_RENEW_AFTER: Duration = Duration::from_secs(105 * 60);
/// `/cluster/resources` of a big cluster is a few MiB; anything far beyond is not pveproxy.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// How often and how patiently transient failures are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries of one call, including the first (1 = no retries).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles for each further one.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// Delay after `failed` failed attempts: exponential, capped, with "equal jitter" (half
    /// fixed, half random) so callers that failed together do not retry together.
    fn backoff(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(16);
        let full = self
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        let half = full / 2;
        let half_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=half_ms))
    }
}

/// Everything needed to talk to one Proxmox cluster.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The cluster's name in Porthole's config; used in logs and errors only.
    pub cluster: String,
    /// Base URLs of one or more nodes of the same cluster, e.g. `https://pve1:8006/`. Calls go
    /// to the first that answers; the others are used when it cannot be reached.
    pub api_urls: Vec<Url>,
    pub auth: Credentials,
    pub trust: TlsTrust,
    /// Limit for one HTTP exchange, connection included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Age at which a login ticket is replaced (ticket auth only).
    pub ticket_renew_after: Duration,
}

impl ClientSettings {
    /// Settings with default timeouts and retries.
    pub fn new(
        cluster: impl Into<String>,
        api_urls: Vec<Url>,
        auth: Credentials,
        trust: TlsTrust,
    ) -> Self {
        Self {
            cluster: cluster.into(),
            api_urls,
            auth,
            trust,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
            ticket_renew_after: DEFAULT_TICKET_RENEW_AFTER,
        }
    }
}

/// Settings a client cannot be built from.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cluster {0}: no API URL configured")]
    NoEndpoints(String),
    #[error(
        "cluster {cluster}: API URL {url} must be https:// with a host and no credentials, query or fragment"
    )]
    BadUrl { cluster: String, url: Url },
    #[error(
        "cluster {cluster}: API token id or secret contains characters not allowed in a header"
    )]
    BadToken { cluster: String },
    #[error("cluster {cluster}: {source}")]
    Tls {
        cluster: String,
        #[source]
        source: TlsConfigError,
    },
    #[error("cluster {cluster}: HTTP client: {source}")]
    Http {
        cluster: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cluster {cluster}: retry policy needs at least one attempt")]
    NoAttempts { cluster: String },
}

/// Whether a call may be sent again after a failure that might have reached Proxmox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Repeating it cannot do anything the first did not (reads, absolute settings, stop).
    Safe,
    /// Repeating could do it twice (clone, start, delete): retried only when the failure
    /// proves the request never left (connection refused).
    Unsafe,
}

/// One API call, before it is sent.
pub(crate) struct ApiRequest {
    method: Method,
    /// Path below `api2/json/`, one entry per segment (encoded when the URL is built).
    segments: Vec<String>,
    params: Vec<(String, String)>,
    repeat: Repeat,
    /// Set when the caller's input failed validation; the call is then never sent.
    problem: Option<String>,
}

impl ApiRequest {
    pub fn new<S: Into<String>>(method: Method, segments: impl IntoIterator<Item = S>) -> Self {
        let repeat = if method == Method::GET {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        };
        Self {
            method,
            segments: segments.into_iter().map(Into::into).collect(),
            params: Vec::new(),
            repeat,
            problem: None,
        }
    }

    pub fn param(mut self, key: &str, value: impl Into<String>) -> Self {
        self.params.push((key.to_owned(), value.into()));
        self
    }

    pub fn params(mut self, params: Vec<(String, String)>) -> Self {
        self.params.extend(params);
        self
    }

    pub fn repeat(mut self, repeat: Repeat) -> Self {
        self.repeat = repeat;
        self
    }

    /// Records a validation failure of the caller's input; keeps the first one.
    pub fn check(mut self, result: Result<(), String>) -> Self {
        if let Err(problem) = result {
            self.problem.get_or_insert(problem);
        }
        self
    }

    /// `GET nodes/pve1/qemu/100/status/current`: how the call is named in logs and errors.
    fn describe(&self) -> String {
        format!("{} {}", self.method, self.segments.join("/"))
    }

    /// `GET nodes/{node}/qemu/{vmid}/status/current`: the call's endpoint, its variable parts
    /// named, for metrics (a label per node or VM would grow without end).
    fn endpoint(&self) -> String {
        let mut path = Vec::with_capacity(self.segments.len());
        for (index, segment) in self.segments.iter().enumerate() {
            let after = index.checked_sub(1).map(|i| self.segments[i].as_str());
            let named = match after {
                Some("nodes") => "{node}",
                Some("qemu" | "lxc") => "{vmid}",
                Some("tasks") => "{upid}",
                Some("storage") => "{storage}",
                Some("snapshot") => "{snapname}",
                Some("pools") => "{poolid}",
                _ if segment.bytes().all(|b| b.is_ascii_digit()) => "{id}",
                _ => segment.as_str(),
            };
            path.push(named);
        }
        format!("{} {}", self.method, path.join("/"))
    }
}

/// A failed attempt, with what the retry logic needs to know about it.
struct Failure {
    error: ProxmoxError,
    /// Whether the request may have reached Proxmox (and so may have taken effect).
    delivered: bool,
}

impl Failure {
    fn definite(error: ProxmoxError) -> Self {
        Self {
            error,
            delivered: true,
        }
    }

    /// The node could not be reached at all: try another node, or try again.
    fn unreachable(&self) -> bool {
        !self.delivered && matches!(self.error, ProxmoxError::Transient { .. })
    }

    fn may_retry(&self, repeat: Repeat) -> bool {
        matches!(self.error, ProxmoxError::Transient { .. })
            && (repeat == Repeat::Safe || !self.delivered)
    }
}

enum Auth {
    Token(HeaderValue),
    Ticket(TicketAuth),
}

struct Inner {
    cluster: String,
    endpoints: Vec<Url>,
    http: reqwest::Client,
    auth: Auth,
    retry: RetryPolicy,
    /// Index of the endpoint that answered last; calls start there.
    preferred: AtomicUsize,
    /// The same trust as `http`, for connections reqwest does not make (console WebSockets).
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

/// A client for one Proxmox VE cluster. Cheap to clone; clones share connections and the
/// login ticket.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("cluster", &self.inner.cluster)
            .field("endpoints", &self.inner.endpoints)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(settings: ClientSettings) -> Result<Self, SettingsError> {
        let cluster = settings.cluster.clone();
        validate_endpoints(&cluster, &settings.api_urls)?;
        if settings.retry.max_attempts == 0 {
            return Err(SettingsError::NoAttempts { cluster });
        }
        let auth = match settings.auth {
            Credentials::ApiToken { token_id, secret } => Auth::Token(
                token_header(&token_id, &secret).ok_or(SettingsError::BadToken {
                    cluster: cluster.clone(),
                })?,
            ),
            Credentials::Ticket { username, password } => Auth::Ticket(TicketAuth::new(
                username,
                password,
                settings.ticket_renew_after,
            )),
        };
        let http = http_client(
            &cluster,
            &settings.trust,
            settings.request_timeout,
            settings.connect_timeout,
        )?;
        let tls = tls::client_config(&settings.trust).map_err(|source| SettingsError::Tls {
            cluster: cluster.clone(),
            source,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                cluster,
                endpoints: settings.api_urls,
                http,
                auth,
                retry: settings.retry,
                preferred: AtomicUsize::new(0),
                tls: Arc::new(tls),
                connect_timeout: settings.connect_timeout,
            }),
        })
    }

    /// The cluster's name from the settings.
    pub fn cluster(&self) -> &str {
        &self.inner.cluster
    }

    pub(crate) fn context(&self, call: String) -> CallContext {
        CallContext {
            cluster: self.inner.cluster.clone(),
            call,
        }
    }

    /// Sends `request` (with retries and failover) and returns its `data`. Every typed call
    /// goes through here; so should new ones (e.g. `vncproxy`, `termproxy`, built with
    /// `ApiRequest::new(Method::POST, …)` and left `Repeat::Unsafe`). The console relay must open
    /// `vncwebsocket` on the host that answered `vncproxy`: `send` knows which endpoint that was
    /// and can return it alongside the body when that call is added.
    pub(crate) async fn request<T: DeserializeOwned>(
        &self,
        request: ApiRequest,
    ) -> Result<T, ProxmoxError> {
        let ctx = self.context(request.describe());
        if let Some(problem) = &request.problem {
            return Err(ctx.invalid_request(problem.clone()));
        }
        let (body, _) = self.execute(&request, &ctx).await?;
        parse_data(&body, &ctx)
    }

    /// Like [`Client::request`], and also says which endpoint answered: the console relay must
    /// open `vncwebsocket` on the very host that answered `vncproxy`.
    pub(crate) async fn request_answered_by<T: DeserializeOwned>(
        &self,
        request: ApiRequest,
    ) -> Result<(T, Url), ProxmoxError> {
        let ctx = self.context(request.describe());
        if let Some(problem) = &request.problem {
            return Err(ctx.invalid_request(problem.clone()));
        }
        let (body, endpoint) = self.execute(&request, &ctx).await?;
        Ok((parse_data(&body, &ctx)?, endpoint))
    }

    /// The headers that authenticate a GET (e.g. a WebSocket upgrade) as this client.
    pub(crate) async fn auth_header_pairs(
        &self,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ProxmoxError> {
        self.auth_headers()
            .await
            .map(|auth| auth.pairs_for_get())
            .map_err(|failure| failure.error)
    }

    /// The TLS settings every connection to this cluster uses.
    pub(crate) fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.inner.tls.clone()
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    async fn execute(
        &self,
        request: &ApiRequest,
        ctx: &CallContext,
    ) -> Result<(Vec<u8>, Url), ProxmoxError> {
        let started = std::time::Instant::now();
        let outcome = self.execute_with_retries(request, ctx).await;
        let class = outcome.as_ref().map_or_else(ProxmoxError::class, |_| "ok");
        crate::metrics::INSTRUMENTS.proxmox_call(request.endpoint(), class, started.elapsed());
        outcome
    }

    async fn execute_with_retries(
        &self,
        request: &ApiRequest,
        ctx: &CallContext,
    ) -> Result<(Vec<u8>, Url), ProxmoxError> {
        let policy = &self.inner.retry;
        let mut attempt = 1;
        loop {
            tracing::debug!(cluster = %ctx.cluster, call = %ctx.call, attempt, "proxmox call");
            let failure = match self.attempt(request, ctx).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            if attempt >= policy.max_attempts || !failure.may_retry(request.repeat) {
                return Err(with_attempts(failure.error, attempt));
            }
            let delay = policy.backoff(attempt);
            tracing::warn!(
                cluster = %ctx.cluster, call = %ctx.call, attempt, error = %failure.error,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "proxmox call failed, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt, including a single re-login if a ticket was refused (a ticket can be
    /// invalidated before its age says so, e.g. when the cluster's auth key rotates).
    async fn attempt(
        &self,
        request: &ApiRequest,
        ctx: &CallContext,
    ) -> Result<(Vec<u8>, Url), Failure> {
        let auth = self.auth_headers().await?;
        let result = self.send(request, ctx, &auth).await;
        let (AuthHeaders::Ticket(ticket), Auth::Ticket(ticket_auth)) = (&auth, &self.inner.auth)
        else {
            return result;
        };
        match result {
            Err(failure) if matches!(failure.error, ProxmoxError::Unauthorized { .. }) => {
                tracing::info!(cluster = %ctx.cluster, "proxmox ticket refused, logging in again");
                ticket_auth.discard(ticket).await;
                let auth = self.auth_headers().await?;
                self.send(request, ctx, &auth).await
            }
            other => other,
        }
    }

    async fn auth_headers(&self) -> Result<AuthHeaders, Failure> {
        let ticket_auth = match &self.inner.auth {
            Auth::Token(value) => return Ok(AuthHeaders::Token(value.clone())),
            Auth::Ticket(ticket_auth) => ticket_auth,
        };
        let mut slot = ticket_auth.slot().await;
        if let Some(ticket) = slot.fresh(ticket_auth.renew_after()) {
            return Ok(AuthHeaders::Ticket(ticket));
        }
        let ctx = self.context("POST access/ticket".to_owned());
        let response = self.login(ticket_auth, &ctx).await?;
        let ticket = slot.store(response).ok_or_else(|| Failure {
            error: ctx.invalid_response("ticket is not a valid header value"),
            delivered: false,
        })?;
        tracing::debug!(cluster = %ctx.cluster, "proxmox login ticket obtained");
        Ok(AuthHeaders::Ticket(ticket))
    }

    async fn login(&self, auth: &TicketAuth, ctx: &CallContext) -> Result<TicketResponse, Failure> {
        let request = ApiRequest::new(Method::POST, ["access", "ticket"])
            .param("username", auth.username.clone())
            .param("password", auth.password.clone());
        // The call the login serves has not been sent yet, whatever happened to the login.
        let not_delivered = |error| Failure {
            error,
            delivered: false,
        };
        let (body, _) = self
            .send(&request, ctx, &AuthHeaders::None)
            .await
            .map_err(|f| not_delivered(f.error))?;
        parse_data(&body, ctx).map_err(not_delivered)
    }

    /// Sends to the preferred endpoint, moving on to the next ones while they are unreachable.
    /// Returns the body and the endpoint that answered.
    async fn send(
        &self,
        request: &ApiRequest,
        ctx: &CallContext,
        auth: &AuthHeaders,
    ) -> Result<(Vec<u8>, Url), Failure> {
        let endpoints = &self.inner.endpoints;
        let start = self.inner.preferred.load(Ordering::Relaxed);
        let mut last_failure = None;
        for offset in 0..endpoints.len() {
            let index = (start + offset) % endpoints.len();
            match self.send_to(&endpoints[index], request, ctx, auth).await {
                Err(failure) if failure.unreachable() => {
                    tracing::warn!(
                        cluster = %ctx.cluster, endpoint = %endpoints[index], error = %failure.error,
                        "proxmox endpoint unreachable"
                    );
                    last_failure = Some(failure);
                }
                result => {
                    self.inner.preferred.store(index, Ordering::Relaxed);
                    return result.map(|body| (body, endpoints[index].clone()));
                }
            }
        }
        Err(last_failure.unwrap_or_else(|| Failure {
            error: ctx.transient("no API endpoint configured".to_owned()),
            delivered: false,
        }))
    }

    async fn send_to(
        &self,
        endpoint: &Url,
        request: &ApiRequest,
        ctx: &CallContext,
        auth: &AuthHeaders,
    ) -> Result<Vec<u8>, Failure> {
        let url = api_url(endpoint, &request.segments);
        let builder = self.inner.http.request(request.method.clone(), url);
        // pveproxy reads parameters of GET and DELETE from the query, others from the body.
        let builder = if request.method == Method::GET || request.method == Method::DELETE {
            builder.query(&request.params)
        } else {
            builder.form(&request.params)
        };
        let response = auth
            .apply(builder, &request.method)
            .send()
            .await
            .map_err(|e| transport_failure(ctx, &e))?;
        let status = response.status();
        let body = read_body(response).await.map_err(|message| Failure {
            error: ctx.transient(message),
            delivered: true,
        })?;
        tracing::debug!(cluster = %ctx.cluster, call = %ctx.call, status = status.as_u16(), "proxmox answered");
        if status.is_success() {
            return Ok(body);
        }
        Err(Failure::definite(error_answer(ctx, status, &body)))
    }
}

fn validate_endpoints(cluster: &str, urls: &[Url]) -> Result<(), SettingsError> {
    if urls.is_empty() {
        return Err(SettingsError::NoEndpoints(cluster.to_owned()));
    }
    // Plain HTTP would send the token in clear; credentials in the URL would end up in logs.
    let bad = urls.iter().find(|url| {
        url.scheme() != "https"
            || url.host().is_none()
            || url.cannot_be_a_base()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
    });
    match bad {
        Some(url) => Err(SettingsError::BadUrl {
            cluster: cluster.to_owned(),
            url: url.clone(),
        }),
        None => Ok(()),
    }
}

fn http_client(
    cluster: &str,
    trust: &TlsTrust,
    request_timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, SettingsError> {
    let tls = tls::client_config(trust).map_err(|source| SettingsError::Tls {
        cluster: cluster.to_owned(),
        source,
    })?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(request_timeout)
        .connect_timeout(connect_timeout)
        // The daemon talks to its hypervisors directly: no environment proxy, and no redirects
        // that would carry the credentials somewhere else.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("porthole/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| SettingsError::Http {
            cluster: cluster.to_owned(),
            source,
        })
}

/// `{endpoint}/api2/json/{segments…}`, each segment percent-encoded as a path segment.
pub(crate) fn api_url(endpoint: &Url, segments: &[String]) -> Url {
    let mut url = endpoint.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty()
            .extend(["api2", "json"])
            .extend(segments);
    }
    url
}

async fn read_body(mut response: Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `data` member of a successful answer.
fn parse_data<T: DeserializeOwned>(body: &[u8], ctx: &CallContext) -> Result<T, ProxmoxError> {
    let mut envelope: Value = serde_json::from_slice(body)
        .map_err(|e| ctx.invalid_response(format!("body is not JSON: {e}")))?;
    let data = envelope
        .get_mut("data")
        .map(Value::take)
        .unwrap_or(Value::Null);
    serde_json::from_value(data).map_err(|e| ctx.invalid_response(format!("unexpected data: {e}")))
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Option<BTreeMap<String, Value>>,
}

/// Turns an HTTP error answer into an error carrying pveproxy's message and parameter errors.
fn error_answer(ctx: &CallContext, status: reqwest::StatusCode, body: &[u8]) -> ProxmoxError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = parsed
        .message
        .map(|m| m.trim_end().to_owned())
        .filter(|m| !m.is_empty())
        .or_else(|| status.canonical_reason().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
    let errors = parsed
        .errors
        .unwrap_or_default()
        .into_iter()
        .map(|(param, complaint)| {
            let text = match complaint {
                Value::String(s) => s.trim_end().to_owned(),
                other => other.to_string(),
            };
            (param, text)
        })
        .collect();
    ctx.http_error(status.as_u16(), message, errors)
}

/// Classifies a failure below HTTP: TLS refusals are final; anything else is transient, and
/// was certainly not delivered if the connection was never established.
fn transport_failure(ctx: &CallContext, error: &reqwest::Error) -> Failure {
    if let Some(failure) = tls_failure(error) {
        return Failure {
            error: ctx.tls(failure),
            delivered: false,
        };
    }
    if error.is_builder() {
        return Failure {
            error: ctx.invalid_request(error_chain(error)),
            delivered: false,
        };
    }
    Failure {
        error: ctx.transient(error_chain(error)),
        delivered: !error.is_connect(),
    }
}

/// Describes the TLS failure behind `error`, if a rustls error is somewhere in its chain.
fn tls_failure(error: &(dyn StdError + 'static)) -> Option<TlsFailure> {
    let rustls_error = find_rustls_error(error)?;
    Some(match tls::fingerprint_mismatch(rustls_error) {
        Some(mismatch) => TlsFailure::FingerprintMismatch {
            actual: tls::format_fingerprint(&mismatch.actual),
        },
        None => TlsFailure::Handshake(rustls_error.to_string()),
    })
}

/// `io::Error` does not report its payload as `source()`, and hyper nests one `io::Error` in
/// another, so payloads are searched as well as sources.
fn find_rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(found) = error.downcast_ref::<rustls::Error>() {
        return Some(found);
    }
    let payload = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref());
    if let Some(found) = payload.and_then(|inner| find_rustls_error(inner)) {
        return Some(found);
    }
    error.source().and_then(find_rustls_error)
}

/// "error sending request: client error (Connect): connection refused" — the whole chain,
/// since reqwest's top-level message alone rarely says what went wrong.
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

fn with_attempts(error: ProxmoxError, attempts: u32) -> ProxmoxError {
    match error {
        ProxmoxError::Transient {
            cluster,
            call,
            message,
            ..
        } => ProxmoxError::Transient {
            cluster,
            call,
            message,
            attempts,
        },
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_names_its_variable_parts_and_keeps_the_rest() {
        let clone = ApiRequest::new(Method::POST, ["nodes", "pve1", "qemu", "100", "clone"]);
        assert_eq!(clone.endpoint(), "POST nodes/{node}/qemu/{vmid}/clone");
        let task = ApiRequest::new(
            Method::GET,
            ["nodes", "pve2", "tasks", "UPID:pve2:0001:abc:", "status"],
        );
        assert_eq!(task.endpoint(), "GET nodes/{node}/tasks/{upid}/status");
        let version = ApiRequest::new(Method::GET, ["version"]);
        assert_eq!(version.endpoint(), "GET version");
    }

    fn ctx() -> CallContext {
        CallContext {
            cluster: "lab".into(),
            call: "GET version".into(),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for (failed, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (9, 1000)] {
            let delay = policy.backoff(failed);
            let full = Duration::from_millis(full);
            assert!(delay >= full / 2 && delay <= full, "{failed}: {delay:?}");
        }
    }

    #[test]
    fn api_url_appends_encoded_segments_below_api2_json() {
        let base = Url::parse("https://pve1:8006/").unwrap();
        let upid = "UPID:pve1:0001:0002:0003:qmclone:9000:porthole@pve!daemon:";
        let url = api_url(
            &base,
            &["nodes".into(), "pve1".into(), "tasks".into(), upid.into()],
        );
        assert_eq!(
            url.as_str(),
            format!("https://pve1:8006/api2/json/nodes/pve1/tasks/{upid}")
        );
        let prefixed = Url::parse("https://proxy.example/pve/").unwrap();
        let url = api_url(&prefixed, &["a/b".into()]);
        assert_eq!(url.as_str(), "https://proxy.example/pve/api2/json/a%2Fb");
    }

    #[test]
    fn error_answer_reads_pveproxy_message_and_parameter_errors() {
        let body = br#"{"data":null,"message":"Parameter verification failed.\n","errors":{"cores":"value must have a minimum value of 1\n"}}"#;
        match error_answer(&ctx(), reqwest::StatusCode::BAD_REQUEST, body) {
            ProxmoxError::InvalidParameters {
                message, errors, ..
            } => {
                assert_eq!(message, "Parameter verification failed.");
                assert_eq!(errors["cores"], "value must have a minimum value of 1");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn error_answer_without_body_uses_the_status_reason() {
        let err = error_answer(&ctx(), reqwest::StatusCode::SERVICE_UNAVAILABLE, b"");
        assert!(
            matches!(err, ProxmoxError::Transient { ref message, .. } if message.contains("Service Unavailable"))
        );
    }

    #[test]
    fn settings_refuse_plain_http_and_urls_with_credentials() {
        let ok = Url::parse("https://pve1:8006/").unwrap();
        assert!(validate_endpoints("lab", std::slice::from_ref(&ok)).is_ok());
        for bad in [
            "http://pve1:8006/",
            "https://root:pw@pve1:8006/",
            "https://pve1:8006/?x=1",
        ] {
            let url = Url::parse(bad).unwrap();
            assert!(
                validate_endpoints("lab", &[ok.clone(), url]).is_err(),
                "{bad}"
            );
        }
        assert!(validate_endpoints("lab", &[]).is_err());
    }

    #[test]
    fn only_transient_failures_are_retried_and_unsafe_calls_only_if_undelivered() {
        let sent = Failure {
            error: ctx().transient("timeout".into()),
            delivered: true,
        };
        assert!(sent.may_retry(Repeat::Safe));
        assert!(!sent.may_retry(Repeat::Unsafe));
        let refused = Failure {
            error: ctx().transient("connection refused".into()),
            delivered: false,
        };
        assert!(refused.may_retry(Repeat::Unsafe));
        let locked =
            Failure::definite(ctx().http_error(500, "VM 1 is locked".into(), BTreeMap::new()));
        assert!(!locked.may_retry(Repeat::Safe));
    }
}
