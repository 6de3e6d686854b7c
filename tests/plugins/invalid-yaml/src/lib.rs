//! Hostile (or just broken): user-data with the right header that is not YAML.

wit_bindgen::generate!({ path: "../../../wit", world: "cloud-init-template" });

use exports::porthole::plugin::cloud_init::{Guest, PluginError, RenderContext, Rendered};

struct Plugin;

impl Guest for Plugin {
    fn render(_: RenderContext) -> Result<Rendered, PluginError> {
        Ok(Rendered {
            user_data: "#cloud-config\nusers: [ {name: \"unterminated\n  - : :\n".into(),
            network_config: None,
            meta_data: None,
        })
    }
}

export!(Plugin);
