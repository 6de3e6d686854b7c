//! Cloudflare API v4 calls: bearer-token auth and the `{success, errors, messages, result}`
//! envelope, shared by the DNS and tunnel plugins.

use crate::http::{HttpClient, Method, Request, TransportError};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// Where the real API lives; the `api_base` setting points plugins at the simulator instead.
pub const DEFAULT_API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// Pages of `per_page=100` followed at most this far, so a lying `result_info` cannot loop us.
const MAX_PAGES: u32 = 50;

/// One entry of the envelope's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiMessage {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// Why a Cloudflare call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudflareError {
    Transport(TransportError),
    /// The API answered `success: false` (or a non-2xx status).
    Api {
        status: u16,
        errors: Vec<ApiMessage>,
    },
    /// The answer was not the envelope, or `result` was not the expected shape.
    Protocol(String),
}

impl CloudflareError {
    /// Whether the API reported this Cloudflare error code.
    pub fn has_code(&self, code: i64) -> bool {
        matches!(self, CloudflareError::Api { errors, .. } if errors.iter().any(|e| e.code == code))
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            CloudflareError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for CloudflareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloudflareError::Transport(err) => write!(f, "{err}"),
            CloudflareError::Api { status, errors } => {
                write!(f, "Cloudflare API error (HTTP {status})")?;
                for error in errors {
                    write!(f, "; {} {}", error.code, error.message)?;
                }
                Ok(())
            }
            CloudflareError::Protocol(message) => {
                write!(f, "unexpected Cloudflare answer: {message}")
            }
        }
    }
}

impl std::error::Error for CloudflareError {}

impl From<TransportError> for CloudflareError {
    fn from(err: TransportError) -> Self {
        CloudflareError::Transport(err)
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    total_pages: Option<u32>,
}

/// A Cloudflare API client over any [`HttpClient`].
pub struct Cloudflare<'a, H: HttpClient> {
    http: &'a H,
    base: String,
    token: String,
}

impl<'a, H: HttpClient> Cloudflare<'a, H> {
    /// `base` like [`DEFAULT_API_BASE`]; a trailing slash is ignored.
    pub fn new(http: &'a H, base: &str, token: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// Calls `path` (starting with `/`) and returns the envelope's `result`.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CloudflareError> {
        Ok(self.call_envelope(method, path, body)?.result)
    }

    /// Deserializes the `result` of a call into `T`.
    pub fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, CloudflareError> {
        let result = self.call(method, path, body)?;
        serde_json::from_value(result)
            .map_err(|err| CloudflareError::Protocol(format!("{method} {path}: {err}")))
    }

    /// Every item of a paginated list (`path` already has its own query, or none).
    pub fn list<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Vec<T>, CloudflareError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let paged = format!("{path}{separator}per_page=100&page={page}");
            let envelope = self.call_envelope(Method::Get, &paged, None)?;
            let batch: Vec<T> = serde_json::from_value(envelope.result)
                .map_err(|err| CloudflareError::Protocol(format!("GET {path}: {err}")))?;
            let total_pages = envelope.result_info.and_then(|info| info.total_pages);
            let done = batch.is_empty() || total_pages.is_none_or(|total| page >= total);
            items.extend(batch);
            if done {
                break;
            }
        }
        Ok(items)
    }

    fn call_envelope(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Envelope, CloudflareError> {
        let mut request = Request::new(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.http.send(request)?;
        let envelope: Envelope = serde_json::from_slice(&response.body).map_err(|err| {
            CloudflareError::Protocol(format!(
                "{method} {path}: HTTP {} with a body that is not the API envelope ({err}): {}",
                response.status,
                response.snippet()
            ))
        })?;
        if !envelope.success || !response.is_success() {
            return Err(CloudflareError::Api {
                status: response.status,
                errors: envelope.errors,
            });
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScriptedHttp;
    use serde_json::json;

    #[test]
    fn sends_the_bearer_token_and_returns_the_result() {
        let http = ScriptedHttp::new().reply(
            200,
            json!({"success": true, "errors": [], "messages": [], "result": {"id": "z1"}}),
        );
        let api = Cloudflare::new(&http, "https://cf.test/client/v4/", "tok");
        let result = api.call(Method::Get, "/zones/z1", None).unwrap();
        assert_eq!(result["id"], "z1");
        let sent = http.sent();
        assert_eq!(sent[0].url, "https://cf.test/client/v4/zones/z1");
        assert!(
            sent[0]
                .headers
                .contains(&("Authorization".into(), "Bearer tok".into()))
        );
    }

    #[test]
    fn reports_api_errors_with_their_codes() {
        let http = ScriptedHttp::new().reply(403, json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}], "messages": [], "result": null}));
        let api = Cloudflare::new(&http, DEFAULT_API_BASE, "bad");
        let err = api.call(Method::Get, "/zones", None).unwrap_err();
        assert!(err.has_code(10000));
        assert_eq!(err.status(), Some(403));
        assert!(err.to_string().contains("Authentication error"));
    }

    #[test]
    fn a_non_envelope_answer_is_a_protocol_error() {
        let http = ScriptedHttp::new().reply_raw(502, b"<html>bad gateway</html>".to_vec());
        let api = Cloudflare::new(&http, DEFAULT_API_BASE, "tok");
        let err = api.call(Method::Get, "/zones", None).unwrap_err();
        assert!(matches!(err, CloudflareError::Protocol(m) if m.contains("bad gateway")));
    }

    #[test]
    fn lists_follow_pages() {
        let page = |n: u32, items: Value| json!({"success": true, "errors": [], "messages": [], "result": items, "result_info": {"page": n, "total_pages": 2}});
        let http = ScriptedHttp::new()
            .reply(200, page(1, json!([1, 2])))
            .reply(200, page(2, json!([3])));
        let api = Cloudflare::new(&http, DEFAULT_API_BASE, "tok");
        let items: Vec<u32> = api.list("/zones/z/dns_records?type=A").unwrap();
        assert_eq!(items, vec![1, 2, 3]);
        assert!(http.lines()[1].ends_with("?type=A&per_page=100&page=2"));
    }
}
