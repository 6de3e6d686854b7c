//! One component in the daemon's own sandbox, outside the daemon: `porthole plugin call` and
//! `plugin test` run every call through the same runtime, loader, limits, egress policy and
//! answer validation as the daemon, with `kv` in a scratch SQLite file and the harness watching
//! (and, with fixtures, answering) every outgoing request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{self, PluginIdentity};
use crate::plugins::harness::{Harness, HttpExchange};
use crate::plugins::isolation::{Isolation, RunnerCommand};
use crate::plugins::store::KvStore;
use crate::plugins::{
    CallError, DnsRecord, PluginRuntime, PluginSpec, PluginState, PluginWorld, PtrRecord,
    RenderContext, RuntimeOptions, TunnelSpec, WebhookRequest, worlds,
};
use crate::store::Store;

/// Where the component runs.
#[derive(Debug, Clone)]
pub enum Confinement {
    /// In a locked-down runner, as the daemon runs plugins by default: this program, or the
    /// given one, started as `plugin-runner`.
    Process(Option<PathBuf>),
    /// Inside this process, as with `[plugin_isolation] mode = "in-process"`.
    InProcess,
}

/// A component that passed `plugin check`, with the plugin entry it runs under.
pub struct Checked {
    pub spec: PluginSpec,
}

impl Checked {
    /// Checks `component` as `plugin check` does and reads its settings file: the plugin's
    /// `[[plugins]]` keys (settings, allowed_hosts, limits…), checked as the daemon checks them.
    pub fn new(component: &Path, settings_file: Option<&Path>) -> anyhow::Result<Self> {
        let component = std::path::absolute(component)
            .with_context(|| format!("cannot find {}", component.display()))?;
        let (inspection, verdict) = crate::plugins::check_file(&component, None)
            .map_err(|err| anyhow::anyhow!("{}: {err}", component.display()))?;
        let world = verdict.map_err(|err| anyhow::anyhow!("{}: {err}", component.display()))?;
        let identity = PluginIdentity {
            name: name_for(&component),
            world,
            path: component.clone(),
            sha256: inspection.sha256,
        };
        let spec = match settings_file {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let base = file.parent().unwrap_or(Path::new("."));
                config::parse_plugin_entry(&text, &file.display().to_string(), base, identity)?
            }
            None => config::parse_plugin_entry("", "(no settings file)", Path::new("."), identity)?,
        };
        Ok(Self { spec })
    }
}

/// What the workbench is opened on.
pub struct Setup<'a> {
    pub spec: PluginSpec,
    /// The SQLite file that holds the plugin's `kv`.
    pub kv_file: &'a Path,
    pub confinement: Confinement,
    /// Compiled components, kept between workbenches of one test run.
    pub cache: Option<(PathBuf, [u8; 32])>,
}

/// One loaded component and everything watching it.
pub struct Workbench {
    runtime: PluginRuntime,
    store: Store,
    pub name: String,
    pub world: PluginWorld,
    pub harness: Arc<Harness>,
    logs: Arc<Mutex<Vec<LogLine>>>,
}

/// A line the plugin logged (or printed), or a note of the runtime's about the call.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub level: String,
    /// `plugin` for the plugin's own lines, `porthole` for the runtime's.
    pub source: &'static str,
    pub message: String,
}

/// Everything one call produced.
#[derive(Debug, Serialize)]
pub struct CallReport {
    /// The validated answer, as the daemon would use it.
    pub result: Result<Value, Failure>,
    pub logs: Vec<LogLine>,
    pub http: Vec<HttpExchange>,
}

/// A failed call: the plugin's own `error-kind` (`not-found`, `upstream`, …) or the sandbox's
/// verdict (`timeout`, `resource-limit`, `trap`, `invalid-output`, `refused`, `runner`).
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub kind: String,
    pub message: String,
}

/// The component's file stem, made a name the daemon would accept.
fn name_for(component: &Path) -> String {
    let stem = component
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "plugin".to_owned()
    } else {
        name.to_owned()
    }
}

