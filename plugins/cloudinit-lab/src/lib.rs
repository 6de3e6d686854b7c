//! `cloudinit-lab`: the `#cloud-config` of a lab VM. On top of the user and hostname it installs
//! `cloudflared` from Cloudflare's apt repository as a service running the tunnel's connector
//! token, and makes SSH listen on loopback only, so the VM is reachable solely through the
//! tunnel (whose ingress routes the SSH hostname to `ssh://localhost:22`). With the
//! `containerlab` setting it also installs Docker and containerlab.
//!
//! Settings: `containerlab` (default `false`; the `extra` value `containerlab` overrides it),
//! `packages`, `sudo`, `shell` as in `cloudinit-basic`.

mod options;
mod setup_script;
mod template;

pub use options::Options;
pub use porthole_plugin_support::cloud_config::{Context, Rendered};
pub use template::render_with;

/// Why a context cannot be rendered.
pub type Error = porthole_plugin_support::cloud_config::InvalidContext;

#[cfg(target_arch = "wasm32")]
mod bindings;
