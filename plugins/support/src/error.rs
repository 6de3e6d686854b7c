//! The error a plugin reports, mirroring the WIT `plugin-error`: a kind that decides whether
//! Porthole retries, and a message for the operator (never a secret).

use crate::cloud_config::InvalidContext;
use crate::cloudflare::CloudflareError;
use crate::dns_name::NameError;
use crate::http::TransportError;
use std::fmt;

/// Mirrors the WIT `error-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidInput,
    NotFound,
    Unauthorized,
    Conflict,
    RateLimited,
    Upstream,
    Internal,
}

/// A failure with its kind and an operator-facing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: String,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// A required setting the operator did not configure.
    pub fn missing_setting(key: &str) -> Self {
        Self::invalid(format!("the plugin setting `{key}` is not set"))
    }

    /// The kind an HTTP status implies, for providers without finer error codes.
    pub fn from_status(status: u16, message: impl Into<String>) -> Self {
        let kind = match status {
            401 | 403 => ErrorKind::Unauthorized,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            429 => ErrorKind::RateLimited,
            400..=499 => ErrorKind::InvalidInput,
            _ => ErrorKind::Upstream,
        };
        Self::new(kind, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<TransportError> for PluginError {
    fn from(err: TransportError) -> Self {
        Self::new(ErrorKind::Upstream, err.to_string())
    }
}

impl From<NameError> for PluginError {
    fn from(err: NameError) -> Self {
        Self::invalid(err.0)
    }
}

impl From<InvalidContext> for PluginError {
    fn from(err: InvalidContext) -> Self {
        Self::invalid(err.to_string())
    }
}

/// Cloudflare's authentication errors (10000, 9109) can come with 400 as well as 401/403.
const CLOUDFLARE_AUTH_CODES: [i64; 3] = [10000, 9106, 9109];

impl From<CloudflareError> for PluginError {
    fn from(err: CloudflareError) -> Self {
        let message = err.to_string();
        match &err {
            CloudflareError::Transport(_) => Self::new(ErrorKind::Upstream, message),
            CloudflareError::Protocol(_) => Self::new(ErrorKind::Upstream, message),
            CloudflareError::Api { status, .. } => {
                if CLOUDFLARE_AUTH_CODES.iter().any(|code| err.has_code(*code)) {
                    Self::new(ErrorKind::Unauthorized, message)
                } else {
                    Self::from_status(*status, message)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudflare::ApiMessage;

    #[test]
    fn statuses_map_to_retry_kinds() {
        assert_eq!(
            PluginError::from_status(429, "").kind,
            ErrorKind::RateLimited
        );
        assert_eq!(PluginError::from_status(503, "").kind, ErrorKind::Upstream);
        assert_eq!(
            PluginError::from_status(422, "").kind,
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn cloudflare_auth_codes_are_unauthorized_whatever_the_status() {
        let err = CloudflareError::Api {
            status: 400,
            errors: vec![ApiMessage {
                code: 9109,
                message: "Invalid access token".into(),
            }],
        };
        assert_eq!(PluginError::from(err).kind, ErrorKind::Unauthorized);
    }
}
