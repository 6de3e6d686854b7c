//! Hostile: floods host.log, stdout and stderr (over a megabyte each, far past the caps), then renders normally. The per-call caps must
//! keep the flood out of the daemon's log while the call itself still succeeds.

wit_bindgen::generate!({ path: "../../../wit", world: "cloud-init-template" });

use exports::porthole::plugin::cloud_init::{Guest, PluginError, RenderContext, Rendered};

use porthole::plugin::host::{LogLevel, log};

struct Plugin;

impl Guest for Plugin {
    fn render(context: RenderContext) -> Result<Rendered, PluginError> {
        let line = "flood ".repeat(100);
        for i in 0..2_000 {
            log(LogLevel::Error, &line);
            println!("{i} {line}");
            eprintln!("{i} {line}");
        }
        Ok(Rendered {
            user_data: format!("#cloud-config\nhostname: {}\n", context.hostname),
            network_config: None,
            meta_data: None,
        })
    }
}

export!(Plugin);
