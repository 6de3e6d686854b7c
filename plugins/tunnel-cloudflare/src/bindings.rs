//! The component's WIT face (`tunnel-provider` world) over [`crate::CloudflareTunnels`], with
//! HTTP through `wasi:http` and ids remembered in `kv`. Compiled for wasm32 only.
#![allow(unsafe_code)] // wit-bindgen's generated ABI glue

use crate::{CloudflareTunnels, TunnelSpec};
use exports::porthole::plugin::tunnel::{Guest, TunnelInfo, TunnelSpec as WitSpec};
use porthole::plugin::types::PluginError;
use porthole_plugin_support::wasi_http::WasiHttp;

wit_bindgen::generate!({
    path: "../../wit",
    world: "porthole:plugin/tunnel-provider",
    generate_all,
});

porthole_plugin_support::wit_glue!(kv);
porthole_plugin_support::wit_dns_glue!();

struct Provider;

impl Guest for Provider {
    fn create_tunnel(spec: WitSpec) -> Result<TunnelInfo, PluginError> {
        let spec = TunnelSpec {
            idempotency_key: spec.idempotency_key,
            name: spec.name,
            hostnames: spec.hostnames,
            http_service: spec.http_service,
        };
        let info = CloudflareTunnels::from_settings(&WasiHttp, &HostKv, &HostSettings)
            .and_then(|tunnels| tunnels.create_tunnel(&spec))
            .map_err(to_wit_error)?;
        Ok(TunnelInfo {
            id: info.id,
            connector_token: info.connector_token,
            hostnames: info.hostnames,
            dns_records: info.dns_records.into_iter().map(record_to_wit).collect(),
        })
    }

    fn delete_tunnel(id: String) -> Result<(), PluginError> {
        CloudflareTunnels::from_settings(&WasiHttp, &HostKv, &HostSettings)
            .and_then(|tunnels| tunnels.delete_tunnel(&id))
            .map_err(to_wit_error)
    }
}

export!(Provider);
