//! The cloud-init context both template plugins render from, its validation (the context is
//! the daemon's data, but a template still refuses anything that could corrupt the document or
//! the guest), and the `#cloud-config` parts they share: hostname, the user, packages.

use crate::yaml::Yaml;
use std::fmt;

/// What the daemon knows about the VM being provisioned (the WIT `render-context`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// A single DNS label.
    pub hostname: String,
    pub fqdn: String,
    pub username: String,
    pub ssh_keys: Vec<String>,
    /// A crypt(3) hash (`$6$…`, `$y$…`); never a plain password.
    pub password_hash: Option<String>,
    /// The tunnel connector's token, when the service has a tunnel.
    pub tunnel_token: Option<String>,
    /// `debian-12`, `ubuntu-24.04`, …
    pub os: String,
    /// Operator-defined values, in configuration order.
    pub extra: Vec<(String, String)>,
}

impl Context {
    /// The first `extra` value named `key`.
    pub fn extra(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What a template produces, as the NoCloud data source files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub user_data: String,
    pub network_config: Option<String>,
    pub meta_data: Option<String>,
}

/// A context value the template refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidContext {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for InvalidContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidContext {}

fn invalid(field: &str, reason: impl Into<String>) -> InvalidContext {
    InvalidContext {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Checks every field; the first problem found is returned.
pub fn validate(context: &Context) -> Result<(), InvalidContext> {
    check_os(&context.os)?;
    check_hostname(&context.hostname)?;
    check_fqdn(&context.fqdn, &context.hostname)?;
    check_user_name(&context.username)?;
    for key in &context.ssh_keys {
        check_ssh_key(key)?;
    }
    if let Some(hash) = &context.password_hash {
        check_password_hash(hash)?;
    }
    Ok(())
}

/// The templates write Debian-family configuration (apt, `sudo` group, `ssh` unit).
fn check_os(os: &str) -> Result<(), InvalidContext> {
    let family = os.split(['-', '_']).next().unwrap_or_default();
    matches!(family, "debian" | "ubuntu")
        .then_some(())
        .ok_or_else(|| invalid("os", format!("{os:?} is not a Debian or Ubuntu release")))
}

/// Packages named in settings or `extra`; each must be a valid Debian package name.
pub fn check_packages(packages: &[String]) -> Result<(), InvalidContext> {
    packages.iter().try_for_each(|p| check_package(p))
}

/// RFC 1123 label: what `hostnamectl` accepts as a static hostname.
fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn check_hostname(hostname: &str) -> Result<(), InvalidContext> {
    is_label(hostname)
        .then_some(())
        .ok_or_else(|| invalid("hostname", format!("{hostname:?} is not a DNS label")))
}

fn check_fqdn(fqdn: &str, hostname: &str) -> Result<(), InvalidContext> {
    let fqdn = fqdn.trim_end_matches('.');
    if fqdn.len() > 253 || !fqdn.split('.').all(is_label) {
        return Err(invalid("fqdn", format!("{fqdn:?} is not a domain name")));
    }
    if fqdn.split('.').next() != Some(hostname) {
        return Err(invalid(
            "fqdn",
            format!("{fqdn:?} does not start with the hostname {hostname:?}"),
        ));
    }
    Ok(())
}

/// Debian's `adduser` default NAME_REGEX, and names cloud-init must not take over.
fn check_user_name(name: &str) -> Result<(), InvalidContext> {
    let valid = name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return Err(invalid(
            "user",
            format!("{name:?} is not a valid login name"),
        ));
    }
    if ["root", "daemon", "bin", "sys", "nobody", "sshd"].contains(&name) {
        return Err(invalid("user", format!("{name:?} is a system account")));
    }
    Ok(())
}

const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// One `authorized_keys` line without options: `type base64 [comment]`.
fn check_ssh_key(key: &str) -> Result<(), InvalidContext> {
    let mut parts = key.split_ascii_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err(invalid("ssh key", "expected \"TYPE BASE64 [COMMENT]\""));
    };
    if key.contains(['\n', '\r']) || !SSH_KEY_TYPES.contains(&kind) {
        return Err(invalid("ssh key", format!("unsupported key type {kind:?}")));
    }
    let base64 = blob
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if !base64 || blob.len() < 16 {
        return Err(invalid("ssh key", "the key data is not base64"));
    }
    Ok(())
}

/// `$id$…` with crypt's alphabet: refuses plain passwords passed by mistake.
fn check_password_hash(hash: &str) -> Result<(), InvalidContext> {
    let valid = hash.starts_with('$')
        && hash.len() >= 20
        && hash.len() <= 512
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"$./=,-".contains(&b));
    valid
        .then_some(())
        .ok_or_else(|| invalid("password hash", "not a crypt(3) hash such as $6$… or $y$…"))
}

/// Debian policy: lowercase letters, digits, `+ - .`, at least two characters.
fn check_package(name: &str) -> Result<(), InvalidContext> {
    let valid = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    valid
        .then_some(())
        .ok_or_else(|| invalid("package", format!("{name:?} is not a Debian package name")))
}

/// Template options an operator sets in the plugin's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserOptions {
    /// Passwordless sudo for the user.
    pub sudo: bool,
    /// The login shell; an absolute path.
    pub shell: String,
}

