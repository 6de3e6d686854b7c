//! Outbound HTTP across the runner's channel. In the runner, [`send`] gathers the guest's request
//! and relays it; in the daemon, [`serve`] sends it through the same hooks an in-process plugin
//! uses (allow-list, per-call cap, address checks, response budget) and returns the response
//! whole. A runner can therefore reach nothing the policy would refuse: it has no socket at all.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::{EgressHooks, MAX_RESPONSE_BYTES_PER_CALL};
use crate::isolation::protocol::{HostReply, HostRequest, HttpFailure, HttpRequest, HttpResponse};
use crate::isolation::runner::Relay;

/// The largest request body a runner relays: what fits in one frame with room to spare.
const MAX_RELAYED_BODY: usize = 8 * 1024 * 1024;

type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

/// In the runner: waits for the guest to finish the body, relays the request, and hands the
/// guest the daemon's response.
pub(super) async fn send(
    relay: Relay,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)> {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_RELAYED_BODY)
        .collect()
        .await
        .map_err(|_| HttpError::HttpRequestBodySize(Some(MAX_RELAYED_BODY as u64)))?
        .to_bytes();
    let millis = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    let options = options.unwrap_or_default();
    let relayed = HttpRequest {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: header_pairs(&parts.headers),
        body: body.to_vec(),
        connect_timeout_ms: millis(options.connect_timeout),
        first_byte_timeout_ms: millis(options.first_byte_timeout),
    };
    let response = match relay.ask(HostRequest::Http(relayed)).await {
        Some(HostReply::Http(Ok(response))) => response,
        Some(HostReply::Http(Err(failure))) => return Err(to_error(failure)),
        _ => {
            return Err(HttpError::InternalError(Some(
                "the daemon did not answer".into(),
            )));
        }
    };
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    let body = Full::new(Bytes::from(response.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let response = builder
        .body(body)
        .map_err(|_| HttpError::HttpProtocolError)?;
    Ok((response, Box::new(async { Ok(()) })))
}

/// In the daemon: sends a runner's request through `hooks`, the call's own egress state.
pub async fn serve(hooks: &Mutex<EgressHooks>, request: HttpRequest) -> HostReply {
    HostReply::Http(send_relayed(hooks, request).await)
}

async fn send_relayed(
    hooks: &Mutex<EgressHooks>,
    request: HttpRequest,
) -> Result<HttpResponse, HttpFailure> {
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.uri.as_str());
    // The runner's own filter is not trusted: `Host`, `Cookie`, hop-by-hop headers and the like
    // are dropped here again, so the request goes to the checked origin and nothing else.
    for (name, value) in &request.headers {
        if !super::policy::is_forbidden_request_header(name) {
            builder = builder.header(name.as_str(), value.as_slice());
        }
    }
    let body = Full::new(Bytes::from(request.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let request_parts = builder.body(body).map_err(|err| HttpFailure::Other {
        detail: format!("a malformed request: {err}"),
    })?;
    let options = RequestOptions {
        connect_timeout: request.connect_timeout_ms.map(Duration::from_millis),
        first_byte_timeout: request.first_byte_timeout_ms.map(Duration::from_millis),
        ..RequestOptions::default()
    };
    let sending = {
        let mut hooks = hooks.lock().map_err(|_| HttpFailure::Other {
            detail: "the call's egress state is unusable".into(),
        })?;
        Box::into_pin(hooks.send_request(request_parts, Some(options), Box::new(async { Ok(()) })))
    };
    let (response, _io) = sending.await.map_err(|err| from_error(&err))?;
    let (parts, body) = response.into_parts();
    // The body is already capped by the call's response budget; this only bounds one frame.
    let body = Limited::new(body, MAX_RESPONSE_BYTES_PER_CALL as usize)
        .collect()
        .await
        .map_err(|err| match err.downcast::<HttpError>() {
            Ok(err) => from_error(&err),
            Err(_) => HttpFailure::ResponseTooLarge {
                limit: Some(MAX_RESPONSE_BYTES_PER_CALL),
            },
        })?
        .to_bytes();
    Ok(HttpResponse {
        status: parts.status.as_u16(),
        headers: header_pairs(&parts.headers),
        body: body.to_vec(),
    })
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect()
}

fn from_error(error: &HttpError) -> HttpFailure {
    match error {
        HttpError::HttpRequestDenied => HttpFailure::Denied,
        HttpError::DestinationIpProhibited => HttpFailure::DestinationIpProhibited,
        HttpError::DestinationNotFound => HttpFailure::DestinationNotFound,
        HttpError::DnsTimeout => HttpFailure::DnsTimeout,
        HttpError::DnsError { .. } => HttpFailure::DnsError,
        HttpError::ConnectionRefused => HttpFailure::ConnectionRefused,
        HttpError::ConnectionTimeout => HttpFailure::ConnectionTimeout,
        HttpError::ConnectionReadTimeout => HttpFailure::ConnectionReadTimeout,
        HttpError::HttpResponseBodySize(limit) => HttpFailure::ResponseTooLarge { limit: *limit },
        HttpError::Tls(_) | HttpError::TlsCertificateError | HttpError::TlsProtocolError => {
            HttpFailure::Tls
        }
        HttpError::Connect(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            HttpFailure::ConnectionRefused
        }
        other => HttpFailure::Other {
            detail: other.to_string(),
        },
    }
}

fn to_error(failure: HttpFailure) -> HttpError {
    match failure {
        HttpFailure::Denied => HttpError::HttpRequestDenied,
        HttpFailure::DestinationIpProhibited => HttpError::DestinationIpProhibited,
        HttpFailure::DestinationNotFound => HttpError::DestinationNotFound,
        HttpFailure::DnsTimeout => HttpError::DnsTimeout,
        HttpFailure::DnsError => HttpError::DnsError {
            rcode: None,
            info_code: None,
        },
        HttpFailure::ConnectionRefused => HttpError::ConnectionRefused,
        HttpFailure::ConnectionTimeout => HttpError::ConnectionTimeout,
        HttpFailure::ConnectionReadTimeout => HttpError::ConnectionReadTimeout,
        HttpFailure::ResponseTooLarge { limit } => HttpError::HttpResponseBodySize(limit),
        HttpFailure::Tls => HttpError::TlsProtocolError,
        HttpFailure::Other { detail } => HttpError::InternalError(Some(detail)),
    }
}
