//! The small part of Cloudflare's API v4 that Porthole's first-party plugins use — zones,
//! `dns_records`, and remotely managed tunnels (`cfd_tunnel`, their configurations and connector
//! tokens) — served on its own HTTPS port with the simulator's self-signed certificate.
//!
//! It answers like `api.cloudflare.com/client/v4`: bearer-token auth (400 `9106` without a
//! header, 403 `10000` "Authentication error" with a wrong token), every answer in the
//! `{success, errors, messages, result[, result_info]}` envelope, and Cloudflare's validation
//! errors (`81057` identical record, `81053` CNAME conflicts, `1022` tunnel with connections…).
//! It never touches the Proxmox side of the simulator.

mod auth;
mod dns_records;
mod envelope;
mod handle;
mod store;
mod time;
mod tunnels;
mod zones;

pub use store::{CloudflareDnsRecord, CloudflareState, CloudflareTunnel};
/// Calendar dates for the PVE side's timestamps too (backup names, task logs).
pub(crate) use time::civil_from_days;

use axum::Router;
use axum::routing::{delete, get};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Everything under `/client/v4`, behind the bearer-token check.
fn router(state: Arc<CloudflareState>) -> Router {
    let api = Router::new()
        .route("/zones", get(zones::list))
        .route("/zones/{zone_id}", get(zones::get_one))
        .route(
            "/zones/{zone_id}/dns_records",
            get(dns_records::list).post(dns_records::create),
        )
        .route(
            "/zones/{zone_id}/dns_records/{record_id}",
            get(dns_records::get_one)
                .put(dns_records::replace)
                .patch(dns_records::update)
                .delete(dns_records::remove),
        )
        .route(
            "/accounts/{account_id}/cfd_tunnel",
            get(tunnels::list).post(tunnels::create),
        )
        .route(
            "/accounts/{account_id}/cfd_tunnel/{tunnel_id}",
            get(tunnels::get_one).delete(tunnels::remove),
        )
        .route(
            "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connections",
            delete(tunnels::clean_connections),
        )
        .route(
            "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations",
            get(tunnels::get_configuration).put(tunnels::put_configuration),
        )
        .route(
            "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/token",
            get(tunnels::token),
        )
        .fallback(envelope::no_route)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state);
    Router::new()
        .nest("/client/v4", api)
        .fallback(envelope::no_route)
}

/// Accepts TLS connections until `shutdown` changes.
pub async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    state: Arc<CloudflareState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(state);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => { tracing::warn!(%err, "cloudflare accept failed"); continue; }
            },
            _ = shutdown.changed() => return,
        };
        let (tls, app, mut shutdown) = (tls.clone(), app.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = serve_connection(stream, tls, app) => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, tls: TlsAcceptor, app: Router) {
    let stream = match tls.accept(stream).await {
        Ok(stream) => stream,
        Err(err) => return tracing::debug!(%err, "cloudflare TLS handshake failed"),
    };
    let service = hyper_util::service::TowerToHyperService::new(app);
    if let Err(err) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%err, "cloudflare connection ended with an error");
    }
}
