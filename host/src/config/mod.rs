//! The operator's configuration file: its shape, loading, and validation.
//!
//! Loading happens in two passes over one parse of the TOML text. The first deserializes into the
//! typed [`Config`] with `deny_unknown_fields`, so a typo is an error rather than a silently ignored
//! setting. The second checks what types cannot express (secret files exist, fingerprints are well
//! formed, names are unique, references resolve) and resolves secrets. Both passes report a
//! [`ConfigError`] that names the offending key and its line, because "invalid config" with no
//! location costs an operator an evening.
//!
//! This module reads files and environment variables and nothing else: it never connects to a
//! cluster or opens the database, so `porthole check-config` is safe to run anywhere.

mod database;
mod error;
mod locate;
mod model;
mod secret;
mod validate;

use std::path::Path;

pub use database::{Database, PostgresConfig, PostgresTarget, is_postgres_url};
pub use error::ConfigError;
pub use model::{
    AccountsConfig, CloudInitDelivery, ClusterConfig, Config, ConsoleConfig, DataKeySource,
    DeliveryKind, Fingerprints, IpPoolConfig, IsolationMode, LifecycleConfig, LogFormat, MfaPolicy,
    PlanConfig, PluginConfig, PluginIsolationConfig, PluginLimits, PluginTlsConfig, PluginWorld,
    TemplateConfig, TlsConfig, TlsTrustConfig, WebhooksConfig,
};
pub use porthole_plugin_host::PluginSpec;
pub use secret::{DataKey, Secret, SecretSource};
pub use validate::{ResolvedCluster, ResolvedConfig};

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<ResolvedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        file: path.display().to_string(),
        line: None,
        key: None,
        message: format!("cannot read the configuration file: {err}"),
    })?;
    // Relative paths inside the file are relative to the file, not to the daemon's working
    // directory, so a unit file and a shell agree on what `database = "porthole.db"` means.
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &path.display().to_string(), base)
}

/// Parses and validates configuration text; `file` names it in errors, `base` anchors relative
/// paths.
pub fn parse(text: &str, file: &str, base: &Path) -> Result<ResolvedConfig, ConfigError> {
    let document = toml::de::DeTable::parse(text)
        .map_err(|err| ConfigError::from_toml(file, text, None, &err))?;
    let config: Config = typed(&document, file, text)?;
    let locator = locate::Locator::new(file, text, document);
    validate::resolve(config, &locator, base)
}

/// The first pass: `document` as `T`, an error naming the key the type refused.
fn typed<T: serde::de::DeserializeOwned>(
    document: &toml::Spanned<toml::de::DeTable<'_>>,
    file: &str,
    text: &str,
) -> Result<T, ConfigError> {
    let deserializer = toml::de::Deserializer::from(document.clone());
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = locate::display_path(err.path());
        ConfigError::from_toml(file, text, Some(key), err.inner())
    })
}

/// Who a plugin is, for [`parse_plugin_entry`]: what a `[[plugins]]` entry names besides grants.
pub struct PluginIdentity {
    pub name: String,
    pub world: PluginWorld,
    pub path: std::path::PathBuf,
    pub sha256: String,
}

/// Parses a plugin author's settings file: the keys of one `[[plugins]]` entry (`settings`,
/// `allowed_hosts`, `allowed_addresses`, `tls`, `limits`) at the top level, checked exactly as
/// the daemon checks them, so a file that works here works pasted into the configuration.
pub fn parse_plugin_entry(
    text: &str,
    file: &str,
    base: &Path,
    identity: PluginIdentity,
) -> Result<PluginSpec, ConfigError> {
    use toml::Spanned;
    use toml::de::DeValue;

    let mut document = toml::de::DeTable::parse(text)
        .map_err(|err| ConfigError::from_toml(file, text, None, &err))?;
    let world = porthole_plugin_host::worlds::world_name(identity.world);
    let path = identity.path.display().to_string();
    for (key, value) in [
        ("name", identity.name.as_str()),
        ("world", world),
        ("path", path.as_str()),
        ("sha256", identity.sha256.as_str()),
    ] {
        let entry = Spanned::new(0..0, DeValue::String(value.to_owned().into()));
        let replaced = document
            .get_mut()
            .insert(Spanned::new(0..0, key.to_owned().into()), entry);
        if let Some(written) = replaced {
            return Err(ConfigError {
                file: file.to_owned(),
                line: Some(error::line_of(text, written.span().start)),
                key: Some(key.to_owned()),
                message: "is taken from the component, not from this file".to_owned(),
            });
        }
    }
    let plugin: PluginConfig = typed(&document, file, text)?;
    let locator = locate::Locator::new(file, text, document);
    validate::resolve_plugin(&plugin, &[], &locator, base)
}
