//! Hostile: opens a TCP socket directly. Such a component imports wasi:sockets, which Porthole
//! links against a context that permits nothing: it loads, and the connection is refused.

wit_bindgen::generate!({ path: "../../../wit", world: "cloud-init-template" });

use exports::porthole::plugin::cloud_init::{Guest, PluginError, RenderContext, Rendered};

struct Plugin;

impl Guest for Plugin {
    fn render(_: RenderContext) -> Result<Rendered, PluginError> {
        let outcome = match std::net::TcpStream::connect("127.0.0.1:22") {
            Ok(_) => "connected".to_owned(),
            Err(err) => format!("{:?}", err.kind()),
        };
        Ok(Rendered {
            user_data: format!("#cloud-config\nsocket: {outcome}\n"),
            network_config: None,
            meta_data: None,
        })
    }
}

export!(Plugin);
