//! Create (or find again), configure and delete tunnels.

use crate::ingress::{TunnelSpec, configuration};
use porthole_plugin_support::cloudflare::{Cloudflare, CloudflareError, DEFAULT_API_BASE};
use porthole_plugin_support::dns::{DnsRecord, RecordKind};
use porthole_plugin_support::error::PluginError;
use porthole_plugin_support::http::{HttpClient, Method, encode_component};
use porthole_plugin_support::settings::{Kv, Settings};
use serde::Deserialize;
use serde_json::json;

/// Cloudflare: "Cannot delete tunnel because it has active connections".
const HAS_CONNECTIONS: i64 = 1022;

/// The WIT `tunnel-info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    pub id: String,
    pub connector_token: String,
    pub hostnames: Vec<String>,
    pub dns_records: Vec<DnsRecord>,
}

#[derive(Debug, Deserialize)]
struct ApiTunnel {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    deleted_at: Option<String>,
}

/// The tunnel provider for one Cloudflare account.
pub struct CloudflareTunnels<'a, H: HttpClient, K: Kv> {
    api: Cloudflare<'a, H>,
    kv: &'a K,
    account_id: String,
    default_service: String,
}

impl<'a, H: HttpClient, K: Kv> CloudflareTunnels<'a, H, K> {
    pub fn from_settings(
        http: &'a H,
        kv: &'a K,
        settings: &impl Settings,
    ) -> Result<Self, PluginError> {
        let token = settings.required("api_token")?;
        let account_id = settings.required("account_id")?.trim().to_owned();
        check_id(&account_id, "account_id setting")?;
        let base = settings
            .get("api_base")
            .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
        let default_service = settings
            .get("default_service")
            .unwrap_or_else(|| "ssh://localhost:22".to_owned());
        Ok(Self {
            api: Cloudflare::new(http, &base, token.trim()),
            kv,
            account_id,
            default_service,
        })
    }

    /// Creates the tunnel, or returns the one this idempotency key already created.
    pub fn create_tunnel(&self, spec: &TunnelSpec) -> Result<TunnelInfo, PluginError> {
        let (hostnames, service) = spec.validated(&self.default_service)?;
        let id = match self.existing(spec)? {
            Some(id) => id,
            None => self.create(&spec.name)?,
        };
        self.remember(&spec.idempotency_key, &id)?;
        let connector_token = match self.configure(&id, &hostnames, &service) {
            Ok(token) => token,
            Err(err) => {
                // The caller learns no id from a failed call, so nothing of it may stay behind:
                // a retry with the same key creates the tunnel again.
                if let Err(cleanup) = self.delete_tunnel(&id) {
                    return Err(PluginError::new(
                        err.kind,
                        format!(
                            "{}; and removing the half-made tunnel {id} failed: {}",
                            err.message, cleanup.message
                        ),
                    ));
                }
                return Err(err);
            }
        };
        let dns_records = hostnames.iter().map(|h| cname(h, &id)).collect();
        Ok(TunnelInfo {
            id,
            connector_token,
            hostnames,
            dns_records,
        })
    }

    /// Deletes tunnel `id`, closing its connections first if Cloudflare insists; a tunnel that
    /// is already gone counts as deleted.
    pub fn delete_tunnel(&self, id: &str) -> Result<(), PluginError> {
        check_id(id, "tunnel id")?;
        let path = format!("{}/{id}", self.tunnels_path());
        let deleted = match self.api.call(Method::Delete, &path, None) {
            Err(err) if err.has_code(HAS_CONNECTIONS) => {
                self.api
                    .call(Method::Delete, &format!("{path}/connections"), None)?;
                self.api.call(Method::Delete, &path, None)
            }
            other => other,
        };
        match deleted {
            Ok(_) => {}
            Err(err) if is_gone(&err) => {}
            Err(err) => return Err(err.into()),
        }
        self.forget(id)
    }

    /// Sets the tunnel's ingress rules and returns its connector token.
    fn configure(
        &self,
        id: &str,
        hostnames: &[String],
        service: &str,
    ) -> Result<String, PluginError> {
        self.api.call(
            Method::Put,
            &format!("{}/{id}/configurations", self.tunnels_path()),
            Some(&configuration(hostnames, service)),
        )?;
        Ok(self.api.call_as(
            Method::Get,
            &format!("{}/{id}/token", self.tunnels_path()),
            None,
        )?)
    }

