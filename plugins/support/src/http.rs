//! Plain HTTP requests and responses, and the one trait a plugin's logic sends them through,
//! so the logic runs the same over `wasi:http` (in the daemon) and over a script (in unit tests).

use std::fmt;

/// The methods the plugins use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outgoing request with an absolute `https://` or `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// A JSON body, with its content type.
    pub fn json(self, body: &serde_json::Value) -> Self {
        let mut request = self.header("Content-Type", "application/json");
        request.body = Some(body.to_string().into_bytes());
        request
    }

    /// The body as text, for tests and logs.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned()
    }
}

/// A complete response; bodies are small JSON documents, read whole (up to [`MAX_BODY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The largest response body a plugin reads; an API answering more is misbehaving.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text with invalid UTF-8 replaced, for error messages (first 300 bytes).
    pub fn snippet(&self) -> String {
        let end = self.body.len().min(300);
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }
}

/// The request never got an answer: refused by the host's allow-list, DNS, TLS, timeout…
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError(pub String);

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP request failed: {}", self.0)
    }
}

impl std::error::Error for TransportError {}

/// Sends one request and reads the whole response.
pub trait HttpClient {
    fn send(&self, request: Request) -> Result<Response, TransportError>;
}

/// `https://host[:port]` + `/path?query`, split the way `wasi:http` wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts<'a> {
    pub https: bool,
    pub authority: &'a str,
    pub path_and_query: &'a str,
}

/// Splits an absolute http(s) URL. No percent-decoding: the parts go on the wire as they are.
pub fn split_url(url: &str) -> Result<UrlParts<'_>, TransportError> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(TransportError(format!("not an http(s) URL: {url}")));
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(split);
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return Err(TransportError(format!("bad host in URL: {url}")));
    }
    let path_and_query = if path_and_query.is_empty() {
        "/"
    } else {
        path_and_query
    };
    Ok(UrlParts {
        https,
        authority,
        path_and_query,
    })
}

/// Percent-encodes one path segment or query value (RFC 3986 unreserved characters pass).
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls_with_and_without_paths() {
        let parts = split_url("https://api.cloudflare.com/client/v4/zones?name=a").unwrap();
        assert_eq!(
            parts,
            UrlParts {
                https: true,
                authority: "api.cloudflare.com",
                path_and_query: "/client/v4/zones?name=a"
            }
        );
        let parts = split_url("http://127.0.0.1:8081").unwrap();
        assert_eq!(parts.authority, "127.0.0.1:8081");
        assert_eq!(parts.path_and_query, "/");
        assert!(!parts.https);
    }

    #[test]
    fn refuses_other_schemes_and_userinfo() {
        assert!(split_url("ftp://example.com/").is_err());
        assert!(split_url("https://user@example.com/").is_err());
        assert!(split_url("https:///path").is_err());
    }

    #[test]
    fn encodes_reserved_characters() {
        assert_eq!(encode_component("a b/c.d"), "a%20b%2Fc.d");
        assert_eq!(encode_component("é"), "%C3%A9");
    }
}
