//! Outbound HTTP for plugins: `wasi:http` routed through Porthole's own sender.
//!
//! `wasmtime-wasi-http` is built without its default sender, so every request a plugin makes
//! arrives at [`EgressHooks::send_request`]. There the request is checked against the plugin's
//! allow-list (`policy`), counted against its per-call cap, and handed to `connect`, which resolves
//! the name itself, checks every address, and connects to a checked address only, so a DNS answer
//! that changes between check and use (rebinding) cannot redirect the connection.

mod connect;
pub mod policy;
mod relay;
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
pub use relay::serve;
pub use tls::{TlsError, client_config};

use super::sandbox::CallState;
use crate::harness::Harness;

/// The largest response body, summed over all requests of one call.
pub const MAX_RESPONSE_BYTES_PER_CALL: u64 = 4 * 1024 * 1024;

/// The most one write to an outgoing body may carry; wasmtime's default is 1 MiB.
const OUTGOING_CHUNK_BYTES: usize = 64 * 1024;

/// Chunks an outgoing body holds on the host before the request is sent: the channel wasmtime
/// builds has one more slot than it is told.
const OUTGOING_BUFFERED_CHUNKS: usize = 2;

/// One plugin's egress settings, prepared once at load.
#[derive(Clone)]
pub struct EgressConfig {
    pub policy: Arc<EgressPolicy>,
    pub tls: Arc<rustls::ClientConfig>,
    pub max_requests: u32,
    /// The author's workbench, which journals (and may answer) every request; never in the
    /// daemon.
    pub harness: Option<Arc<Harness>>,
}

/// Where a call's requests go.
#[derive(Clone)]
pub enum Route {
    /// Out from here, under the plugin's policy.
    Direct(EgressConfig),
    /// To the daemon, which sends them under the policy it holds (from a plugin runner, which
    /// can open no socket).
    Relayed(crate::isolation::runner::Relay),
}

/// Per-call egress state: the hooks `wasmtime-wasi-http` calls into.
pub struct EgressHooks {
    plugin: Arc<str>,
    route: Route,
    requests: u32,
    budget: Budget,
    /// Host memory outgoing bodies may still hold: bodies a plugin writes into and never sends
    /// sit on the host, outside the guest's own memory limit, so they are charged against a
    /// budget of the same size.
    body_buffer_left: usize,
    /// Refusals of this call, reported with the call's outcome.
    denials: Arc<Mutex<Vec<String>>>,
}

impl EgressHooks {
    /// `body_buffers`: the host memory all outgoing bodies of the call may hold.
    pub fn new(plugin: Arc<str>, route: Route, body_buffers: usize) -> Self {
        Self {
            plugin,
            route,
            requests: 0,
            budget: Budget::new(MAX_RESPONSE_BYTES_PER_CALL),
            body_buffer_left: body_buffers,
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

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        OUTGOING_BUFFERED_CHUNKS - 1
    }

    /// Asked once for every outgoing body the plugin creates: each gets its chunk size out of
    /// the call's body budget, and once that is spent, one byte, so a plugin that opens body
    /// after body can no longer park memory on the host (writing still works, only slowly).
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        let chunk =
            (self.body_buffer_left / OUTGOING_BUFFERED_CHUNKS).clamp(1, OUTGOING_CHUNK_BYTES);
        self.body_buffer_left = self
            .body_buffer_left
            .saturating_sub(chunk * OUTGOING_BUFFERED_CHUNKS);
        chunk
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendOutcome> + Send> {
        let config = match &self.route {
            Route::Direct(config) => config.clone(),
            Route::Relayed(relay) => return Box::new(relay::send(relay.clone(), request, options)),
        };
        self.requests += 1;
        let checked = if self.requests > config.max_requests {
            Err(EgressDenied::TooManyRequests(config.max_requests))
        } else {
            request_origin(request.uri())
                .and_then(|origin| config.policy.check_origin(&origin).map(|()| origin))
        };
        let origin = match checked {
            Ok(origin) => origin,
            Err(reason) => {
                if let Some(harness) = &config.harness {
                    let (method, url) = (request.method().as_str(), request.uri().to_string());
                    harness.note_refusal(method, &url, reason.to_string());
                }
                let error = self.deny(&reason);
                return Box::new(async move { Err(error) });
            }
        };
        let exchange = connect::Exchange {
            plugin: self.plugin.clone(),
            origin,
            policy: config.policy,
            tls: config.tls,
            budget: self.budget.clone(),
            denials: self.denials.clone(),
            options: options.unwrap_or_default(),
        };
        match config.harness {
            None => Box::new(exchange.send(request)),
            Some(harness) => Box::new(async move {
                // Fixtures answer without connecting, so an address the host names is checked
                // here; a name is resolved and checked only when the network answers.
                if let Ok(address) = exchange.origin.host.parse::<std::net::IpAddr>()
                    && let Err(reason) = exchange.policy.check_address(address)
                {
                    let url = request.uri().to_string();
                    harness.note_refusal(request.method().as_str(), &url, reason.to_string());
                    deny(&exchange.plugin, &exchange.denials, &reason);
                    return Err(HttpError::DestinationIpProhibited);
                }
                let budget = exchange.budget.clone();
                let response = harness
                    .exchange(request, budget, |r| exchange.send(r))
                    .await?;
                let io: Box<dyn Future<Output = _> + Send> = Box::new(async { Ok(()) });
                Ok((response, io))
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_bodies_never_hold_more_host_memory_than_the_budget() {
        let config = EgressConfig {
            policy: Arc::new(EgressPolicy::default()),
            tls: client_config(None).unwrap(),
            max_requests: 16,
            harness: None,
        };
        let budget = 1024 * 1024;
        let mut hooks = EgressHooks::new(Arc::from("p"), Route::Direct(config), budget);
        let first = hooks.p2_outgoing_body_chunk_size();
        assert_eq!(
            first, OUTGOING_CHUNK_BYTES,
            "a normal body writes in full chunks"
        );
        // A plugin opening a thousand bodies (the resource table's cap) and filling each one.
        let held: usize = (1..1000)
            .map(|_| hooks.p2_outgoing_body_chunk_size() * OUTGOING_BUFFERED_CHUNKS)
            .sum::<usize>()
            + first * OUTGOING_BUFFERED_CHUNKS;
        assert!(held <= budget + 2 * 1000, "{held} bytes held on the host");
    }
}
