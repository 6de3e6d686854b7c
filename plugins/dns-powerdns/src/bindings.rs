//! The component's WIT face (`reverse-dns-provider` world) over [`crate::PowerDns`], with HTTP
//! through `wasi:http`. Compiled for wasm32 only.
#![allow(unsafe_code)] // wit-bindgen's generated ABI glue

use crate::PowerDns;

porthole_plugin_support::dns_provider_component!(PowerDns);