impl Workbench {
    /// Checks the component as `plugin check` does, then loads it as the daemon would.
    pub async fn open(setup: Setup<'_>) -> anyhow::Result<Self> {
        let spec = setup.spec;
        let store = Store::open(setup.kv_file).await?;
        let harness = Harness::new();
        let runtime = PluginRuntime::new(RuntimeOptions {
            kv: Some(Arc::new(store.clone())),
            isolation: isolation(setup.confinement).await?,
            harness: Some(harness.clone()),
            cache: setup.cache,
            // A test of failure cases must not switch the plugin off half-way.
            breaker_threshold: u32::MAX,
            ..RuntimeOptions::default()
        })?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let capture = tracing::subscriber::set_default(LogCapture {
            lines: logs.clone(),
        });
        runtime.load_all(std::slice::from_ref(&spec)).await;
        drop(capture);
        if let Some(status) = runtime.status().into_iter().next()
            && let PluginState::Refused { reason } = status.state
        {
            bail!("{}: {reason}", spec.path.display());
        }
        Ok(Self {
            runtime,
            store,
            world: spec.world,
            name: spec.name,
            harness,
            logs,
        })
    }

    /// The `kv` entries of the plugin, as text.
    pub async fn kv_entries(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let kv: &dyn KvStore = &self.store;
        const MOST: u32 = 1000;
        let keys = kv.list_keys(&self.name, "", MOST).await?;
        if keys.len() >= MOST as usize {
            anyhow::bail!("the plugin's kv holds {MOST} keys or more; a test compares fewer");
        }
        let mut entries = BTreeMap::new();
        for key in keys {
            if let Some(value) = kv.get(&self.name, &key).await? {
                entries.insert(key, String::from_utf8_lossy(&value).into_owned());
            }
        }
        Ok(entries)
    }

    /// Stores `entries` in the plugin's `kv`, as a test's starting state.
    pub async fn seed_kv(&self, entries: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let kv: &dyn KvStore = &self.store;
        for (key, value) in entries {
            kv.set(&self.name, key, value.clone().into_bytes(), u64::MAX)
                .await?;
        }
        Ok(())
    }

    /// Calls `function` (its WIT name) with `input` (its WIT parameters as a JSON object).
    pub async fn call(&self, function: &str, input: Value) -> anyhow::Result<CallReport> {
        let call = Call::parse(self.world, function, input)?;
        self.harness.take_journal();
        self.logs.lock().map(|mut l| l.clear()).ok();
        let capture = tracing::subscriber::set_default(LogCapture {
            lines: self.logs.clone(),
        });
        let result = call.run(&self.runtime, &self.name).await;
        drop(capture);
        Ok(CallReport {
            result: result.map_err(|err| Failure {
                kind: error_kind(&err).to_owned(),
                message: err.to_string(),
            }),
            logs: self.logs.lock().map(|l| l.clone()).unwrap_or_default(),
            http: self.harness.take_journal(),
        })
    }
}

async fn isolation(confinement: Confinement) -> anyhow::Result<Isolation> {
    let program = match confinement {
        Confinement::InProcess => return Ok(Isolation::InProcess),
        Confinement::Process(Some(program)) => program,
        Confinement::Process(None) => {
            std::env::current_exe().context("cannot find this executable to run the plugin")?
        }
    };
    let command = RunnerCommand {
        program,
        args: vec!["plugin-runner".into()],
    };
    crate::plugins::isolation::probe(&command)
        .await
        .map_err(|reason| {
            anyhow::anyhow!(
                "the plugin cannot be isolated here as the daemon would: {reason}; \
                 --in-process runs it inside this process instead"
            )
        })?;
    Ok(Isolation::Process(command))
}

