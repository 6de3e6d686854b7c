//! `TunnelProvider`: creates and deletes outbound tunnels.

use super::{invalid, reported, unexpected};
use crate::PluginWorld;
use crate::data::{TunnelInfo, TunnelSpec};
use crate::error::CallError;
use crate::invoke::{Answer, Invocation};
use crate::runtime::PluginRuntime;
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

impl TunnelProvider {
    /// Creates the tunnel (or returns the one with the same idempotency key). The result may
    /// only serve, and ask DNS records for, the requested host names.
    pub async fn create_tunnel(&self, spec: &TunnelSpec) -> Result<TunnelInfo, CallError> {
        let name = self.name.as_str();
        let invocation = Invocation::CreateTunnel { spec: spec.clone() };
        let check = |answer| match answer {
            Answer::Tunnel(created) => {
                let info = created.map_err(|failure| reported(name, failure))?;
                validate::tunnel(&info, &spec.hostnames).map_err(|d| invalid(name, d))?;
                Ok(info)
            }
            other => Err(unexpected(name, &other)),
        };
        let world = PluginWorld::TunnelProvider;
        self.runtime.call(name, world, invocation, check).await
    }

    /// Deletes tunnel `id`; deleting a missing tunnel succeeds.
    pub async fn delete_tunnel(&self, id: &str) -> Result<(), CallError> {
        let name = self.name.as_str();
        let invocation = Invocation::DeleteTunnel { id: id.to_owned() };
        let check = |answer| match answer {
            Answer::Done(done) => done.map_err(|failure| reported(name, failure)),
            other => Err(unexpected(name, &other)),
        };
        let world = PluginWorld::TunnelProvider;
        self.runtime.call(name, world, invocation, check).await
    }
}
