//! A DNS provider that fetches whatever URL it is given: `upsert-record` GETs the TXT record's
//! content and answers `<status>:<first bytes of the body>`, or an `upstream` error naming the
//! wasi:http error code. The egress tests point it at listed, unlisted and forbidden addresses.

wit_bindgen::generate!({ path: "../../../wit", world: "dns-provider", generate_all });

use exports::porthole::plugin::dns::{DnsRecord, Guest, PluginError, RecordId, StoredRecord};
use porthole::plugin::types::ErrorKind;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, OutgoingRequest, Scheme};

struct Plugin;

fn fail(message: String) -> PluginError {
    PluginError {
        kind: ErrorKind::Upstream,
        message,
    }
}

fn fetch(url: &str) -> Result<String, PluginError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| fail("no scheme".into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let pending = outgoing_handler::handle(request, None).map_err(|e| fail(format!("{e:?}")))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(fail(format!("{code:?}"))),
        other => return Err(fail(format!("no response: {}", other.is_some()))),
    };
    let status = response.status();
    let body = response.consume().map_err(|()| fail("no body".into()))?;
    let stream = body.stream().map_err(|()| fail("no stream".into()))?;
    let mut bytes = Vec::new();
    while bytes.len() < 64 {
        match stream.blocking_read(64) {
            Ok(chunk) if chunk.is_empty() => break,
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(_) => break,
        }
    }
    bytes.truncate(64);
    Ok(format!("{status}:{}", String::from_utf8_lossy(&bytes)))
}

impl Guest for Plugin {
    fn upsert_record(_zone: String, entry: DnsRecord) -> Result<RecordId, PluginError> {
        fetch(&entry.content)
    }

    fn delete_record(_zone: String, _id: RecordId) -> Result<(), PluginError> {
        Ok(())
    }

    fn list_records(_zone: String) -> Result<Vec<StoredRecord>, PluginError> {
        Ok(Vec::new())
    }
}

export!(Plugin);
