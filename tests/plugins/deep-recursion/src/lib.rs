//! Hostile: recurses without end. The wasm stack limit must stop it.

wit_bindgen::generate!({ path: "../../../wit", world: "cloud-init-template" });

use exports::porthole::plugin::cloud_init::{Guest, PluginError, RenderContext, Rendered};

struct Plugin;

#[inline(never)]
fn descend(depth: u64, padding: [u64; 16]) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let next = std::hint::black_box(padding);
    descend(depth + 1, next) + next[(depth % 16) as usize]
}

impl Guest for Plugin {
    fn render(_: RenderContext) -> Result<Rendered, PluginError> {
        let depth = descend(0, [1; 16]);
        Err(PluginError {
            kind: porthole::plugin::types::ErrorKind::Internal,
            message: depth.to_string(),
        })
    }
}

export!(Plugin);
