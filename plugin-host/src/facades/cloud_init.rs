//! `CloudInitTemplate`: renders a VM's first-boot documents.

use super::{invalid, reported};
use crate::PluginWorld;
use crate::bindings::cloud_init as wit;
use crate::data::{RenderContext, RenderedCloudInit};
use crate::error::CallError;
use crate::loader::WorldPre;
use crate::runtime::PluginRuntime;
use crate::validate;

/// A cloud-init template plugin, by name.
#[derive(Clone)]
pub struct CloudInitTemplate {
    runtime: PluginRuntime,
    name: String,
}

impl PluginRuntime {
    pub fn cloud_init_template(&self, name: &str) -> CloudInitTemplate {
        CloudInitTemplate {
            runtime: self.clone(),
            name: name.to_owned(),
        }
    }
}

impl CloudInitTemplate {
    /// Renders the documents for `context`; they are checked (`#cloud-config`, YAML, ≤ 64 KiB).
    pub async fn render(&self, context: &RenderContext) -> Result<RenderedCloudInit, CallError> {
        let argument = to_wit(context);
        let name = self.name.as_str();
        self.runtime
            .call(
                name,
                PluginWorld::CloudInitTemplate,
                move |store, pre| {
                    Box::pin(async move {
                        let WorldPre::CloudInit(pre) = pre else {
                            return Err(wasmtime::format_err!("not a cloud-init template"));
                        };
                        let instance = pre.instantiate_async(&mut *store).await?;
                        instance
                            .porthole_plugin_cloud_init()
                            .call_render(&mut *store, &argument)
                            .await
                    })
                },
                |result| {
                    let rendered = result.map_err(|err| reported(name, err))?;
                    let doc = RenderedCloudInit {
                        user_data: rendered.user_data,
                        network_config: rendered.network_config,
                        meta_data: rendered.meta_data,
                    };
                    validate::rendered(&doc).map_err(|detail| invalid(name, detail))?;
                    Ok(doc)
                },
            )
            .await
    }
}

fn to_wit(context: &RenderContext) -> wit::RenderContext {
    wit::RenderContext {
        hostname: context.hostname.clone(),
        fqdn: context.fqdn.clone(),
        username: context.username.clone(),
        ssh_keys: context.ssh_keys.clone(),
        password_hash: context.password_hash.clone(),
        tunnel_token: context.tunnel_token.clone(),
        plan: wit::PlanSize {
            cores: context.plan.cores,
            memory_mib: context.plan.memory_mib,
            disk_gib: context.plan.disk_gib,
        },
        os: context.os.clone(),
        extra: context.extra.clone(),
    }
}
