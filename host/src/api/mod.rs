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
mod openapi;
mod passkeys;
mod plugins;
mod power;
mod scopes;
mod second_factor;
mod self_service;
mod session;
mod ssh_keys;
mod tokens;
mod ui;

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use ipnet::IpNet;
use url::Url;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use accounts::create_user;
pub use client_addr::client_addr;
pub use error::{ApiError, ApiResult};
pub use hooks::WebhookGate;
pub use passkeys::relying_party;
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
    pub accounts: AccountSettings,
    pub started: Instant,
}

/// Sign-in policy, and the key second factors' secrets are sealed with.
pub struct AccountSettings {
    pub operator_mfa: crate::config::MfaPolicy,
    pub data_key: crate::config::DataKey,
    /// The passkey relying party: `None` when the public URL's host is an IP address.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
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

/// The routes under `/api/v1`, each registered with its OpenAPI description (`routes!` takes
/// the path and method from the handler's `#[utoipa::path]`), so the router and the document
/// are one list. Handlers sharing a path are registered together.
fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::whoami))
        .routes(routes!(second_factor::complete_sign_in))
        .routes(routes!(account::change_password))
        .routes(routes!(second_factor::status))
        .routes(routes!(second_factor::begin_totp))
        .routes(routes!(second_factor::confirm_totp))
        .routes(routes!(second_factor::remove_totp))
        .routes(routes!(second_factor::new_recovery_codes))
        .routes(routes!(passkeys::list))
        .routes(routes!(passkeys::begin_registration))
        .routes(routes!(passkeys::finish_registration))
        .routes(routes!(passkeys::remove))
        .routes(routes!(passkeys::begin_sign_in))
        .routes(routes!(audit::activity))
        .routes(routes!(accounts::list, accounts::create))
        .routes(routes!(accounts::show, accounts::update, accounts::remove))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::remove))
        .routes(routes!(inventory::status))
        .routes(routes!(inventory::nodes))
        .routes(routes!(inventory::vms))
        .routes(routes!(inventory::vm))
        .routes(routes!(inventory::ip_pools))
        .routes(routes!(console::create_token))
        .routes(routes!(power::power))
        .routes(routes!(self_service::reinstall))
        .routes(routes!(self_service::reset_password))
        .routes(routes!(self_service::graphs))
        .routes(routes!(
            self_service::list_backups,
            self_service::take_backup
        ))
        .routes(routes!(self_service::restore))
        .routes(routes!(
            self_service::set_reverse_dns,
            self_service::remove_reverse_dns
        ))
        .routes(routes!(
            self_service::list_snapshots,
            self_service::take_snapshot
        ))
        .routes(routes!(self_service::rollback))
        .routes(routes!(self_service::delete_snapshot))
        .routes(routes!(ssh_keys::list, ssh_keys::add))
        .routes(routes!(ssh_keys::remove))
        .routes(routes!(ssh_keys::list_of_user))
        .routes(routes!(audit::list))
        .routes(routes!(console::socket))
        .routes(routes!(console::sessions))
        .routes(routes!(console::close_session))
        .routes(routes!(lifecycle::order))
        .routes(routes!(lifecycle::list_services))
        .routes(routes!(lifecycle::service))
        .routes(routes!(lifecycle::events))
        .routes(routes!(lifecycle::operate))
        .routes(routes!(lifecycle::retry_job))
        .routes(routes!(lifecycle::cancel_job))
        .routes(routes!(lifecycle::drift, lifecycle::reconcile))
        .routes(routes!(lifecycle::list_plans))
        .routes(routes!(lifecycle::put_plan))
        .routes(routes!(plugins::list))
        .routes(routes!(plugins::reset))
        .routes(routes!(lifecycle::list_templates))
        .routes(routes!(lifecycle::put_template))
        .routes(routes!(lifecycle::show_quota, lifecycle::put_quota))
        .routes(routes!(openapi::document))
}

/// The OpenAPI document of `/api/v1`, built once.
pub fn openapi_document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> =
        LazyLock::new(|| openapi::finish(v1().into_openapi()));
    &DOCUMENT
}

pub fn router(state: AppState) -> Router {
    let (v1, _) = v1().split_for_parts();
    let v1 = v1
        .fallback(|| async { ApiError::NoSuchRoute })
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

#[cfg(test)]
mod tests {
    /// The document is complete because every route is registered with `routes!`, which takes
    /// it from the handler's description; a plain `.route(` would serve a path it leaves out.
    #[test]
    fn every_api_route_is_registered_with_its_description() {
        let source = include_str!("mod.rs");
        let start = source.find("fn v1()").unwrap_or_default();
        let end = source[start..]
            .find("\n}\n")
            .map_or(source.len(), |end| start + end);
        let body = &source[start..end];
        assert!(body.contains(".routes(routes!("), "the v1 builder moved");
        assert!(
            !body.contains(".route("),
            "a route without its OpenAPI description"
        );
    }
}
