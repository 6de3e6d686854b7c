//! Assembles the running daemon from a validated configuration: store, clusters, HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use tokio::task::JoinHandle;

use crate::api::{self, Shared, WebSettings};
use crate::auth::login_limit::{Limits, LoginLimiter};
use crate::config::{IsolationMode, PluginIsolationConfig, ResolvedConfig};
use crate::console::{ConsoleHub, ConsoleLimits};
use crate::inventory::Inventory;
use crate::lifecycle::{self, Lifecycle, Workers};
use crate::plugins::isolation::{self, Isolation, RunnerCommand};
use crate::plugins::{PluginRuntime, RuntimeOptions};
use crate::store::Store;

/// A daemon serving on a bound address until [`Daemon::stop`].
pub struct Daemon {
    addr: SocketAddr,
    state: api::AppState,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    housekeeping: JoinHandle<()>,
    breakers: JoinHandle<()>,
    /// Reloads the TLS certificate on SIGHUP, when the daemon serves TLS.
    tls_reloads: Option<JoinHandle<()>>,
    /// `/metrics` alone on `metrics_listen`, when configured.
    metrics_server: Option<JoinHandle<std::io::Result<()>>>,
    workers: Workers,
}

impl Daemon {
    /// Opens the database, builds the cluster clients and starts serving on `config.listen`.
    pub async fn start(config: ResolvedConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("while binding {}", config.listen))?;
        Self::start_on(config, listener).await
    }

    /// Like [`Daemon::start`] on a listener bound already, e.g. to an ephemeral port.
    pub async fn start_on(config: ResolvedConfig, listener: TcpListener) -> anyhow::Result<Self> {
        let store = Store::connect(&config.database).await?;
        register_clusters(&store, &config).await?;
        let inventory = Inventory::from_config(&config.clusters)?;
        import_catalogue(&store, &config).await?;
        let plugins = start_plugins(&store, &config).await?;
        let console = ConsoleHub::new(store.clone(), ConsoleLimits::from(&config.console));
        let lifecycle = Lifecycle::new(lifecycle::Parts {
            store: store.clone(),
            inventory: inventory.clone(),
            plugins: plugins.clone(),
            console: console.clone(),
            settings: lifecycle::Settings::from_config(&config.lifecycle),
            provisioning: config.lifecycle.clone(),
            public_url: config.public_url.clone(),
            data_key: config.data_key.clone(),
        });
        let workers = lifecycle.start_workers();
        let login_limiter = LoginLimiter::new(store.clone(), Limits::default());
        let state = Arc::new(Shared {
            console,
            lifecycle,
            plugins,
            store,
            inventory,
            web: WebSettings {
                public_url: config.public_url.clone(),
                trusted_proxies: config.trusted_proxies.clone(),
                ui_dir: config.ui_dir.clone().unwrap_or_else(api::default_ui_dir),
            },
            login_limiter,
            webhooks: api::WebhookGate::new(config.webhooks.max_in_flight),
            accounts: api::AccountSettings {
                operator_mfa: config.accounts.operator_mfa,
                data_key: config.data_key.clone(),
                webauthn: api::relying_party(&config.public_url),
            },
            started: Instant::now(),
        });
        let addr = listener.local_addr()?;
        let app = api::router(state.clone());
        let (tls, tls_reloads) = match &config.tls {
            Some(loaded) => {
                let (acceptor, reloads) = crate::tls::reloading(loaded.clone());
                (Some(acceptor), Some(reloads))
            }
            None => (None, None),
        };
        let (stop, stopped) = watch::channel(false);
        let metrics_server = match config.metrics_listen {
            Some(metrics_addr) => {
                let metrics_listener = TcpListener::bind(metrics_addr)
                    .await
                    .with_context(|| format!("while binding metrics_listen {metrics_addr}"))?;
                let app = api::metrics::router(state.clone());
                let stopped = stopped.clone();
                Some(tokio::spawn(crate::http_server::serve(
                    metrics_listener,
                    app,
                    None,
                    stopping(stopped),
                )))
            }
            None => None,
        };
        let server = tokio::spawn(crate::http_server::serve(
            listener,
            app,
            tls,
            stopping(stopped),
        ));
        let housekeeping = tokio::spawn(housekeeping(state.clone()));
        let breakers = tokio::spawn(crate::plugins::follow_breakers(
            state.plugins.clone(),
            state.store.clone(),
        ));
        tracing::info!(%addr, "porthole is serving");
        Ok(Self {
            addr,
            state,
            stop,
            server,
            housekeeping,
            breakers,
            tls_reloads,
            metrics_server,
            workers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Live console sessions: what the lifecycle engine revokes on suspend and terminate.
    pub fn console(&self) -> &Arc<ConsoleHub> {
        &self.state.console
    }

    /// Stops accepting, lets requests in flight finish, and returns the server's result.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        // Upgraded console connections are not requests the server waits for: tell them.
        self.state.console.close_all();
        self.housekeeping.abort();
        self.breakers.abort();
        if let Some(reloads) = &self.tls_reloads {
            reloads.abort();
        }
        self.workers.stop().await;
        self.server.await.context("the HTTP server task failed")??;
        if let Some(metrics_server) = self.metrics_server {
            metrics_server
                .await
                .context("the metrics server task failed")??;
        }
        Ok(())
    }
}

/// Resolves once `stop` says so (or its sender is gone).
async fn stopping(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|&stopped| stopped).await;
}

