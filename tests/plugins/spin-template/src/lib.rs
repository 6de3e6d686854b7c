//! Hostile: never returns. The epoch deadline must stop it.

wit_bindgen::generate!({ path: "../../../wit", world: "cloud-init-template" });

use exports::porthole::plugin::cloud_init::{Guest, PluginError, RenderContext, Rendered};

struct Plugin;

impl Guest for Plugin {
    fn render(context: RenderContext) -> Result<Rendered, PluginError> {
        let mut counter = 0u64;
        loop {
            counter = std::hint::black_box(counter.wrapping_add(context.hostname.len() as u64));
        }
    }
}

export!(Plugin);
