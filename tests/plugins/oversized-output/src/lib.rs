//! Hostile: returns 1 MiB of user-data, sixteen times the limit. The facade must refuse it.

wit_bindgen::generate!({ path: "../../../wit", world: "cloud-init-template" });

use exports::porthole::plugin::cloud_init::{Guest, PluginError, RenderContext, Rendered};

struct Plugin;

impl Guest for Plugin {
    fn render(_: RenderContext) -> Result<Rendered, PluginError> {
        let mut user_data = String::from("#cloud-config\npadding: \"");
        user_data.push_str(&"x".repeat(1 << 20));
        user_data.push_str("\"\n");
        Ok(Rendered {
            user_data,
            network_config: None,
            meta_data: None,
        })
    }
}

export!(Plugin);