/// The name of a failure's kind, as test files expect it.
pub fn error_kind(error: &CallError) -> &'static str {
    match error {
        CallError::Plugin { failure, .. } => match failure.kind {
            crate::plugins::FailureKind::InvalidInput => "invalid-input",
            crate::plugins::FailureKind::NotFound => "not-found",
            crate::plugins::FailureKind::Unauthorized => "unauthorized",
            crate::plugins::FailureKind::Conflict => "conflict",
            crate::plugins::FailureKind::RateLimited => "rate-limited",
            crate::plugins::FailureKind::Upstream => "upstream",
            crate::plugins::FailureKind::Internal => "internal",
        },
        CallError::Timeout { .. } => "timeout",
        CallError::ResourceLimit { .. } => "resource-limit",
        CallError::Trap { .. } => "trap",
        CallError::InvalidOutput { .. } => "invalid-output",
        CallError::Refused { .. }
        | CallError::WrongWorld { .. }
        | CallError::Unsupported { .. } => "refused",
        CallError::Runner { .. } | CallError::Interrupted { .. } => "runner",
        CallError::Unknown { .. } | CallError::Tripped { .. } | CallError::Busy => "unavailable",
    }
}

/// A webhook as a test writes it: the body as text, headers as pairs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookInput {
    #[serde(default = "post")]
    method: String,
    #[serde(default = "root")]
    path: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
}

fn post() -> String {
    "POST".to_owned()
}

fn root() -> String {
    "/".to_owned()
}

/// One call with its arguments, parsed from a function name and a JSON object.
enum Call {
    Render(RenderContext),
    UpsertRecord { zone: String, entry: DnsRecord },
    DeleteRecord { zone: String, id: String },
    ListRecords { zone: String },
    SetPtr { zone: String, entry: PtrRecord },
    RemovePtr { zone: String, name: String },
    CreateTunnel(TunnelSpec),
    DeleteTunnel { id: String },
    HandleWebhook(WebhookRequest),
}

/// The functions each world exports, by their WIT names (a DNS provider's `reverse-dns` ones
/// included, which only a provider built against contract 0.1.1 or later answers).
pub fn functions(world: PluginWorld) -> &'static [&'static str] {
    match world {
        PluginWorld::CloudInitTemplate => &["render"],
        PluginWorld::DnsProvider => &[
            "upsert-record",
            "delete-record",
            "list-records",
            "set-ptr",
            "remove-ptr",
        ],
        PluginWorld::TunnelProvider => &["create-tunnel", "delete-tunnel"],
        PluginWorld::BillingAdapter => &["handle-webhook"],
    }
}

impl Call {
    fn parse(world: PluginWorld, function: &str, input: Value) -> anyhow::Result<Self> {
        if !functions(world).contains(&function) {
            bail!(
                "a {} plugin exports {}; not {function:?}",
                worlds::world_name(world),
                functions(world).join(", ")
            );
        }
        let arg = |name: &str| -> anyhow::Result<Value> {
            input
                .get(name)
                .cloned()
                .with_context(|| format!("{function} takes {{\"{name}\": …}} in its input"))
        };
        Ok(match function {
            "render" => Self::Render(typed(function, "context", arg("context")?)?),
            "upsert-record" => Self::UpsertRecord {
                zone: typed(function, "zone", arg("zone")?)?,
                entry: typed(function, "entry", arg("entry")?)?,
            },
            "delete-record" => Self::DeleteRecord {
                zone: typed(function, "zone", arg("zone")?)?,
                id: typed(function, "id", arg("id")?)?,
            },
            "list-records" => Self::ListRecords {
                zone: typed(function, "zone", arg("zone")?)?,
            },
            "set-ptr" => Self::SetPtr {
                zone: typed(function, "zone", arg("zone")?)?,
                entry: typed(function, "entry", arg("entry")?)?,
            },
            "remove-ptr" => Self::RemovePtr {
                zone: typed(function, "zone", arg("zone")?)?,
                name: typed(function, "name", arg("name")?)?,
            },
            "create-tunnel" => Self::CreateTunnel(typed(function, "spec", arg("spec")?)?),
            "delete-tunnel" => Self::DeleteTunnel {
                id: typed(function, "id", arg("id")?)?,
            },
            _ => {
                let webhook: WebhookInput = typed(function, "request", arg("request")?)?;
                Self::HandleWebhook(WebhookRequest {
                    method: webhook.method,
                    path: webhook.path,
                    headers: webhook.headers,
                    body: webhook.body.into_bytes(),
                })
            }
        })
    }

