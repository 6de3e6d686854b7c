//! `CloudInitTemplate`: renders a VM's first-boot documents.

use super::{invalid, reported, unexpected};
use crate::PluginWorld;
use crate::data::{RenderContext, RenderedCloudInit};
use crate::error::CallError;
use crate::invoke::{Answer, Invocation};
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
        let name = self.name.as_str();
        let invocation = Invocation::Render {
            context: context.clone(),
        };
        let check = |answer| match answer {
            Answer::Rendered(rendered) => {
                let doc = rendered.map_err(|failure| reported(name, failure))?;
                validate::rendered(&doc).map_err(|detail| invalid(name, detail))?;
                Ok(doc)
            }
            other => Err(unexpected(name, &other)),
        };
        let world = PluginWorld::CloudInitTemplate;
        self.runtime.call(name, world, invocation, check).await
    }
}
