//! A small blocking HTTP client over `wasi:http/outgoing-handler`, the sandbox's only way out.
//! Porthole lets a request through only to the origins the plugin's `allowed_hosts` list.

use crate::wasi::http::outgoing_handler;
use crate::wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

/// Responses larger than this are refused rather than read.
const MAX_BODY: usize = 4 * 1024 * 1024;

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends one request with PowerDNS's `X-API-Key` header and a JSON body, and reads the answer.
pub fn send(
    method: &str,
    url: &str,
    api_key: &str,
    body: Option<&str>,
) -> Result<Response, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url} is not an absolute URL"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let headers = Fields::from_list(&[
        ("x-api-key".to_owned(), api_key.as_bytes().to_vec()),
        ("content-type".to_owned(), b"application/json".to_vec()),
        ("accept".to_owned(), b"application/json".to_vec()),
    ])
    .map_err(|e| format!("bad header: {e:?}"))?;
    let request = OutgoingRequest::new(headers);
    let method = match method {
        "GET" => Method::Get,
        "PATCH" => Method::Patch,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_owned()),
    };
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let invalid = |what: &str| format!("invalid {what} in {url}");
    request
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid("host"))?;
    let path = if path.is_empty() { "/" } else { path };
    request
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;

    let outgoing = request
        .body()
        .map_err(|()| "request body taken".to_owned())?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("refused: {e:?}"))?;
    {
        let stream = outgoing
            .write()
            .map_err(|()| "request stream taken".to_owned())?;
        for chunk in body.unwrap_or_default().as_bytes().chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("writing the request: {e:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("finishing the request: {e:?}"))?;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(format!("{code:?}")),
        _ => return Err("no response".to_owned()),
    };
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| "response body taken".to_owned())?;
    let stream = incoming
        .stream()
        .map_err(|()| "response stream taken".to_owned())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend(chunk),
            Err(crate::wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the response: {e:?}")),
        }
        if bytes.len() > MAX_BODY {
            return Err(format!("response larger than {MAX_BODY} bytes"));
        }
    }
    Ok(Response {
        status,
        body: bytes,
    })
}
