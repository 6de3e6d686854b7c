//! `cloudinit-basic`: the `#cloud-config` for a plain Debian or Ubuntu VM — hostname and FQDN,
//! the customer's user with SSH keys and an optional password hash, and packages.
//!
//! The template is a pure function of the context and the settings, so [`render`] is also the
//! native baseline the plugin benchmarks compare the Wasm component against.
//!
//! Settings: `packages` (comma- or space-separated, added to the `extra` value `packages`),
//! `sudo` (default `true`: passwordless sudo), `shell` (default `/bin/bash`),
//! `package_upgrade` (default `false`).
//!
//! ```
//! let context = cloudinit_basic::Context {
//!     hostname: "vm42".into(),
//!     fqdn: "vm42.lab.example.com".into(),
//!     username: "alice".into(),
//!     os: "debian-12".into(),
//!     ..Default::default()
//! };
//! let rendered = cloudinit_basic::render(&context)?;
//! assert!(rendered.user_data.starts_with("#cloud-config\n"));
//! # Ok::<(), cloudinit_basic::Error>(())
//! ```

mod options;
mod template;

pub use options::Options;
pub use porthole_plugin_support::cloud_config::{Context, Rendered};
pub use template::{render, render_with};

/// Why a context cannot be rendered.
pub type Error = porthole_plugin_support::cloud_config::InvalidContext;

#[cfg(target_arch = "wasm32")]
mod bindings;
