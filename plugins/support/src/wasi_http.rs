//! [`HttpClient`] over `wasi:http/outgoing-handler`: the only way out of the sandbox, and only
//! to the hosts the plugin's manifest lists (the host refuses the rest before any I/O).

use crate::http::{HttpClient, MAX_BODY, Method, Request, Response, TransportError, split_url};
use std::io::{Read as _, Write as _};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingResponse, Method as WasiMethod, OutgoingBody, OutgoingRequest, Scheme,
};

/// The host's `wasi:http`; holds nothing, so one per call is free.
#[derive(Debug, Default, Clone, Copy)]
pub struct WasiHttp;

impl HttpClient for WasiHttp {
    fn send(&self, request: Request) -> Result<Response, TransportError> {
        let outgoing = outgoing_request(&request)?;
        let body = outgoing
            .body()
            .map_err(|()| TransportError("request body already taken".into()))?;
        let future = outgoing_handler::handle(outgoing, None)
            .map_err(|code| TransportError(format!("refused: {code:?}")))?;
        write_body(body, request.body.as_deref().unwrap_or_default())?;
        future.subscribe().block();
        let incoming = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(TransportError(format!("{code:?}"))),
            Some(Err(())) | None => {
                return Err(TransportError("response future was not ready".into()));
            }
        };
        read_response(&incoming)
    }
}

fn outgoing_request(request: &Request) -> Result<OutgoingRequest, TransportError> {
    let parts = split_url(&request.url)?;
    let entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone().into_bytes()))
        .collect();
    let headers = Fields::from_list(&entries)
        .map_err(|err| TransportError(format!("bad request header: {err:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let scheme = if parts.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    // Each setter fails only on a syntactically invalid value.
    let invalid = |what: &str| TransportError(format!("invalid {what} in {}", request.url));
    outgoing
        .set_method(&wasi_method(request.method))
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(parts.authority))
        .map_err(|()| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(parts.path_and_query))
        .map_err(|()| invalid("path"))?;
    Ok(outgoing)
}

fn wasi_method(method: Method) -> WasiMethod {
    match method {
        Method::Get => WasiMethod::Get,
        Method::Post => WasiMethod::Post,
        Method::Put => WasiMethod::Put,
        Method::Patch => WasiMethod::Patch,
        Method::Delete => WasiMethod::Delete,
    }
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), TransportError> {
    {
        // The stream must be dropped before the body is finished.
        let mut stream = body
            .write()
            .map_err(|()| TransportError("request body stream already taken".into()))?;
        stream
            .write_all(bytes)
            .and_then(|()| std::io::Write::flush(&mut stream))
            .map_err(|err| TransportError(format!("writing the request body: {err}")))?;
    }
    OutgoingBody::finish(body, None)
        .map_err(|code| TransportError(format!("finishing the request body: {code:?}")))
}

fn read_response(incoming: &IncomingResponse) -> Result<Response, TransportError> {
    let status = incoming.status();
    let body = incoming
        .consume()
        .map_err(|()| TransportError("response body already taken".into()))?;
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| TransportError("response stream already taken".into()))?;
        let limit = u64::try_from(MAX_BODY + 1).unwrap_or(u64::MAX);
        stream
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|err| TransportError(format!("reading the response body: {err}")))?;
    }
    if bytes.len() > MAX_BODY {
        return Err(TransportError(format!(
            "response body larger than {MAX_BODY} bytes"
        )));
    }
    Ok(Response {
        status,
        body: bytes,
    })
}
