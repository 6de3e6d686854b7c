//! Hostile: allocates until something gives. The store's memory limit must stop it.

wit_bindgen::generate!({ path: "../../../wit", world: "cloud-init-template" });

use exports::porthole::plugin::cloud_init::{Guest, PluginError, RenderContext, Rendered};

struct Plugin;

impl Guest for Plugin {
    fn render(_: RenderContext) -> Result<Rendered, PluginError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut block = vec![0u8; 1 << 20];
            block[0] = hoard.len() as u8;
            hoard.push(std::hint::black_box(block));
        }
    }
}

export!(Plugin);
