//! What Porthole's first-party plugins share. Everything here is plain Rust that compiles
//! natively, so the plugins' logic is unit-tested without a Wasm runtime; only
//! [`wasi_http::WasiHttp`] exists on wasm32 alone, where it sends requests through the host's
//! allow-listed `wasi:http/outgoing-handler`.

pub mod cloud_config;
pub mod cloudflare;
pub mod dns;
pub mod dns_name;
pub mod error;
pub mod http;
pub mod settings;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(target_arch = "wasm32")]
pub mod wasi_http;
mod wit_glue;
pub mod yaml;