/// Runs until SIGINT or SIGTERM.
pub async fn serve(config: ResolvedConfig) -> anyhow::Result<()> {
    let daemon = Daemon::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    daemon.stop().await
}

pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Expired sessions are refused anyway; this only keeps the table small.
/// Hourly: deletes expired sign-in sessions, second-factor challenges and passkey
/// registrations, and sign-in attempts outside the rate limits' window.
async fn housekeeping(state: api::AppState) {
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(60 * 60));
    loop {
        every_hour.tick().await;
        match crate::store::sessions::purge_expired(&state.store).await {
            Ok(purged) if purged > 0 => tracing::debug!(purged, "purged expired sessions"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not purge expired sessions"),
        }
        match crate::store::second_factors::purge_expired(&state.store).await {
            Ok(purged) if purged > 0 => {
                tracing::debug!(purged, "purged expired sign-in challenges")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not purge sign-in challenges"),
        }
        let forgotten = state.login_limiter.forget_old(crate::store::now()).await;
        match forgotten {
            Ok(purged) if purged > 0 => tracing::debug!(purged, "purged old sign-in attempts"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not purge old sign-in attempts"),
        }
    }
}

/// The plugin runtime with every configured plugin loaded; a plugin that cannot load is kept as
/// refused, with the reason, and the daemon starts without it. A kernel that cannot lock a
/// plugin runner down stops the daemon, unless the operator chose in-process plugins.
async fn start_plugins(store: &Store, config: &ResolvedConfig) -> anyhow::Result<PluginRuntime> {
    let isolation = if config.plugins.is_empty() {
        // Nothing to isolate; the kernel's abilities do not matter.
        Isolation::InProcess
    } else {
        plugin_isolation(&config.plugin_isolation).await?
    };
    let cache_dir = config.state_dir.join("plugin-cache");
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache: Some((cache_dir, config.data_key.0)),
        protected_urls: config
            .clusters
            .iter()
            .flat_map(|c| c.api_urls.clone())
            .collect(),
        isolation,
        observer: Some(Arc::new(crate::metrics::PluginObserver)),
        ..crate::plugins::backed_by(store)
    })?;
    runtime.load_all(&config.plugins).await;
    Ok(runtime)
}

async fn plugin_isolation(config: &PluginIsolationConfig) -> anyhow::Result<Isolation> {
    if config.mode == IsolationMode::InProcess {
        tracing::warn!(
            "plugins run inside the daemon's process ([plugin_isolation] mode = \"in-process\"): \
             a WebAssembly runtime escape would reach every secret the daemon holds"
        );
        return Ok(Isolation::InProcess);
    }
    let program = match &config.runner {
        Some(runner) => runner.clone(),
        None => std::env::current_exe().context("cannot find this executable to run plugins")?,
    };
    let command = RunnerCommand {
        program,
        args: vec!["plugin-runner".into()],
    };
    let confinement = isolation::probe(&command).await.map_err(|reason| {
        anyhow::anyhow!(
            "plugins cannot be isolated here: {reason}. Set [plugin_isolation] mode = \
             \"in-process\" to run them inside the daemon instead"
        )
    })?;
    tracing::info!(?confinement, "plugins run in locked-down processes");
    Ok(Isolation::Process(command))
}

/// The configuration's plans and templates, refreshed at every start.
pub async fn import_catalogue(store: &Store, config: &ResolvedConfig) -> anyhow::Result<()> {
    lifecycle::catalogue::import_config(store, &config.plans, &config.templates)
        .await
        .context("while importing plans and templates")?;
    Ok(())
}

/// Clusters named in the configuration get a row, so services can reference them.
pub async fn register_clusters(store: &Store, config: &ResolvedConfig) -> anyhow::Result<()> {
    let names: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    crate::store::nodes::register_clusters(store, &names).await?;
    Ok(())
}
