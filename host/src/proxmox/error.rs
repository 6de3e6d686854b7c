//! Errors of the Proxmox client, and how pveproxy's answers map onto them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::upid::Upid;

/// Why a TLS connection to a node was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The node presented a certificate whose SHA-256 fingerprint matches no pin: either the
    /// node's certificate was renewed, or something is impersonating it.
    FingerprintMismatch {
        /// Fingerprint actually presented, in Proxmox's `AB:CD:…` form.
        actual: String,
    },
    /// Any other handshake or certificate failure (unknown CA, wrong host name, expired, …).
    Handshake(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FingerprintMismatch { actual } => write!(
                f,
                "certificate fingerprint mismatch: node presented {actual}, which is not pinned"
            ),
            Self::Handshake(message) => f.write_str(message),
        }
    }
}

/// A failed call to Proxmox. Every variant names the cluster and the call
/// (e.g. `GET nodes/pve1/qemu/100/status/current`) and carries Proxmox's own message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxmoxError {
    /// Credentials rejected (HTTP 401): wrong or revoked token, wrong password.
    #[error("{cluster}: {call}: authentication failed: {message}")]
    Unauthorized {
        cluster: String,
        call: String,
        message: String,
    },
    /// Authenticated, but the user or token lacks the privilege (HTTP 403).
    #[error("{cluster}: {call}: permission denied: {message}")]
    Forbidden {
        cluster: String,
        call: String,
        message: String,
    },
    /// The VM, task or other object does not exist.
    #[error("{cluster}: {call}: not found: {message}")]
    NotFound {
        cluster: String,
        call: String,
        message: String,
    },
    /// The VM's config is locked by another operation (clone, backup, migration…): try later.
    #[error("{cluster}: {call}: locked: {message}")]
    Locked {
        cluster: String,
        call: String,
        message: String,
    },
    /// The call clashed with a concurrent change: the VM id it creates was taken since `nextid`,
    /// or the configuration changed since its digest was read. Reading again and retrying may
    /// well succeed; repeating the same call as it is will not.
    #[error("{cluster}: {call}: conflict: {message}")]
    Conflict {
        cluster: String,
        call: String,
        message: String,
    },
    /// The cluster could not be reached or answered with a temporary failure, and retries (if
    /// the call was safe to retry) were used up. The call may or may not have taken effect.
    #[error("{cluster}: {call}: unavailable after {attempts} attempt(s): {message}")]
    Transient {
        cluster: String,
        call: String,
        message: String,
        attempts: u32,
    },
    /// Proxmox rejected parameters (HTTP 400); `errors` maps each parameter to its complaint.
    #[error("{cluster}: {call}: invalid parameters: {message}{}", render_errors(.errors))]
    InvalidParameters {
        cluster: String,
        call: String,
        message: String,
        errors: BTreeMap<String, String>,
    },
    /// The task ran and ended with an exit status other than `OK`.
    #[error("{cluster}: task {upid} failed: {exitstatus}")]
    TaskFailed {
        cluster: String,
        upid: Upid,
        exitstatus: String,
    },
    /// The task was still running at the caller's deadline (it may still finish later).
    #[error("{cluster}: task {upid} still running after {waited:?}")]
    TaskTimeout {
        cluster: String,
        upid: Upid,
        waited: Duration,
    },
    /// The TLS connection was refused; see [`TlsFailure`]. Never retried.
    #[error("{cluster}: {call}: TLS: {failure}")]
    Tls {
        cluster: String,
        call: String,
        failure: TlsFailure,
    },
    /// Any other definite answer from Proxmox (e.g. "VM 100 already running", 501 for an
    /// unknown route).
    #[error("{cluster}: {call}: HTTP {status}: {message}")]
    Api {
        cluster: String,
        call: String,
        status: u16,
        message: String,
    },
    /// The client refused to send the call (a bad node name, VMID or config update).
    #[error("{cluster}: {call}: not sent: {message}")]
    InvalidRequest {
        cluster: String,
        call: String,
        message: String,
    },
    /// Proxmox answered with something this client cannot read.
    #[error("{cluster}: {call}: unexpected response: {message}")]
    InvalidResponse {
        cluster: String,
        call: String,
        message: String,
    },
}

