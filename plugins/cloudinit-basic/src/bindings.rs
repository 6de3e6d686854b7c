//! The component's WIT face (`cloud-init-template` world): WIT types in, [`crate::render_with`]
//! over them, WIT types out. Compiled for wasm32 only.
#![allow(unsafe_code)] // wit-bindgen's generated ABI glue

use crate::{Context, Options, render_with};
use exports::porthole::plugin::cloud_init::{Guest, RenderContext, Rendered};
use porthole::plugin::types::PluginError;
use porthole_plugin_support::error;

wit_bindgen::generate!({
    path: "../../wit",
    world: "porthole:plugin/cloud-init-template",
    generate_all,
});

porthole_plugin_support::wit_glue!();

struct Template;

impl Guest for Template {
    fn render(context: RenderContext) -> Result<Rendered, PluginError> {
        let context = from_wit(context);
        let options = Options::from_settings(&HostSettings, &context);
        let rendered = render_with(&context, &options)
            .map_err(|err| to_wit_error(error::PluginError::from(err)))?;
        Ok(Rendered {
            user_data: rendered.user_data,
            network_config: rendered.network_config,
            meta_data: rendered.meta_data,
        })
    }
}

fn from_wit(context: RenderContext) -> Context {
    Context {
        hostname: context.hostname,
        fqdn: context.fqdn,
        username: context.username,
        ssh_keys: context.ssh_keys,
        password_hash: context.password_hash,
        tunnel_token: context.tunnel_token,
        os: context.os,
        extra: context.extra,
    }
}

export!(Template);
