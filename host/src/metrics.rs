//! Prometheus metrics, served as OpenMetrics text at `/metrics` (to operators' tokens, or on
//! `metrics_listen` without authentication).
//!
//! What happens deep inside the daemon (a Proxmox call, a plugin call, a job step, a console
//! opening or closing) is counted in [`INSTRUMENTS`], one set per process: those modules share
//! no state that could carry a registry to them. What the daemon already keeps is read when
//! scraped: jobs by state (the database), breakers and runner restarts (the plugin runtime),
//! the bytes its consoles relayed, live sessions included (the console hub).
//! Labels name kinds and classes, never a customer, a VM or a token.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{Db, StoreError};

/// The content type of what [`render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    pub kind: String,
    /// `to_vm` or `to_browser`.
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub kind: String,
    pub step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `GET nodes/{node}/qemu/{vmid}/status/current`: the path with its variable parts named.
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointOutcomeLabels {
    pub endpoint: String,
    /// `ok`, or the error's class (`unauthorized`, `transient`, …).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginOutcomeLabels {
    pub plugin: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub plugin: String,
    /// The HTTP status the daemon answered the billing system with.
    pub status: String,
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

/// 5 ms to about 80 s, doubling: a console opening, a Proxmox call, a plugin call, a clone.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Everything counted as it happens, in this process.
pub struct Instruments {
    pub console_sessions: Family<KindLabels, Gauge>,
    pub console_closes: Family<ReasonLabels, Counter>,
    pub console_open_seconds: Latencies<KindLabels>,
    pub job_step_seconds: Latencies<StepLabels>,
    pub job_step_retries: Family<StepLabels, Counter>,
    pub proxmox_requests: Family<EndpointOutcomeLabels, Counter>,
    pub proxmox_request_seconds: Latencies<EndpointLabels>,
    pub plugin_calls: Family<PluginOutcomeLabels, Counter>,
    pub plugin_call_seconds: Latencies<PluginLabels>,
    pub webhook_deliveries: Family<WebhookLabels, Counter>,
}

pub static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| Instruments {
    console_sessions: Family::default(),
    console_closes: Family::default(),
    console_open_seconds: Family::new_with_constructor(latency_histogram),
    job_step_seconds: Family::new_with_constructor(latency_histogram),
    job_step_retries: Family::default(),
    proxmox_requests: Family::default(),
    proxmox_request_seconds: Family::new_with_constructor(latency_histogram),
    plugin_calls: Family::default(),
    plugin_call_seconds: Family::new_with_constructor(latency_histogram),
    webhook_deliveries: Family::default(),
});