    /// The tunnel this key created before: from `kv`, or by name if `kv` missed the save.
    fn existing(&self, spec: &TunnelSpec) -> Result<Option<String>, PluginError> {
        if let Some(id) = self.kv.get_text(&key_entry(&spec.idempotency_key))? {
            match self.api.call_as::<ApiTunnel>(
                Method::Get,
                &format!("{}/{id}", self.tunnels_path()),
                None,
            ) {
                Ok(tunnel) if tunnel.deleted_at.is_none() => return Ok(Some(tunnel.id)),
                Ok(_) => {}
                Err(err) if is_gone(&err) => {}
                Err(err) => return Err(err.into()),
            }
        }
        let path = format!(
            "{}?name={}&is_deleted=false",
            self.tunnels_path(),
            encode_component(&spec.name)
        );
        let found: Vec<ApiTunnel> = self.api.list(&path)?;
        Ok(found
            .into_iter()
            .find(|t| t.name == spec.name && t.deleted_at.is_none())
            .map(|t| t.id))
    }

    fn create(&self, name: &str) -> Result<String, PluginError> {
        let body = json!({"name": name, "config_src": "cloudflare"});
        let tunnel: ApiTunnel =
            self.api
                .call_as(Method::Post, &self.tunnels_path(), Some(&body))?;
        check_id(&tunnel.id, "tunnel id from Cloudflare")?;
        Ok(tunnel.id)
    }

    fn remember(&self, key: &str, id: &str) -> Result<(), PluginError> {
        self.kv.set(&key_entry(key), id.as_bytes())?;
        self.kv.set(&id_entry(id), key.as_bytes())
    }

    fn forget(&self, id: &str) -> Result<(), PluginError> {
        if let Some(key) = self.kv.get_text(&id_entry(id))? {
            self.kv.delete(&key_entry(&key))?;
        }
        self.kv.delete(&id_entry(id))
    }

    fn tunnels_path(&self) -> String {
        format!("/accounts/{}/cfd_tunnel", self.account_id)
    }
}

fn key_entry(key: &str) -> String {
    format!("tunnel-by-key/{key}")
}

fn id_entry(id: &str) -> String {
    format!("key-by-tunnel/{id}")
}

fn is_gone(err: &CloudflareError) -> bool {
    err.status() == Some(404)
}

/// `<hostname> CNAME <id>.cfargotunnel.com`, proxied (tunnels only work behind the proxy).
fn cname(hostname: &str, id: &str) -> DnsRecord {
    DnsRecord {
        name: hostname.to_owned(),
        kind: RecordKind::Cname,
        content: format!("{id}.cfargotunnel.com"),
        ttl: 1,
        proxied: true,
    }
}