impl ProxmoxError {
    /// The error's class, for metrics: `unauthorized`, `transient`, …
    pub fn class(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::Locked { .. } => "locked",
            Self::Conflict { .. } => "conflict",
            Self::Transient { .. } => "transient",
            Self::InvalidParameters { .. } => "invalid_parameters",
            Self::TaskFailed { .. } => "task_failed",
            Self::TaskTimeout { .. } => "task_timeout",
            Self::Tls { .. } => "tls",
            Self::Api { .. } => "api",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::InvalidResponse { .. } => "invalid_response",
        }
    }

    /// True when the same call may well succeed later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Transient { .. }
                | Self::Locked { .. }
                | Self::Conflict { .. }
                | Self::TaskTimeout { .. }
        )
    }

    /// True for a TLS failure caused by a certificate that matches no pinned fingerprint.
    pub fn is_fingerprint_mismatch(&self) -> bool {
        matches!(
            self,
            Self::Tls {
                failure: TlsFailure::FingerprintMismatch { .. },
                ..
            }
        )
    }
}

fn render_errors(errors: &BTreeMap<String, String>) -> String {
    errors
        .iter()
        .map(|(param, complaint)| format!(" [{param}: {complaint}]"))
        .collect()
}

/// What an HTTP error answer from pveproxy means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Unauthorized,
    Forbidden,
    NotFound,
    Locked,
    Conflict,
    InvalidParameters,
    Transient,
    Api,
}

/// Classifies an error answer. pveproxy reports any failure inside an API handler as HTTP 500
/// with the handler's message, so 500 is a definite answer whose meaning is in the message;
/// the other 5xx codes (502/503/504 from proxies, 595/596 when pveproxy cannot reach the
/// target node) say nothing about the request itself and are worth retrying.
pub(crate) fn classify(status: u16, message: &str, has_param_errors: bool) -> Class {
    match status {
        400 if has_param_errors => Class::InvalidParameters,
        401 => Class::Unauthorized,
        403 => Class::Forbidden,
        404 => Class::NotFound,
        500 => classify_500(message),
        501 => Class::Api,
        502..=599 => Class::Transient,
        _ => Class::Api,
    }
}

fn classify_500(message: &str) -> Class {
    let lower = message.to_ascii_lowercase();
    const NOT_FOUND: [&str; 3] = ["does not exist", "no such vm", "no such task"];
    const LOCKED: [&str; 3] = ["is locked", "can't lock file", "cfs-lock"];
    // qemu-server's "unable to create VM N: config file already exists" / "VM N already exists
    // on node 'x'", and the digest check of a config write.
    const CONFLICT: [&str; 2] = ["already exists", "detected modified configuration"];
    if NOT_FOUND.iter().any(|p| lower.contains(p)) {
        Class::NotFound
    } else if LOCKED.iter().any(|p| lower.contains(p)) {
        Class::Locked
    } else if CONFLICT.iter().any(|p| lower.contains(p)) {
        Class::Conflict
    } else {
        Class::Api
    }
}

/// The context an error is built in: which cluster, which call.
#[derive(Debug, Clone)]
pub(crate) struct CallContext {
    pub cluster: String,
    pub call: String,
}

impl CallContext {
    /// Builds the error for an HTTP error answer.
    pub fn http_error(
        &self,
        status: u16,
        message: String,
        errors: BTreeMap<String, String>,
    ) -> ProxmoxError {
        let (cluster, call) = (self.cluster.clone(), self.call.clone());
        match classify(status, &message, !errors.is_empty()) {
            Class::Unauthorized => ProxmoxError::Unauthorized {
                cluster,
                call,
                message,
            },
            Class::Forbidden => ProxmoxError::Forbidden {
                cluster,
                call,
                message,
            },
            Class::NotFound => ProxmoxError::NotFound {
                cluster,
                call,
                message,
            },
            Class::Locked => ProxmoxError::Locked {
                cluster,
                call,
                message,
            },
            Class::Conflict => ProxmoxError::Conflict {
                cluster,
                call,
                message,
            },
            Class::InvalidParameters => ProxmoxError::InvalidParameters {
                cluster,
                call,
                message,
                errors,
            },
            Class::Transient => self.transient(format!("HTTP {status}: {message}")),
            Class::Api => ProxmoxError::Api {
                cluster,
                call,
                status,
                message,
            },
        }
    }