    async fn run(self, runtime: &PluginRuntime, name: &str) -> Result<Value, CallError> {
        let json = |value: Result<Value, serde_json::Error>| {
            value.map_err(|err| CallError::InvalidOutput {
                name: name.to_owned(),
                detail: err.to_string(),
            })
        };
        match self {
            Self::Render(context) => {
                let rendered = runtime.cloud_init_template(name).render(&context).await?;
                json(serde_json::to_value(rendered))
            }
            Self::UpsertRecord { zone, entry } => {
                let id = runtime
                    .dns_provider(name)
                    .upsert_record(&zone, &entry)
                    .await?;
                Ok(Value::String(id))
            }
            Self::DeleteRecord { zone, id } => {
                runtime.dns_provider(name).delete_record(&zone, &id).await?;
                Ok(Value::Null)
            }
            Self::ListRecords { zone } => {
                let records = runtime.dns_provider(name).list_records(&zone).await?;
                json(serde_json::to_value(records))
            }
            Self::SetPtr { zone, entry } => {
                runtime.dns_provider(name).set_ptr(&zone, &entry).await?;
                Ok(Value::Null)
            }
            Self::RemovePtr { zone, name: ptr } => {
                runtime.dns_provider(name).remove_ptr(&zone, &ptr).await?;
                Ok(Value::Null)
            }
            Self::CreateTunnel(spec) => {
                let tunnel = runtime.tunnel_provider(name).create_tunnel(&spec).await?;
                json(serde_json::to_value(tunnel))
            }
            Self::DeleteTunnel { id } => {
                runtime.tunnel_provider(name).delete_tunnel(&id).await?;
                Ok(Value::Null)
            }
            Self::HandleWebhook(request) => {
                let outcome = runtime
                    .billing_adapter(name)
                    .handle_webhook(&request)
                    .await?;
                let mut value = json(serde_json::to_value(&outcome))?;
                // Bodies are bytes on the wire; a person reads them as text.
                value["response"]["body"] =
                    Value::String(String::from_utf8_lossy(&outcome.response.body).into_owned());
                Ok(value)
            }
        }
    }
}

/// Parameter `param` of `function`, as its Rust type, with a message that names it.
fn typed<T: serde::de::DeserializeOwned>(
    function: &str,
    param: &str,
    value: Value,
) -> anyhow::Result<T> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let at = err.path().to_string();
        let at = if at == "." {
            param.to_owned()
        } else {
            format!("{param}.{at}")
        };
        anyhow::anyhow!("{function}: {at}: {}", err.inner())
    })
}

/// Collects the events the runtime emits about the plugin while a call runs.
struct LogCapture {
    lines: Arc<Mutex<Vec<LogLine>>>,
}

impl tracing::Subscriber for LogCapture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("porthole")
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let target = event.metadata().target();
        // The runtime's verdict on the call is the report's result already.
        if !fields.about_a_plugin || target.ends_with("::runtime") {
            return;
        }
        // The plugin's own lines are written by the host API and the stdio capture.
        let source = if target.ends_with("host_api") || target.ends_with("stdio") {
            "plugin"
        } else {
            "porthole"
        };
        let mut message = fields.message;
        message.push_str(&fields.rest);
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(LogLine {
                level: event.metadata().level().to_string(),
                source,
                message,
            });
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    about_a_plugin: bool,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "plugin" => self.about_a_plugin = true,
            other => self.rest.push_str(&format!(" {other}={value:?}")),
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "plugin" => self.about_a_plugin = true,
            other => self.rest.push_str(&format!(" {other}={value}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_file_and_suit_the_daemon() {
        assert_eq!(name_for(Path::new("out/My_DNS.wasm")), "my-dns");
        assert_eq!(name_for(Path::new("__.wasm")), "plugin");
    }

    #[test]
    fn a_call_names_the_parameter_it_cannot_use() {
        let err = Call::parse(
            PluginWorld::DnsProvider,
            "upsert-record",
            serde_json::json!({"zone": "lab.example.com", "entry": {"name": "a"}}),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.starts_with("upsert-record: entry"), "{err}");
        let err = Call::parse(PluginWorld::DnsProvider, "render", Value::Null)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("upsert-record, delete-record, list-records, set-ptr, remove-ptr"),
            "{err}"
        );
    }
}