/// Account and tunnel ids are hex or UUIDs; nothing else may reach a URL path.
fn check_id(id: &str, what: &str) -> Result<(), PluginError> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid
        .then_some(())
        .ok_or_else(|| PluginError::invalid(format!("{what} {id:?} is not a Cloudflare id")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use porthole_plugin_support::error::ErrorKind;
    use porthole_plugin_support::settings::{MapSettings, MemoryKv};
    use porthole_plugin_support::testing::ScriptedHttp;
    use serde_json::Value;

    const ID: &str = "c1744f8b-faa1-48a4-9e5c-02ac921467fa";

    fn ok(result: Value) -> Value {
        json!({"success": true, "errors": [], "messages": [], "result": result})
    }

    fn fail(code: i64, message: &str) -> Value {
        json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null})
    }

    fn settings() -> MapSettings {
        MapSettings::new([
            ("api_token", "tok"),
            ("account_id", "acc1"),
            ("api_base", "https://cf.test/client/v4"),
        ])
    }

    fn spec() -> TunnelSpec {
        TunnelSpec {
            idempotency_key: "svc-42".into(),
            name: "porthole-svc-42".into(),
            hostnames: vec!["ssh-vm42.lab.example.com".into()],
            http_service: None,
        }
    }

    #[test]
    fn creates_configures_and_returns_the_token_and_cnames() {
        let http = ScriptedHttp::new()
            .reply(200, ok(json!([])))
            .reply(
                200,
                ok(json!({"id": ID, "name": "porthole-svc-42", "deleted_at": null})),
            )
            .reply(200, ok(json!({"tunnel_id": ID, "version": 1})))
            .reply(200, ok(json!("connector-token")));
        let kv = MemoryKv::default();
        let tunnels = CloudflareTunnels::from_settings(&http, &kv, &settings()).unwrap();
        let info = tunnels.create_tunnel(&spec()).unwrap();
        assert_eq!(info.id, ID);
        assert_eq!(info.connector_token, "connector-token");
        assert_eq!(
            info.dns_records,
            vec![cname("ssh-vm42.lab.example.com", ID)]
        );
        assert_eq!(
            info.dns_records[0].content,
            format!("{ID}.cfargotunnel.com")
        );
        let lines = http.lines();
        assert_eq!(
            lines[0],
            "GET https://cf.test/client/v4/accounts/acc1/cfd_tunnel?name=porthole-svc-42&is_deleted=false&per_page=100&page=1"
        );
        assert_eq!(
            lines[1],
            "POST https://cf.test/client/v4/accounts/acc1/cfd_tunnel"
        );
        assert_eq!(
            lines[2],
            format!("PUT https://cf.test/client/v4/accounts/acc1/cfd_tunnel/{ID}/configurations")
        );
        let config: Value = serde_json::from_str(&http.sent()[2].body_text()).unwrap();
        assert_eq!(
            config["config"]["ingress"][0]["service"],
            "ssh://localhost:22"
        );
        assert_eq!(config["config"]["ingress"][1]["service"], "http_status:404");
        assert_eq!(
            kv.get_text("tunnel-by-key/svc-42").unwrap().as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn the_same_key_reuses_the_remembered_tunnel() {
        let kv = MemoryKv::default();
        kv.set("tunnel-by-key/svc-42", ID.as_bytes()).unwrap();
        let http = ScriptedHttp::new()
            .reply(
                200,
                ok(json!({"id": ID, "name": "porthole-svc-42", "deleted_at": null})),
            )
            .reply(200, ok(json!({})))
            .reply(200, ok(json!("connector-token")));
        let tunnels = CloudflareTunnels::from_settings(&http, &kv, &settings()).unwrap();
        assert_eq!(tunnels.create_tunnel(&spec()).unwrap().id, ID);
        assert!(http.lines().iter().all(|l| !l.starts_with("POST")));
    }

    #[test]
    fn a_tunnel_lost_from_kv_is_found_by_name() {
        let kv = MemoryKv::default();
        let http = ScriptedHttp::new()
            .reply(
                200,
                ok(json!([{"id": ID, "name": "porthole-svc-42", "deleted_at": null}])),
            )
            .reply(200, ok(json!({})))
            .reply(200, ok(json!("connector-token")));
        let tunnels = CloudflareTunnels::from_settings(&http, &kv, &settings()).unwrap();
        assert_eq!(tunnels.create_tunnel(&spec()).unwrap().id, ID);
        assert_eq!(
            kv.get_text(&format!("key-by-tunnel/{ID}"))
                .unwrap()
                .as_deref(),
            Some("svc-42")
        );
    }

    #[test]
    fn delete_cleans_up_connections_and_forgets_the_key() {
        let kv = MemoryKv::default();
        kv.set("tunnel-by-key/svc-42", ID.as_bytes()).unwrap();
        kv.set(&format!("key-by-tunnel/{ID}"), b"svc-42").unwrap();
        let http = ScriptedHttp::new()
            .reply(
                400,
                fail(
                    1022,
                    "Cannot delete tunnel because it has active connections",
                ),
            )
            .reply(200, ok(json!(null)))
            .reply(200, ok(json!({"id": ID})));
        let tunnels = CloudflareTunnels::from_settings(&http, &kv, &settings()).unwrap();
        tunnels.delete_tunnel(ID).unwrap();
        assert_eq!(
            http.lines()[1],
            format!("DELETE https://cf.test/client/v4/accounts/acc1/cfd_tunnel/{ID}/connections")
        );
        assert!(kv.0.borrow().is_empty());
    }

    #[test]
    fn deleting_a_missing_tunnel_succeeds_and_bad_ids_are_refused() {
        let kv = MemoryKv::default();
        let http = ScriptedHttp::new().reply(404, fail(1003, "Tunnel not found"));
        let tunnels = CloudflareTunnels::from_settings(&http, &kv, &settings()).unwrap();
        tunnels.delete_tunnel(ID).unwrap();
        assert_eq!(
            tunnels.delete_tunnel("../../zones").unwrap_err().kind,
            ErrorKind::InvalidInput
        );
    }
}
