//! The one error type every PVE endpoint returns, shaped like pveproxy's answers.

use std::collections::BTreeMap;

/// A failed API call: HTTP status, the message pveproxy puts in the reason phrase and body, and
/// per-parameter errors for 400 "Parameter verification failed." answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub errors: BTreeMap<String, String>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            errors: BTreeMap::new(),
        }
    }

    /// HTTP 500, which is what PVE answers for almost every `die` in an API handler.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }

    pub fn params(errors: BTreeMap<String, String>) -> Self {
        Self {
            status: 400,
            message: "Parameter verification failed.".into(),
            errors,
        }
    }

    /// A single parameter error, as PVE's `raise_param_exc({ name => why })`.
    pub fn param(name: &str, why: impl Into<String>) -> Self {
        Self::params(BTreeMap::from([(name.to_owned(), why.into())]))
    }

    pub fn not_implemented(method: &str, path: &str) -> Self {
        Self::new(501, format!("Method '{method} {path}' not implemented"))
    }

    pub fn no_such_vm(node: &str, vmid: u32) -> Self {
        Self::internal(format!(
            "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
        ))
    }

    /// The JSON body pveproxy sends with an error: `data` null, `message` with its trailing
    /// newline, and `errors` only when there are parameter errors.
    pub fn body(&self) -> serde_json::Value {
        let mut body =
            serde_json::json!({ "data": null, "message": format!("{}\n", self.message) });
        if !self.errors.is_empty() {
            body["errors"] = serde_json::json!(self.errors);
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}
