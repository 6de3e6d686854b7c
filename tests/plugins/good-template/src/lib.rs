//! A well-behaved cloud-init template: the control group every hostile test runs beside.

wit_bindgen::generate!({ path: "../../../wit", world: "cloud-init-template" });

use exports::porthole::plugin::cloud_init::{Guest, PluginError, RenderContext, Rendered};
use porthole::plugin::host::{LogLevel, log, setting};

struct Template;

impl Guest for Template {
    fn render(context: RenderContext) -> Result<Rendered, PluginError> {
        log(LogLevel::Debug, &format!("rendering {}", context.hostname));
        let greeting = setting("greeting").unwrap_or_else(|| "hello".to_owned());
        let keys: String = context
            .ssh_keys
            .iter()
            .map(|key| format!("      - {key}\n"))
            .collect();
        let user_data = format!(
            "#cloud-config\nhostname: {}\nfqdn: {}\nusers:\n  - name: {}\n    ssh_authorized_keys:\n{keys}write_files:\n  - path: /etc/motd\n    content: \"{greeting}\"\n",
            context.hostname, context.fqdn, context.username
        );
        Ok(Rendered {
            user_data,
            network_config: None,
            meta_data: None,
        })
    }
}

export!(Template);
