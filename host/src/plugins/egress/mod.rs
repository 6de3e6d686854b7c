//! Outbound HTTP for plugins: `wasi:http` routed through Porthole's own sender.
//!
//! `wasmtime-wasi-http` is built without its default sender, so every request a plugin makes
//! arrives at [`EgressHooks::send_request`]. There the request is checked against the plugin's
//! allow-list (`policy`), counted against its per-call cap, and handed to `connect`, which resolves
//! the name itself, checks every address, and connects to a checked address only, so a DNS answer
//! that changes between check and use (rebinding) cannot redirect the connection.

mod connect;
pub mod policy;
mod tls;

use std::future::Future;
use std::sync::{Arc, Mutex};

use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpCtxView,
    WasiHttpHooks, WasiHttpView,
};

pub use connect::Budget;
pub use policy::{EgressDenied, EgressPolicy, Origin};
pub use tls::{TlsError, client_config};

use super::sandbox::CallState;

/// The largest response body, summed over all requests of one call.
pub const MAX_RESPONSE_BYTES_PER_CALL: u64 = 4 * 1024 * 1024;

/// One plugin's egress settings, prepared once at load.
#[derive(Clone)]
pub struct EgressConfig {
    pub policy: Arc<EgressPolicy>,
    pub tls: Arc<rustls::ClientConfig>,
    pub max_requests: u32,
}

/// Per-call egress state: the hooks `wasmtime-wasi-http` calls into.
pub struct EgressHooks {
    plugin: Arc<str>,
    config: EgressConfig,
    requests: u32,
    budget: Budget,
    /// Refusals of this call, reported with the call's outcome.
    denials: Arc<Mutex<Vec<String>>>,
}

impl EgressHooks {
    pub fn new(plugin: Arc<str>, config: EgressConfig) -> Self {
        Self {
            plugin,
            config,
            requests: 0,
            budget: Budget::new(MAX_RESPONSE_BYTES_PER_CALL),
            denials: Arc::default(),
        }
    }

    /// What was refused during the call.
    pub fn denials(&self) -> Vec<String> {
        self.denials.lock().map(|d| d.clone()).unwrap_or_default()
    }

    fn deny(&self, reason: &EgressDenied) -> HttpError {
        deny(&self.plugin, &self.denials, reason);
        match reason {
            EgressDenied::AddressNotPublic { .. } | EgressDenied::ProtectedAddress(_) => {
                HttpError::DestinationIpProhibited
            }
            _ => HttpError::HttpRequestDenied,
        }
    }
}

fn deny(plugin: &str, denials: &Mutex<Vec<String>>, reason: &EgressDenied) {
    tracing::warn!(plugin, %reason, "plugin request refused");
    if let Ok(mut denials) = denials.lock() {
        denials.push(format!("request refused: {reason}"));
    }
}

pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

type SendOutcome = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for EgressHooks {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(|name| policy::is_forbidden_request_header(name.as_str()))
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendOutcome> + Send> {
        self.requests += 1;
        if self.requests > self.config.max_requests {
            let error = self.deny(&EgressDenied::TooManyRequests(self.config.max_requests));
            return Box::new(async move { Err(error) });
        }
        let origin = match request_origin(request.uri()) {
            Ok(origin) => origin,
            Err(reason) => {
                let error = self.deny(&reason);
                return Box::new(async move { Err(error) });
            }
        };
        if let Err(reason) = self.config.policy.check_origin(&origin) {
            let error = self.deny(&reason);
            return Box::new(async move { Err(error) });
        }
        let exchange = connect::Exchange {
            plugin: self.plugin.clone(),
            origin,
            policy: self.config.policy.clone(),
            tls: self.config.tls.clone(),
            budget: self.budget.clone(),
            denials: self.denials.clone(),
            options: options.unwrap_or_default(),
        };
        Box::new(exchange.send(request))
    }
}

fn request_origin(uri: &http::Uri) -> Result<Origin, EgressDenied> {
    let scheme_text = uri.scheme_str().unwrap_or("https");
    let scheme = policy::Scheme::parse(scheme_text)
        .ok_or_else(|| EgressDenied::Scheme(scheme_text.to_owned()))?;
    let authority = uri
        .authority()
        .ok_or_else(|| EgressDenied::BadUrl("no host".to_owned()))?;
    // `http` keeps userinfo in the authority; a plugin has no use for it and it hides the host.
    if authority.as_str().contains('@') {
        return Err(EgressDenied::BadUrl("credentials in the URL".to_owned()));
    }
    Ok(Origin::of_request(
        scheme,
        authority.host(),
        authority.port_u16(),
    ))
}