impl Default for UserOptions {
    fn default() -> Self {
        Self {
            sudo: true,
            shell: "/bin/bash".to_owned(),
        }
    }
}

impl UserOptions {
    pub fn validate(&self) -> Result<(), InvalidContext> {
        let valid = self.shell.starts_with('/')
            && self
                .shell
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
        valid
            .then_some(())
            .ok_or_else(|| invalid("shell setting", format!("{:?} is not a path", self.shell)))
    }
}

/// `hostname`, `fqdn`, `users`, `ssh_pwauth`: the identity part of the document.
pub fn identity(context: &Context, options: &UserOptions) -> Vec<(String, Yaml)> {
    vec![
        ("hostname".to_owned(), Yaml::str(&context.hostname)),
        ("fqdn".into(), Yaml::str(context.fqdn.trim_end_matches('.'))),
        ("prefer_fqdn_over_hostname".into(), Yaml::Bool(false)),
        ("manage_etc_hosts".into(), Yaml::Bool(true)),
        ("users".into(), Yaml::Seq(vec![user(context, options)])),
        // Keys only over SSH; the password hash is for the console.
        ("ssh_pwauth".into(), Yaml::Bool(false)),
        ("disable_root".into(), Yaml::Bool(true)),
    ]
}
fn user(context: &Context, options: &UserOptions) -> Yaml {
    let mut entries = vec![
        ("name".to_owned(), Yaml::str(&context.username)),
        ("shell".into(), Yaml::str(&options.shell)),
    ];
    if options.sudo {
        entries.push(("groups".into(), Yaml::strs(&["sudo"])));
        entries.push(("sudo".into(), Yaml::str("ALL=(ALL) NOPASSWD:ALL")));
    }
    match &context.password_hash {
        Some(hash) => {
            entries.push(("lock_passwd".into(), Yaml::Bool(false)));
            entries.push(("passwd".into(), Yaml::str(hash)));
        }
        None => entries.push(("lock_passwd".into(), Yaml::Bool(true))),
    }
    if !context.ssh_keys.is_empty() {
        entries.push(("ssh_authorized_keys".into(), Yaml::strs(&context.ssh_keys)));
    }
    Yaml::Map(entries)
}

/// `package_update` and `packages`, when there are any.
pub fn packages(packages: &[String]) -> Vec<(String, Yaml)> {
    if packages.is_empty() {
        return Vec::new();
    }
    vec![
        ("package_update".to_owned(), Yaml::Bool(true)),
        ("packages".into(), Yaml::strs(packages)),
    ]
}

/// `#cloud-config` and the document.
pub fn user_data(document: Vec<(String, Yaml)>) -> String {
    format!("#cloud-config\n{}", Yaml::Map(document).to_document())
}

/// Splits a comma- or whitespace-separated setting into its items.
pub fn list_setting(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `true`/`yes`/`1`/`on` (any case) are true; anything else is false.
pub fn bool_setting(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "1" | "on"
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn context() -> Context {
        Context {
            hostname: "web1".into(),
            fqdn: "web1.example.com".into(),
            username: "alice".into(),
            ssh_keys: vec![
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyDataForTests alice@laptop".into(),
            ],
            password_hash: Some("$6$saltsalt$0123456789abcdefghijABCDEFGHIJ./0123456789".into()),
            tunnel_token: None,
            os: "debian-12".into(),
            extra: vec![],
        }
    }

    #[test]
    fn accepts_a_typical_context() {
        assert_eq!(validate(&context()), Ok(()));
    }

    #[test]
    fn refuses_each_kind_of_bad_value() {
        type Breakage = Box<dyn Fn(&mut Context)>;
        let cases: Vec<(&str, Breakage)> = vec![
            ("hostname", Box::new(|c| c.hostname = "web_1".into())),
            ("hostname", Box::new(|c| c.hostname = "-web".into())),
            ("fqdn", Box::new(|c| c.fqdn = "other.example.com".into())),
            ("user", Box::new(|c| c.username = "Alice".into())),
            ("user", Box::new(|c| c.username = "root".into())),
            ("ssh key", Box::new(|c| c.ssh_keys = vec!["hello".into()])),
            (
                "ssh key",
                Box::new(|c| {
                    c.ssh_keys = vec!["ssh-ed25519 AAAA\nssh-rsa BBBBBBBBBBBBBBBBBBBBBB".into()]
                }),
            ),
            (
                "password hash",
                Box::new(|c| c.password_hash = Some("hunter2".into())),
            ),
            ("os", Box::new(|c| c.os = "windows-2022".into())),
        ];
        for (field, break_it) in cases {
            let mut bad = context();
            break_it(&mut bad);
            assert_eq!(validate(&bad).map_err(|e| e.field), Err(field.to_owned()));
        }
    }

    #[test]
    fn refuses_bad_package_names() {
        assert!(check_packages(&["curl".into(), "g++".into()]).is_ok());
        assert!(check_packages(&["curl; rm -rf /".into()]).is_err());
    }

    #[test]
    fn settings_parse_leniently() {
        assert_eq!(
            list_setting(" vim, htop  tmux,"),
            vec!["vim", "htop", "tmux"]
        );
        assert!(bool_setting("Yes"));
        assert!(!bool_setting("nope"));
    }
}
