//! The template's options, from the plugin's settings and the context's `extra` values.

use porthole_plugin_support::cloud_config::{Context, UserOptions, bool_setting, list_setting};
use porthole_plugin_support::settings::Settings;

/// How to render, beyond the context itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub user: UserOptions,
    /// Extra packages installed on first boot.
    pub packages: Vec<String>,
    /// Install Docker and containerlab, and put the user in the `docker` group.
    pub containerlab: bool,
}

impl Options {
    pub fn from_settings(settings: &impl Settings, context: &Context) -> Self {
        let mut options = Options::default();
        if let Some(sudo) = settings.get("sudo") {
            options.user.sudo = bool_setting(&sudo);
        }
        if let Some(shell) = settings.get("shell") {
            options.user.shell = shell.trim().to_owned();
        }
        options.packages = list_setting(&settings.get("packages").unwrap_or_default());
        // A per-template `extra` value wins over the plugin-wide setting.
        let containerlab = context
            .extra("containerlab")
            .map(str::to_owned)
            .or_else(|| settings.get("containerlab"));
        options.containerlab = containerlab.is_some_and(|v| bool_setting(&v));
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porthole_plugin_support::settings::MapSettings;

    #[test]
    fn extra_overrides_the_containerlab_setting() {
        let settings = MapSettings::new([("containerlab", "true")]);
        let mut context = Context::default();
        assert!(Options::from_settings(&settings, &context).containerlab);
        context.extra = vec![("containerlab".into(), "false".into())];
        assert!(!Options::from_settings(&settings, &context).containerlab);
    }
}