    pub fn transient(&self, message: String) -> ProxmoxError {
        ProxmoxError::Transient {
            cluster: self.cluster.clone(),
            call: self.call.clone(),
            message,
            attempts: 1,
        }
    }

    pub fn tls(&self, failure: TlsFailure) -> ProxmoxError {
        ProxmoxError::Tls {
            cluster: self.cluster.clone(),
            call: self.call.clone(),
            failure,
        }
    }

    pub fn invalid_request(&self, message: impl Into<String>) -> ProxmoxError {
        ProxmoxError::InvalidRequest {
            cluster: self.cluster.clone(),
            call: self.call.clone(),
            message: message.into(),
        }
    }

    pub fn invalid_response(&self, message: impl Into<String>) -> ProxmoxError {
        ProxmoxError::InvalidResponse {
            cluster: self.cluster.clone(),
            call: self.call.clone(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_vm_config_is_not_found() {
        let msg = "Configuration file 'nodes/pve1/qemu-server/123.conf' does not exist";
        assert_eq!(classify(500, msg, false), Class::NotFound);
    }

    #[test]
    fn vm_locks_are_locked() {
        assert_eq!(
            classify(500, "VM 100 is locked (clone)", false),
            Class::Locked
        );
        let msg = "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout";
        assert_eq!(classify(500, msg, false), Class::Locked);
    }

    #[test]
    fn clashes_with_concurrent_changes_are_conflicts() {
        let taken = "unable to create VM 105: config file already exists";
        assert_eq!(classify(500, taken, false), Class::Conflict);
        assert_eq!(
            classify(500, "VM 105 already exists on node 'pve2'", false),
            Class::Conflict
        );
        let digest = "detected modified configuration - file changed by other user? Try again.";
        assert_eq!(classify(500, digest, false), Class::Conflict);
    }

    #[test]
    fn other_handler_failures_are_definite_api_errors() {
        assert_eq!(classify(500, "VM 100 already running", false), Class::Api);
        assert_eq!(
            classify(501, "Method 'GET /foo' not implemented", false),
            Class::Api
        );
    }

    #[test]
    fn gateway_and_proxy_failures_are_transient() {
        for status in [502, 503, 504, 595, 596] {
            assert_eq!(classify(status, "whatever", false), Class::Transient);
        }
    }

    #[test]
    fn auth_and_parameter_answers_map_to_their_own_classes() {
        assert_eq!(
            classify(401, "authentication failure", false),
            Class::Unauthorized
        );
        assert_eq!(
            classify(403, "Permission check failed", false),
            Class::Forbidden
        );
        assert_eq!(
            classify(400, "Parameter verification failed.", true),
            Class::InvalidParameters
        );
        assert_eq!(classify(400, "bad request", false), Class::Api);
        assert_eq!(classify(404, "not found", false), Class::NotFound);
    }

    #[test]
    fn errors_name_cluster_call_and_proxmox_message() {
        let ctx = CallContext {
            cluster: "lab".into(),
            call: "POST nodes/pve1/qemu/100/status/start".into(),
        };
        let err = ctx.http_error(500, "VM 100 is locked (clone)".into(), BTreeMap::new());
        assert!(matches!(err, ProxmoxError::Locked { .. }));
        assert_eq!(
            err.to_string(),
            "lab: POST nodes/pve1/qemu/100/status/start: locked: VM 100 is locked (clone)"
        );
        let errors = BTreeMap::from([("cores".to_owned(), "value must be >= 1".to_owned())]);
        let err = ctx.http_error(400, "Parameter verification failed.".into(), errors);
        assert!(err.to_string().ends_with("[cores: value must be >= 1]"));
    }
}
