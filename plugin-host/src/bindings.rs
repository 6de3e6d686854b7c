//! Every `bindgen!` of the plugin contract, in one place. The rest of `plugins` reaches the
//! generated types only through the re-exports at the bottom.
//!
//! The DNS world is generated first and owns the shared interfaces (`types`, `host`, `kv`); the
//! other worlds reuse them through `with`, so one Rust type exists per WIT type and the host
//! implements each import once.

#![allow(clippy::too_many_arguments)]

mod dns_provider {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "porthole:plugin/dns-provider",
        imports: { "porthole:plugin/kv": async, default: trappable },
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        require_store_data_send: true,
    });
}

mod reverse_dns_provider {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "porthole:plugin/reverse-dns-provider",
        exports: { default: async },
        with: {
            "porthole:plugin/types": super::dns_provider::porthole::plugin::types,
            "porthole:plugin/host": super::dns_provider::porthole::plugin::host,
            "porthole:plugin/kv": super::dns_provider::porthole::plugin::kv,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        require_store_data_send: true,
    });
}

mod tunnel_provider {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "porthole:plugin/tunnel-provider",
        exports: { default: async },
        with: {
            "porthole:plugin/types": super::dns_provider::porthole::plugin::types,
            "porthole:plugin/host": super::dns_provider::porthole::plugin::host,
            "porthole:plugin/kv": super::dns_provider::porthole::plugin::kv,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        require_store_data_send: true,
    });
}

mod billing_adapter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "porthole:plugin/billing-adapter",
        exports: { default: async },
        with: {
            "porthole:plugin/types": super::dns_provider::porthole::plugin::types,
            "porthole:plugin/host": super::dns_provider::porthole::plugin::host,
            "porthole:plugin/kv": super::dns_provider::porthole::plugin::kv,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        require_store_data_send: true,
    });
}

mod cloud_init_template {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "porthole:plugin/cloud-init-template",
        exports: { default: async },
        with: {
            "porthole:plugin/types": super::dns_provider::porthole::plugin::types,
            "porthole:plugin/host": super::dns_provider::porthole::plugin::host,
        },
        require_store_data_send: true,
    });
}

pub use dns_provider::porthole::plugin::{host, kv, types};

pub mod dns {
    pub use super::dns_provider::exports::porthole::plugin::dns::StoredRecord;
}

pub mod reverse_dns {
    pub use super::reverse_dns_provider::exports::porthole::plugin::reverse_dns::PtrRecord;
}

pub mod worlds {
    pub use super::billing_adapter::BillingAdapterPre;
    pub use super::cloud_init_template::CloudInitTemplatePre;
    pub use super::dns_provider::DnsProviderPre;
    pub use super::reverse_dns_provider::ReverseDnsProviderPre;
    pub use super::tunnel_provider::TunnelProviderPre;
}

pub mod tunnel {
    pub use super::tunnel_provider::exports::porthole::plugin::tunnel::{TunnelInfo, TunnelSpec};
}

pub mod billing {
    pub use super::billing_adapter::exports::porthole::plugin::billing::{
        BillingEvent, ServiceRef, WebhookOutcome, WebhookRequest,
    };
}

pub mod cloud_init {
    pub use super::cloud_init_template::exports::porthole::plugin::cloud_init::{
        PlanSize, RenderContext, Rendered,
    };
}
