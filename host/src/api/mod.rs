//! The HTTP API under `/api/v1`: thin handlers that parse, authorize, call one function of a
//! concern and map its error. Nothing here talks to SQLite or Proxmox directly except through
//! `store` query functions and `inventory`.

mod account;
mod accounts;
mod audit;
mod client_addr;
mod console;
mod error;
mod extract;
mod hooks;
mod inventory;
mod lifecycle;
pub mod metrics;
mod plugins;
mod power;
mod scopes;
mod session;
mod tokens;
mod ui;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use ipnet::IpNet;
use url::Url;

pub use accounts::create_user;
pub use client_addr::client_addr;
pub use error::{ApiError, ApiResult};
pub use hooks::WebhookGate;
pub use tokens::issue_token;
pub use ui::default_dir as default_ui_dir;

use crate::auth::login_limit::LoginLimiter;
use crate::inventory::Inventory;
use crate::lifecycle::Lifecycle;
use crate::store::Store;

/// What every handler can reach.
pub struct Shared {
    pub store: Store,
    pub inventory: Inventory,
    pub web: WebSettings,
    pub login_limiter: LoginLimiter,
    pub lifecycle: Lifecycle,
    pub plugins: crate::plugins::PluginRuntime,
    /// Live console sessions and their controls.
    pub console: Arc<crate::console::ConsoleHub>,
    /// Billing webhook deliveries in flight, per plugin.
    pub webhooks: hooks::WebhookGate,
    pub started: Instant,
}

/// How the daemon is reached from browsers.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub public_url: Url,
    pub trusted_proxies: Vec<IpNet>,
    /// The built web panel served at `/` (`panel-ui/dist`).
    pub ui_dir: std::path::PathBuf,
}

impl WebSettings {
    /// Cookies are `Secure` whenever browsers reach us over TLS, directly or through a proxy.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The public URL's origin as browsers send it in `Origin`, e.g. `https://panel.example.com`.
    pub fn origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }
}

pub type AppState = Arc<Shared>;

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/auth/login", post(session::login))
        .route("/auth/logout", post(session::logout))
        .route("/whoami", get(session::whoami))
        .route("/users", get(accounts::list).post(accounts::create))
        .route(
            "/users/{id}",
            get(accounts::show)
                .patch(accounts::update)
                .delete(accounts::remove),
        )
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", axum::routing::delete(tokens::remove))
        .route("/status", get(inventory::status))
        .route("/nodes", get(inventory::nodes))
        .route("/vms", get(inventory::vms))
        .route("/vms/{id}", get(inventory::vm))
        .route("/vms/{id}/console", post(console::create_token))
        .route("/vms/{id}/power", post(power::power))
        .route("/audit", get(audit::list))
        .route("/account/activity", get(audit::activity))
        .route("/account/password", post(account::change_password))
        .route("/console/ws", get(console::socket))
        .route("/console/sessions", get(console::sessions))
        .route(
            "/console/sessions/{id}",
            axum::routing::delete(console::close_session),
        )
        .route("/orders", post(lifecycle::order))
        .route("/services", get(lifecycle::list_services))
        .route("/services/{id}", get(lifecycle::service))
        .route("/services/{id}/events", get(lifecycle::events))
        .route("/services/{id}/{action}", post(lifecycle::operate))
        .route("/jobs/{id}/retry", post(lifecycle::retry_job))
        .route("/jobs/{id}/cancel", post(lifecycle::cancel_job))
        .route("/drift", get(lifecycle::drift).post(lifecycle::reconcile))
        .route("/plans", get(lifecycle::list_plans))
        .route("/plans/{name}", axum::routing::put(lifecycle::put_plan))
        .route("/plugins", get(plugins::list))
        .route("/plugins/{name}/reset", post(plugins::reset))
        .route("/templates", get(lifecycle::list_templates))
        .route(
            "/templates/{name}",
            axum::routing::put(lifecycle::put_template),
        )
        .route(
            "/users/{id}/quota",
            get(lifecycle::show_quota).put(lifecycle::put_quota),
        )
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::map_response(no_store));
    let transport_security = middleware::map_response_with_state(state.clone(), strict_transport);
    Router::new()
        .nest("/api/v1", v1)
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::for_operators))
        // A seed holds a VM's user-data, tokens included.
        .route(
            "/seed/{secret}/{file}",
            get(lifecycle::seed).layer(middleware::map_response(no_store)),
        )
        .route("/hooks/billing/{plugin}", post(hooks::billing))
        .fallback(ui::serve)
        .layer(transport_security)
        .with_state(state)
}

/// API answers carry accounts, tokens and VMs: no browser or proxy cache may keep them.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Browsers that reached the panel over TLS are told to never use plain HTTP for it again.
async fn strict_transport(State(state): State<AppState>, mut response: Response) -> Response {
    if state.web.secure_cookies() {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}
