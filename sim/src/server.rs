//! The HTTPS API server: TLS accept, then pveproxy's request pipeline — faults, routing (501),
//! authentication (401, delayed), proxying to the node (500/595), parameter validation (400),
//! the endpoint — and an answer in pveproxy's shape, recorded for the control API.

use crate::auth::Credentials;
use crate::endpoints::{self, Call};
use crate::error::ApiError;
use crate::faults::FaultKind;
use crate::state::{RecordedRequest, SimState};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

const API_PREFIX: &str = "/api2/json";
/// pveproxy refuses request bodies over 64 KiB.
const MAX_BODY: usize = 64 * 1024;

/// The connection is closed without an answer (the `drop` fault).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub struct Dropped;

pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    state: Arc<SimState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => { tracing::warn!(%err, "accept failed"); continue; }
            },
            _ = shutdown.changed() => return,
        };
        let (tls, state, mut shutdown) = (tls.clone(), state.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = serve_connection(stream, tls, state) => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, tls: TlsAcceptor, state: Arc<SimState>) {
    // pveproxy's console WebSockets are interactive; small messages go out at once.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "cannot set TCP_NODELAY");
    }
    let stream = match tls.accept(stream).await {
        Ok(stream) => stream,
        Err(err) => return tracing::debug!(%err, "TLS handshake failed"),
    };
    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
    if let Err(err) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
    {
        tracing::debug!(%err, "connection ended with an error");
    }
}

async fn handle(
    state: Arc<SimState>,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let api_path = path.strip_prefix(API_PREFIX).unwrap_or(&path).to_owned();
    let credentials = Credentials::from_headers(req.headers());
    let mut record = RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        params: BTreeMap::new(),
        auth: credentials.kind(),
        status: 0,
    };
    match state.take_fault(&method, &api_path, false) {
        Some(FaultKind::Drop {}) => {
            state.record(record);
            return Err(Dropped);
        }
        Some(FaultKind::Latency { ms }) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await
        }
        Some(FaultKind::Status { code, message }) => {
            let err = ApiError::new(code, message);
            record.status = err.status;
            state.record(record);
            return Ok(error_response(&err));
        }
        _ => {}
    }
    // pveproxy checks the WebSocket handshake headers before it runs the API call.
    let websocket = if api_path.ends_with("/vncwebsocket") {
        match crate::console::WebSocketRequest::from_request(&mut req) {
            Ok(websocket) => websocket,
            Err(err) => {
                record.status = err.status;
                state.record(record);
                return Ok(error_response(&err));
            }
        }
    } else {
        None
    };
    let request = ApiRequest {
        method,
        path,
        api_path,
        credentials,
        req,
    };
    let (result, params) = process(&state, request).await;
    if matches!(&result, Err(err) if err.status == 401) {
        tokio::time::sleep(state.config.auth_failure_delay).await;
    }
    let response = match (&result, websocket) {
        (Ok(_), Some(websocket)) => crate::console::switch_protocols(&state, &params, websocket)
            .unwrap_or_else(|err| error_response(&err)),
        (Ok(data), None) => json_response(200, None, &serde_json::json!({ "data": data })),
        (Err(err), _) => error_response(err),
    };
    record.params = params;
    record.status = response.status().as_u16();
    state.record(record);
    Ok(response)
}

struct ApiRequest {
    method: String,
    path: String,
    api_path: String,
    credentials: Credentials,
    req: Request<Incoming>,
}

