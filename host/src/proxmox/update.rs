//! Request bodies the daemon builds: VM config updates and clone requests.

use std::collections::BTreeMap;
use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything except RFC 3986 "unreserved" characters. Proxmox decodes `sshkeys` with
/// `uri_unescape` and its own UI encodes with `encodeURIComponent`; encoding strictly more than
/// that (e.g. `+`, `/`, `=` of base64, `@` of comments) is always decoded back correctly.
const SSHKEYS_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Highest index + 1 of `net[n]` / `ipconfig[n]` (qemu-server's MAX_NETS).
const MAX_NETS: u8 = 32;

/// Encodes OpenSSH public keys for the `sshkeys` option: one key per line, percent-encoded with
/// `%20` for spaces and `%0A` between keys. Blank entries are dropped.
pub fn encode_sshkeys<I, S>(keys: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let joined = keys
        .into_iter()
        .map(|k| k.as_ref().trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    utf8_percent_encode(&joined, SSHKEYS_ENCODE).to_string()
}

/// A change to a VM's configuration, limited to options Proxmox's `config` endpoint accepts.
///
/// Built by chaining; a problem (e.g. an out-of-range NIC index) is remembered and reported as
/// [`super::ProxmoxError::InvalidRequest`] when the update is sent, so nothing half-valid
/// reaches Proxmox.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct VmConfigUpdate {
    values: BTreeMap<String, String>,
    delete: Vec<String>,
    problem: Option<String>,
}

impl VmConfigUpdate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cores per socket (at least 1).
    pub fn cores(self, cores: u32) -> Self {
        if cores == 0 {
            return self.fail("cores must be at least 1");
        }
        self.set("cores", cores.to_string())
    }

    /// Memory in MiB.
    pub fn memory_mib(self, mib: u64) -> Self {
        if mib < 16 {
            return self.fail("memory must be at least 16 MiB");
        }
        self.set("memory", mib.to_string())
    }

    /// VM name (a DNS name).
    pub fn name(self, name: impl Into<String>) -> Self {
        self.set("name", name.into())
    }

    /// Replaces the VM's tags.
    pub fn tags<I, S>(self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let tags: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_owned()).collect();
        self.set("tags", tags.join(";"))
    }

    pub fn description(self, text: impl Into<String>) -> Self {
        self.set("description", text.into())
    }

    /// cloud-init user name.
    pub fn ciuser(self, user: impl Into<String>) -> Self {
        self.set("ciuser", user.into())
    }

    /// cloud-init password (Proxmox hashes it). Never shown by `Debug`.
    pub fn cipassword(self, password: impl Into<String>) -> Self {
        self.set("cipassword", password.into())
    }

    /// cloud-init SSH public keys, encoded as Proxmox requires (see [`encode_sshkeys`]).
    pub fn sshkeys<I, S>(self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.set("sshkeys", encode_sshkeys(keys))
    }

    /// cloud-init IP config of NIC `index`, e.g. `ip=dhcp` or `ip=10.0.0.5/24,gw=10.0.0.1`.
    pub fn ipconfig(self, index: u8, value: impl Into<String>) -> Self {
        if index >= MAX_NETS {
            return self.fail(format!("ipconfig index {index} is above {}", MAX_NETS - 1));
        }
        self.set(&format!("ipconfig{index}"), value.into())
    }

    /// Network device `index`, e.g. `virtio,bridge=vmbr0,firewall=1`.
    pub fn net(self, index: u8, value: impl Into<String>) -> Self {
        if index >= MAX_NETS {
            return self.fail(format!("net index {index} is above {}", MAX_NETS - 1));
        }
        self.set(&format!("net{index}"), value.into())
    }

    /// cloud-init custom files, e.g. `user=local:snippets/vm-101-user.yaml`.
    pub fn cicustom(self, value: impl Into<String>) -> Self {
        self.set("cicustom", value.into())
    }

    /// SMBIOS type 1 fields, e.g. `serial=<base64>,base64=1` for a NoCloud seed URL.
    pub fn smbios1(self, value: impl Into<String>) -> Self {
        self.set("smbios1", value.into())
    }

    /// cloud-init DNS servers.
    pub fn nameserver(self, value: impl Into<String>) -> Self {
        self.set("nameserver", value.into())
    }

    /// cloud-init DNS search domains.
    pub fn searchdomain(self, value: impl Into<String>) -> Self {
        self.set("searchdomain", value.into())
    }

    pub fn onboot(self, onboot: bool) -> Self {
        self.set("onboot", if onboot { "1" } else { "0" }.to_owned())
    }

    /// Removes an option from the config (e.g. `cicustom`, `net1`).
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        if !is_config_key(&key) {
            return self.fail(format!("{key:?} is not a config option name"));
        }
        self.delete.push(key);
        self
    }

    /// Refuses the update if the config changed since it was read with this digest.
    pub fn digest(self, digest: impl Into<String>) -> Self {
        let digest = digest.into();
        if digest.len() > 40 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.fail("digest must be at most 40 hex digits");
        }
        self.set("digest", digest)
    }

    /// True when the update neither sets nor deletes anything.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.values.keys().all(|k| k == "digest")
    }

    /// True when a repeat of the same update cannot do anything the first did not. Not so with a
    /// digest: once the first applied, the digest is stale and a retry would fail.
    pub(crate) fn is_idempotent(&self) -> bool {
        !self.values.contains_key("digest")
    }

    /// The form parameters, or why this update must not be sent.
    pub(crate) fn to_params(&self) -> Result<Vec<(String, String)>, String> {
        if let Some(problem) = &self.problem {
            return Err(problem.clone());
        }
        if self.is_empty() {
            return Err("config update changes nothing".to_owned());
        }
        if let Some(both) = self.delete.iter().find(|k| self.values.contains_key(*k)) {
            return Err(format!("{both:?} is both set and deleted"));
        }
        let mut params: Vec<(String, String)> = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !self.delete.is_empty() {
            params.push(("delete".to_owned(), self.delete.join(",")));
        }
        Ok(params)
    }

    fn set(mut self, key: &str, value: String) -> Self {
        self.values.insert(key.to_owned(), value);
        self
    }

    /// Keeps the first problem: later ones are usually consequences of it.
    fn fail(mut self, problem: impl Into<String>) -> Self {
        self.problem.get_or_insert_with(|| problem.into());
        self
    }
}