impl Instruments {
    pub fn proxmox_call(&self, endpoint: String, outcome: &str, took: Duration) {
        self.proxmox_request_seconds
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.clone(),
            })
            .observe(took.as_secs_f64());
        self.proxmox_requests
            .get_or_create(&EndpointOutcomeLabels {
                endpoint,
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn webhook(&self, plugin: &str, status: u16) {
        self.webhook_deliveries
            .get_or_create(&WebhookLabels {
                plugin: plugin.to_owned(),
                status: status.to_string(),
            })
            .inc();
    }
}

/// Plugin calls, as the plugin runtime reports them.
#[derive(Debug)]
pub struct PluginObserver;

impl porthole_plugin_host::CallObserver for PluginObserver {
    fn call_finished(&self, plugin: &str, outcome: &str, took: Duration) {
        let instruments = &*INSTRUMENTS;
        instruments
            .plugin_call_seconds
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
            })
            .observe(took.as_secs_f64());
        instruments
            .plugin_calls
            .get_or_create(&PluginOutcomeLabels {
                plugin: plugin.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

/// States read when scraped.
pub struct Snapshot {
    /// `(kind, to_vm, to_browser)`: bytes this daemon's consoles relayed, live ones included.
    pub console_bytes: Vec<(&'static str, u64, u64)>,
    /// `(kind, state, count)` of every job, on every daemon sharing the database.
    pub jobs: Vec<(String, String, i64)>,
    /// Every configured plugin's breaker and runner.
    pub plugins: Vec<PluginSnapshot>,
}

pub struct PluginSnapshot {
    pub name: String,
    pub tripped: bool,
    /// Runners started after the first, since this daemon started.
    pub runner_restarts: u32,
}

impl Snapshot {
    pub async fn read(
        db: &impl Db,
        plugins: &crate::plugins::PluginRuntime,
        console: &crate::console::ConsoleHub,
    ) -> Result<Self, StoreError> {
        let jobs = crate::store::jobs::count_by_kind_and_state(db).await?;
        let plugins = plugins
            .status()
            .into_iter()
            .map(|status| PluginSnapshot {
                tripped: matches!(
                    status.state,
                    porthole_plugin_host::PluginState::Tripped { .. }
                ),
                runner_restarts: status.runner.map_or(0, |runner| runner.restarts),
                name: status.name,
            })
            .collect();
        Ok(Self {
            console_bytes: console.relayed_bytes(),
            jobs,
            plugins,
        })
    }
}

/// Every metric, as OpenMetrics text.
pub fn render(snapshot: Snapshot) -> Result<String, std::fmt::Error> {
    let instruments = &*INSTRUMENTS;
    let mut registry = Registry::with_prefix("porthole");
    registry.register(
        "console_sessions",
        "Live console sessions relayed by this daemon",
        instruments.console_sessions.clone(),
    );
    registry.register(
        "console_bytes",
        "Bytes relayed by this daemon's console sessions, live ones included",
        console_bytes(&snapshot.console_bytes),
    );
    registry.register(
        "console_closes",
        "Console sessions ended, by reason",
        instruments.console_closes.clone(),
    );
    registry.register(
        "console_open_seconds",
        "From a browser's WebSocket to a relaying session: Proxmox ticket, upstream handshakes",
        instruments.console_open_seconds.clone(),
    );
    registry.register(
        "jobs",
        "Jobs on this database, by kind and state",
        job_gauges(&snapshot.jobs),
    );
    let parked: i64 = snapshot
        .jobs
        .iter()
        .filter(|(_, state, _)| state == "parked")
        .map(|(_, _, count)| count)
        .sum();
    let parked_gauge = Gauge::<i64>::default();
    parked_gauge.set(parked);
    registry.register("jobs_parked", "Jobs stopped for an operator", parked_gauge);
    registry.register(
        "job_step_seconds",
        "Job steps run by this daemon, by kind and step",
        instruments.job_step_seconds.clone(),
    );
    registry.register(
        "job_step_retries",
        "Job steps that failed and will be tried again",
        instruments.job_step_retries.clone(),
    );
    registry.register(
        "proxmox_requests",
        "Proxmox API calls, by endpoint and outcome (after retries)",
        instruments.proxmox_requests.clone(),
    );
    registry.register(
        "proxmox_request_seconds",
        "Proxmox API call latency, retries included",
        instruments.proxmox_request_seconds.clone(),
    );
    registry.register(
        "plugin_calls",
        "Plugin calls, by plugin and outcome",
        instruments.plugin_calls.clone(),
    );
    registry.register(
        "plugin_call_seconds",
        "Plugin call latency",
        instruments.plugin_call_seconds.clone(),
    );
    registry.register(
        "plugin_breaker_open",
        "1 while a plugin is switched off by its circuit breaker",
        breaker_gauges(&snapshot.plugins),
    );
    registry.register(
        "plugin_runner_restarts",
        "Plugin runner processes started again after a crash, hang or bad frame",
        runner_restarts(&snapshot.plugins),
    );
    registry.register(
        "webhook_deliveries",
        "Billing webhook deliveries, by plugin and the status answered",
        instruments.webhook_deliveries.clone(),
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

fn console_bytes(totals: &[(&'static str, u64, u64)]) -> Family<BytesLabels, Counter> {
    let family = Family::<BytesLabels, Counter>::default();
    for (kind, to_vm, to_browser) in totals {
        for (direction, bytes) in [("to_vm", to_vm), ("to_browser", to_browser)] {
            family
                .get_or_create(&BytesLabels {
                    kind: (*kind).to_owned(),
                    direction: direction.to_owned(),
                })
                .inc_by(*bytes);
        }
    }
    family
}

fn job_gauges(jobs: &[(String, String, i64)]) -> Family<JobLabels, Gauge> {
    let family = Family::<JobLabels, Gauge>::default();
    for (kind, state, count) in jobs {
        family
            .get_or_create(&JobLabels {
                kind: kind.clone(),
                state: state.clone(),
            })
            .set(*count);
    }
    family
}

fn breaker_gauges(plugins: &[PluginSnapshot]) -> Family<PluginLabels, Gauge> {
    let family = Family::<PluginLabels, Gauge>::default();
    for plugin in plugins {
        family
            .get_or_create(&PluginLabels {
                plugin: plugin.name.clone(),
            })
            .set(i64::from(plugin.tripped));
    }
    family
}

/// A counter made afresh at each scrape holding the runtime's own running total.
fn runner_restarts(plugins: &[PluginSnapshot]) -> Family<PluginLabels, Counter> {
    let family = Family::<PluginLabels, Counter>::default();
    for plugin in plugins {
        family
            .get_or_create(&PluginLabels {
                plugin: plugin.name.clone(),
            })
            .inc_by(u64::from(plugin.runner_restarts));
    }
    family
}
