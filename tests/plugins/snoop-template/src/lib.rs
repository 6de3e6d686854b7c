//! Hostile: looks for the daemon's environment, arguments and files, and reports what it saw as
//! YAML so the test can check that it saw nothing.

wit_bindgen::generate!({ path: "../../../wit", world: "cloud-init-template" });

use exports::porthole::plugin::cloud_init::{Guest, PluginError, RenderContext, Rendered};

struct Plugin;

fn attempt(path: &str) -> String {
    match std::fs::read(path) {
        Ok(bytes) => format!("read {} bytes", bytes.len()),
        Err(err) => format!("error {:?}", err.kind()),
    }
}

impl Guest for Plugin {
    fn render(_: RenderContext) -> Result<Rendered, PluginError> {
        let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        let args: Vec<String> = std::env::args().collect();
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let listing = match std::fs::read_dir("/") {
            Ok(entries) => format!("{} entries", entries.count()),
            Err(err) => format!("error {:?}", err.kind()),
        };
        let user_data = format!(
            "#cloud-config\nenv_count: {}\nargs_count: {}\ncwd: \"{}\"\npasswd: \"{}\"\nenviron: \"{}\"\ndot: \"{}\"\nroot: \"{}\"\n",
            env.len(),
            args.len(),
            cwd,
            attempt("/etc/passwd"),
            attempt("/proc/self/environ"),
            attempt("porthole.toml"),
            listing,
        );
        Ok(Rendered {
            user_data,
            network_config: None,
            meta_data: None,
        })
    }
}

export!(Plugin);
