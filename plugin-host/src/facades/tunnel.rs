//! `TunnelProvider`: creates and deletes outbound tunnels.

use super::{invalid, record_from_wit, reported};
use crate::PluginWorld;
use crate::bindings::tunnel as wit;
use crate::bindings::worlds::TunnelProviderPre;
use crate::data::{TunnelInfo, TunnelSpec};
use crate::error::CallError;
use crate::loader::WorldPre;
use crate::runtime::PluginRuntime;
use crate::sandbox::CallState;
use crate::validate;

/// A tunnel provider plugin, by name.
#[derive(Clone)]
pub struct TunnelProvider {
    runtime: PluginRuntime,
    name: String,
}

impl PluginRuntime {
    pub fn tunnel_provider(&self, name: &str) -> TunnelProvider {
        TunnelProvider {
            runtime: self.clone(),
            name: name.to_owned(),
        }
    }
}

fn tunnel_pre(pre: WorldPre) -> wasmtime::Result<TunnelProviderPre<CallState>> {
    match pre {
        WorldPre::Tunnel(pre) => Ok(pre),
        _ => Err(wasmtime::format_err!("not a tunnel provider")),
    }
}

impl TunnelProvider {
    /// Creates the tunnel (or returns the one with the same idempotency key). The result may
    /// only serve, and ask DNS records for, the requested host names.
    pub async fn create_tunnel(&self, spec: &TunnelSpec) -> Result<TunnelInfo, CallError> {
        let name = self.name.as_str();
        let requested = spec.hostnames.clone();
        let argument = wit::TunnelSpec {
            idempotency_key: spec.idempotency_key.clone(),
            name: spec.name.clone(),
            hostnames: spec.hostnames.clone(),
            http_service: spec.http_service.clone(),
        };
        self.runtime
            .call(
                name,
                PluginWorld::TunnelProvider,
                move |store, pre| {
                    Box::pin(async move {
                        let instance = tunnel_pre(pre)?.instantiate_async(&mut *store).await?;
                        let tunnel = instance.porthole_plugin_tunnel();
                        tunnel.call_create_tunnel(&mut *store, &argument).await
                    })
                },
                |result| {
                    let created = result.map_err(|err| reported(name, err))?;
                    let info = TunnelInfo {
                        id: created.id,
                        connector_token: created.connector_token,
                        hostnames: created.hostnames,
                        dns_records: created
                            .dns_records
                            .into_iter()
                            .map(record_from_wit)
                            .collect(),
                    };
                    validate::tunnel(&info, &requested).map_err(|d| invalid(name, d))?;
                    Ok(info)
                },
            )
            .await
    }

    /// Deletes tunnel `id`; deleting a missing tunnel succeeds.
    pub async fn delete_tunnel(&self, id: &str) -> Result<(), CallError> {
        let name = self.name.as_str();
        let id = id.to_owned();
        self.runtime
            .call(
                name,
                PluginWorld::TunnelProvider,
                move |store, pre| {
                    Box::pin(async move {
                        let instance = tunnel_pre(pre)?.instantiate_async(&mut *store).await?;
                        let tunnel = instance.porthole_plugin_tunnel();
                        tunnel.call_delete_tunnel(&mut *store, &id).await
                    })
                },
                |result| result.map_err(|err| reported(name, err)),
            )
            .await
    }
}
