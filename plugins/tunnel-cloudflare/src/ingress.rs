//! What Porthole asks for, checked, and the ingress rules it becomes.

use porthole_plugin_support::dns_name;
use porthole_plugin_support::error::PluginError;
use serde_json::{Value, json};

/// The WIT `tunnel-spec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    pub idempotency_key: String,
    pub name: String,
    pub hostnames: Vec<String>,
    pub http_service: Option<String>,
}

/// Origins cloudflared can route to.
const SERVICE_SCHEMES: [&str; 5] = ["ssh://", "http://", "https://", "tcp://", "rdp://"];

impl TunnelSpec {
    /// Checks the spec; returns the host names lowercased and the service to route them to.
    pub fn validated(&self, default_service: &str) -> Result<(Vec<String>, String), PluginError> {
        check_token("idempotency-key", &self.idempotency_key)?;
        check_token("name", &self.name)?;
        if self.hostnames.is_empty() || self.hostnames.len() > 50 {
            return Err(PluginError::invalid("a tunnel needs 1 to 50 host names"));
        }
        let hostnames = self
            .hostnames
            .iter()
            .map(|h| dns_name::zone(h).map_err(PluginError::from))
            .collect::<Result<Vec<_>, _>>()?;
        let service = self
            .http_service
            .clone()
            .unwrap_or_else(|| default_service.to_owned());
        let known = SERVICE_SCHEMES.iter().any(|s| service.starts_with(s));
        if !known || service.len() > 512 || service.contains(char::is_whitespace) {
            return Err(PluginError::invalid(format!(
                "{service:?} is not a tunnel origin"
            )));
        }
        Ok((hostnames, service))
    }
}

/// Keys and names end up in URLs and tunnel names: a conservative alphabet.
fn check_token(what: &str, value: &str) -> Result<(), PluginError> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    valid.then_some(()).ok_or_else(|| {
        PluginError::invalid(format!("{what} {value:?} must be 1–64 of [A-Za-z0-9._-]"))
    })
}

/// `{"config": {"ingress": […]}}`: every host name to `service`, then a catch-all 404
/// (cloudflared requires the last rule to match everything).
pub fn configuration(hostnames: &[String], service: &str) -> Value {
    let mut ingress: Vec<Value> = hostnames
        .iter()
        .map(|hostname| json!({"hostname": hostname, "service": service}))
        .collect();
    ingress.push(json!({"service": "http_status:404"}));
    json!({"config": {"ingress": ingress}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TunnelSpec {
        TunnelSpec {
            idempotency_key: "svc-42".into(),
            name: "porthole-svc-42".into(),
            hostnames: vec!["SSH-vm42.lab.example.com".into()],
            http_service: None,
        }
    }

    #[test]
    fn defaults_to_the_configured_service() {
        let (hostnames, service) = spec().validated("ssh://localhost:22").unwrap();
        assert_eq!(hostnames, vec!["ssh-vm42.lab.example.com"]);
        assert_eq!(service, "ssh://localhost:22");
    }

    #[test]
    fn ends_the_ingress_with_a_catch_all() {
        let config = configuration(&["a.example.com".into()], "http://localhost:8080");
        assert_eq!(
            config,
            json!({"config": {"ingress": [
                {"hostname": "a.example.com", "service": "http://localhost:8080"},
                {"service": "http_status:404"}
            ]}})
        );
    }

    #[test]
    fn refuses_odd_specs() {
        let mut bad = spec();
        bad.idempotency_key = "../x".into();
        assert!(bad.validated("ssh://localhost:22").is_err());
        let mut bad = spec();
        bad.http_service = Some("file:///etc/passwd".into());
        assert!(bad.validated("ssh://localhost:22").is_err());
        let mut bad = spec();
        bad.hostnames.clear();
        assert!(bad.validated("ssh://localhost:22").is_err());
    }
}