/// Config option names as Proxmox's `pve-configid` format allows them.
fn is_config_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl fmt::Debug for VmConfigUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .values
            .iter()
            .map(|(k, v)| {
                let v = if k == "cipassword" { "<redacted>" } else { v };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("VmConfigUpdate")
            .field("values", &shown)
            .field("delete", &self.delete)
            .field("problem", &self.problem)
            .finish()
    }
}

/// `POST /nodes/{node}/qemu/{vmid}/clone`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneRequest {
    /// VMID of the new VM (100 – 999999999).
    pub newid: u32,
    pub name: Option<String>,
    /// Full copy instead of a linked clone.
    pub full: Option<bool>,
    /// Node to create the clone on (the template must be on shared storage).
    pub target: Option<String>,
    /// Target storage for a full clone.
    pub storage: Option<String>,
    pub description: Option<String>,
    pub pool: Option<String>,
}

impl CloneRequest {
    pub fn new(newid: u32) -> Self {
        Self {
            newid,
            ..Self::default()
        }
    }

    pub(crate) fn to_params(&self) -> Vec<(String, String)> {
        let mut params = vec![("newid".to_owned(), self.newid.to_string())];
        let optional = [
            ("name", self.name.clone()),
            (
                "full",
                self.full.map(|f| if f { "1" } else { "0" }.to_owned()),
            ),
            ("target", self.target.clone()),
            ("storage", self.storage.clone()),
            ("description", self.description.clone()),
            ("pool", self.pool.clone()),
        ];
        params.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))),
        );
        params
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sshkeys_encode_spaces_as_percent_20_and_newlines_between_keys() {
        let encoded = encode_sshkeys([
            "ssh-ed25519 AAAAC3Nza+/b= alice@laptop",
            "  ",
            "ssh-rsa AAAAB3 bob",
        ]);
        assert_eq!(
            encoded,
            "ssh-ed25519%20AAAAC3Nza%2B%2Fb%3D%20alice%40laptop%0Assh-rsa%20AAAAB3%20bob"
        );
        assert!(
            !encoded.contains('+'),
            "a + would decode as a space on some paths"
        );
    }

    #[test]
    fn sshkeys_leave_unreserved_characters_alone() {
        assert_eq!(encode_sshkeys(["a-b_c.d~e"]), "a-b_c.d~e");
    }

    #[test]
    fn update_collects_params_and_joins_deletes() {
        let params = VmConfigUpdate::new()
            .cores(2)
            .memory_mib(2048)
            .tags(["porthole", "customer-7"])
            .ipconfig(0, "ip=dhcp")
            .delete("cicustom")
            .delete("net1")
            .to_params()
            .unwrap();
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("cores"), Some("2"));
        assert_eq!(get("memory"), Some("2048"));
        assert_eq!(get("tags"), Some("porthole;customer-7"));
        assert_eq!(get("ipconfig0"), Some("ip=dhcp"));
        assert_eq!(get("delete"), Some("cicustom,net1"));
    }

    #[test]
    fn update_refuses_out_of_range_nic_and_empty_updates() {
        assert!(VmConfigUpdate::new().net(32, "virtio").to_params().is_err());
        assert!(VmConfigUpdate::new().to_params().is_err());
        assert!(VmConfigUpdate::new().digest("abc").to_params().is_err());
        assert!(
            VmConfigUpdate::new()
                .cores(0)
                .name("x")
                .to_params()
                .is_err()
        );
        assert!(VmConfigUpdate::new().delete("Bad Key").to_params().is_err());
        let both = VmConfigUpdate::new().name("a").delete("name");
        assert!(both.to_params().is_err());
    }

    #[test]
    fn update_debug_hides_the_password() {
        let shown = format!("{:?}", VmConfigUpdate::new().cipassword("hunter2"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn clone_sends_only_what_is_set() {
        let mut req = CloneRequest::new(123);
        req.full = Some(true);
        req.name = Some("web-1".into());
        assert_eq!(
            req.to_params(),
            vec![
                ("newid".to_owned(), "123".to_owned()),
                ("name".to_owned(), "web-1".to_owned()),
                ("full".to_owned(), "1".to_owned()),
            ]
        );
    }
}
