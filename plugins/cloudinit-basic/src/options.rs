//! The template's options, from the plugin's settings and the context's `extra` values.

use porthole_plugin_support::cloud_config::{Context, UserOptions, bool_setting, list_setting};
use porthole_plugin_support::settings::Settings;

/// How to render, beyond the context itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub user: UserOptions,
    /// Installed on first boot, in order, without duplicates.
    pub packages: Vec<String>,
    /// Upgrade installed packages on first boot (slow; off by default).
    pub package_upgrade: bool,
}

impl Options {
    /// Settings first, then the context's `extra` `packages` value (an operator's per-template
    /// additions).
    pub fn from_settings(settings: &impl Settings, context: &Context) -> Self {
        let mut options = Options::default();
        if let Some(sudo) = settings.get("sudo") {
            options.user.sudo = bool_setting(&sudo);
        }
        if let Some(shell) = settings.get("shell") {
            options.user.shell = shell.trim().to_owned();
        }
        options.package_upgrade = settings
            .get("package_upgrade")
            .is_some_and(|v| bool_setting(&v));
        let from_settings = settings.get("packages").unwrap_or_default();
        let from_extra = context.extra("packages").unwrap_or_default();
        for package in list_setting(&from_settings)
            .into_iter()
            .chain(list_setting(from_extra))
        {
            if !options.packages.contains(&package) {
                options.packages.push(package);
            }
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porthole_plugin_support::settings::MapSettings;

    #[test]
    fn merges_settings_and_extra_packages_without_duplicates() {
        let settings = MapSettings::new([("packages", "curl, htop"), ("sudo", "no")]);
        let context = Context {
            extra: vec![("packages".into(), "htop tmux".into())],
            ..Context::default()
        };
        let options = Options::from_settings(&settings, &context);
        assert_eq!(options.packages, vec!["curl", "htop", "tmux"]);
        assert!(!options.user.sudo);
        assert_eq!(options.user.shell, "/bin/bash");
    }
}