/// The pipeline after faults. Returns the parameters too, for the request record.
async fn process(
    state: &Arc<SimState>,
    incoming: ApiRequest,
) -> (Result<Value, ApiError>, BTreeMap<String, String>) {
    let ApiRequest {
        method,
        path,
        api_path,
        credentials,
        req,
    } = incoming;
    let Some(route) = (if path.starts_with(API_PREFIX) {
        state.schema.route(&method, &api_path)
    } else {
        None
    }) else {
        return (
            Err(ApiError::not_implemented(&method, &path)),
            BTreeMap::new(),
        );
    };
    let mut params = match read_params(req).await {
        Ok(params) => params,
        Err(err) => return (Err(err), BTreeMap::new()),
    };
    if let Err(err) = merge_path_params(&mut params, &route.path_params) {
        return (Err(err), params);
    }
    let identity = if route.method.world {
        None
    } else {
        let write = method != "GET";
        match state.accounts.authenticate(
            &credentials,
            route.method.allow_token,
            write,
            state.now(),
        ) {
            Ok(identity) => Some(identity),
            Err(err) => return (Err(err), params),
        }
    };
    if let Err(err) = check_proxy_target(state, route.method.proxy_to.as_deref(), &params) {
        return (Err(err), params);
    }
    if let Err(errors) = route.method.validate(&params) {
        return (Err(ApiError::params(errors)), params);
    }
    let call = Call {
        state,
        method: &method,
        api_path: &api_path,
        params: &params,
        identity,
    };
    let result = endpoints::dispatch(route.template, call);
    (result, params)
}

/// pveproxy forwards `proxyto` calls to the named node before the handler runs there: an unknown
/// name fails the address lookup, an offline node the connection.
fn check_proxy_target(
    state: &SimState,
    proxy_to: Option<&str>,
    params: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let Some(node) = proxy_to.and_then(|p| params.get(p)) else {
        return Ok(());
    };
    let cluster = crate::state::lock(&state.cluster);
    match cluster.node(node) {
        None => Err(ApiError::internal(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
        ))),
        Some(n) if !n.online => Err(ApiError::new(595, "No route to host")),
        Some(_) => Ok(()),
    }
}

/// Adds the parameters the path defines; one also given in the query or body with another value
/// is refused, as pveproxy refuses it.
fn merge_path_params(
    params: &mut BTreeMap<String, String>,
    path_params: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let conflicting: BTreeMap<String, String> = path_params
        .iter()
        .filter(|(name, value)| params.get(*name).is_some_and(|given| given != *value))
        .map(|(name, _)| {
            let why = "duplicate parameter (already defined in URI) with conflicting values!";
            (name.clone(), why.to_owned())
        })
        .collect();
    if !conflicting.is_empty() {
        return Err(ApiError::params(conflicting));
    }
    params.extend(path_params.clone());
    Ok(())
}

/// Query string, then the body (form-encoded or JSON) on top, as pveproxy merges them.
async fn read_params(req: Request<Incoming>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut params: BTreeMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let is_json = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| ApiError::new(413, "request entity too large"))?
        .to_bytes();
    if body.is_empty() {
        return Ok(params);
    }
    if is_json {
        params.extend(json_params(&body)?);
    } else {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    Ok(params)
}

/// A JSON body's scalars as the strings a form would carry; booleans become 1/0.
fn json_params(body: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::new(400, format!("JSON decode error: {err}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::new(400, "JSON body must be an object"));
    };
    let mut params = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for (key, value) in map {
        match value {
            Value::String(s) => drop(params.insert(key, s)),
            Value::Number(n) => drop(params.insert(key, n.to_string())),
            Value::Bool(b) => drop(params.insert(key, if b { "1" } else { "0" }.to_owned())),
            Value::Null => {}
            other => drop(errors.insert(
                key,
                format!("type check ('string') failed - got {}", perl_ref(&other)),
            )),
        }
    }
    if errors.is_empty() {
        Ok(params)
    } else {
        Err(ApiError::params(errors))
    }
}

fn perl_ref(value: &Value) -> &'static str {
    if value.is_array() { "ARRAY" } else { "HASH" }
}

fn error_response(err: &ApiError) -> Response<Full<Bytes>> {
    json_response(err.status, Some(&err.message), &err.body())
}

/// pveproxy puts the error message in the HTTP reason phrase.
fn json_response(status: u16, reason: Option<&str>, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Some(phrase) = reason.and_then(reason_phrase) {
        response.extensions_mut().insert(phrase);
    }
    response
}

/// A reason phrase may hold only visible characters and spaces; PVE's messages are one line.
fn reason_phrase(message: &str) -> Option<hyper::ext::ReasonPhrase> {
    let line = message.lines().next().unwrap_or_default();
    let clean: String = line
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    hyper::ext::ReasonPhrase::try_from(clean.into_bytes()).ok()
}
