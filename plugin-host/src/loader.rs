//! Turning a manifest into a ready plugin, or into a refusal that names the problem.
//!
//! The same examination backs `porthole plugin check`, so an operator sees exactly the refusal the
//! daemon would give.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use url::Url;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::bindings::worlds::{
    BillingAdapterPre, CloudInitTemplatePre, DnsProviderPre, ReverseDnsProviderPre,
    TunnelProviderPre,
};
use crate::egress::{self, EgressConfig, EgressPolicy, Origin, Route};
use crate::engine::{self, Compiler, MAX_PLUGIN_MEMORY_BYTES};
use crate::error::LoadError;
use crate::harness::Harness;
use crate::isolation::Supervisor;
use crate::kv::KvBackend;
use crate::sandbox::{self, CallLimits, CallSetup, CallState};
use crate::store::KvStore;
use crate::worlds;
use crate::{PluginSpec, PluginWorld};

/// A component's outline, as `porthole plugin check` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub world: Option<PluginWorld>,
    /// The porthole:plugin version its exports target, e.g. `0.1.0`.
    pub contract: Option<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub size: usize,
    pub sha256: String,
}

/// A prepared instance of one world, cheap to clone.
#[derive(Clone)]
pub enum WorldPre {
    CloudInit(CloudInitTemplatePre<CallState>),
    /// A DNS provider, and its `reverse-dns` face when it exports one (contract 0.1.1 on).
    Dns(
        DnsProviderPre<CallState>,
        Option<ReverseDnsProviderPre<CallState>>,
    ),
    Tunnel(TunnelProviderPre<CallState>),
    Billing(BillingAdapterPre<CallState>),
}

impl WorldPre {
    /// Whether the plugin keeps reverse DNS (exports `reverse-dns`).
    pub fn reverse_dns(&self) -> bool {
        matches!(self, WorldPre::Dns(_, Some(_)))
    }
}

/// A plugin ready to be called.
pub struct Prepared {
    pub world: PluginWorld,
    pub pre: WorldPre,
    pub setup: CallSetup,
    pub timeout: Duration,
    /// The compiled component, for a runner to run.
    pub component: Component,
    /// The plugin's runner, when plugins run in processes of their own.
    pub runner: Option<Arc<Supervisor>>,
}

/// What the runtime knows besides the manifest.
pub struct Environment<'a> {
    pub engine: &'a Engine,
    pub compiler: &'a Compiler,
    pub kv: Option<Arc<dyn KvStore>>,
    pub protected_names: &'a [String],
    pub protected_addresses: &'a [IpAddr],
    pub harness: Option<Arc<Harness>>,
}

/// Loads `plugin`: read, verify the digest, compile, examine, link.
pub fn load(env: &Environment<'_>, plugin: &PluginSpec) -> Result<Prepared, LoadError> {
    let config = plugin;
    let bytes = std::fs::read(&plugin.path).map_err(|err| LoadError::Read {
        path: plugin.path.display().to_string(),
        detail: err.to_string(),
    })?;
    let actual = engine::sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(&config.sha256) {
        return Err(LoadError::DigestMismatch {
            expected: config.sha256.to_ascii_lowercase(),
            actual,
        });
    }
    let component = compile_component(
        || {
            env.compiler
                .compile(env.engine, &config.name, &actual, &bytes)
        },
        &bytes,
    )?;
    let world = examine(env.engine, &component, Some(config.world))?;
    let pre = prepare(env.engine, &component, world)?;
    let tls = egress::client_config(plugin.ca_file.as_deref()).map_err(|err| LoadError::Tls {
        detail: err.to_string(),
    })?;
    let policy = EgressPolicy {
        origins: config
            .allowed_hosts
            .iter()
            .filter_map(Origin::of_url)
            .collect(),
        allowed_addresses: config.allowed_addresses.clone(),
        protected_names: env.protected_names.to_vec(),
        protected_addresses: env.protected_addresses.to_vec(),
    };
    let limits = CallLimits {
        memory_bytes: (config.limits.memory_mib as usize * 1024 * 1024)
            .min(MAX_PLUGIN_MEMORY_BYTES),
        kv_quota_kib: config.limits.kv_quota_kib,
    };
    Ok(Prepared {
        world,
        pre,
        setup: CallSetup {
            plugin: Arc::from(config.name.as_str()),
            settings: Arc::new(plugin.settings.clone()),
            limits,
            egress: Route::Direct(EgressConfig {
                policy: Arc::new(policy),
                tls,
                max_requests: config.limits.max_http_requests,
                harness: env.harness.clone(),
            }),
            kv: KvBackend::Store(env.kv.clone()),
            harness: env.harness.clone(),
        },
        timeout: Duration::from_millis(config.limits.timeout_ms.max(1)),
        component,
        runner: None,
    })
}

fn compile_error(err: wasmtime::Error) -> LoadError {
    // wasmparser's messages can span lines (byte dumps); a refusal is shown on one.
    let detail = format!("{err:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    LoadError::Compile {
        detail: crate::text::truncate(&detail, crate::error::MAX_DETAIL).to_owned(),
    }
}

/// Compiles `bytes`, first telling apart the two mistakes operators make most, a file that is
/// no WebAssembly at all and a core module not yet made a component, which the parser would
/// only call a bad magic number or a parse failure. A component with more than one linear
/// memory is refused here, whichever engine compiled it: the memory limit is per memory.
fn compile_component(
    compile: impl FnOnce() -> wasmtime::Result<Component>,
    bytes: &[u8],
) -> Result<Component, LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: &[u8] = &[1, 0, 0, 0];
    if !bytes.starts_with(MAGIC) {
        return Err(LoadError::Compile {
            detail: "this is not a WebAssembly file (it does not start with \"\\0asm\")".into(),
        });
    }
    if bytes.get(4..8) == Some(CORE_MODULE) {
        return Err(LoadError::Compile {
            detail: "this is a core WebAssembly module; build it as a component (for \
                     wasm32-wasip2, or with `wasm-tools component new`)"
                .into(),
        });
    }
    let component = compile().map_err(compile_error)?;
    match component.resources_required() {
        Some(required) if required.num_memories > 1 => Err(LoadError::Compile {
            detail: format!(
                "the component defines {} linear memories; a plugin may have one",
                required.num_memories
            ),
        }),
        _ => Ok(component),
    }
}

/// Checks the component's exports and imports against `declared` (or the world it exports when
/// `None`) and returns the world.
pub fn examine(
    engine: &Engine,
    component: &Component,
    declared: Option<PluginWorld>,
) -> Result<PluginWorld, LoadError> {
    let (imports, exports) = names(engine, component);
    worlds::check_contract(exports.iter().map(String::as_str))?;
    let found = worlds::detect_world(exports.iter().map(String::as_str));
    let world = match (declared, found) {
        (Some(declared), _)
            if worlds::exports_world(declared, exports.iter().map(String::as_str)) =>
        {
            declared
        }
        (Some(declared), found) => {
            return Err(LoadError::WrongWorld {
                declared: worlds::world_name(declared).to_owned(),
                found: found.map_or_else(
                    || describe_exports(&exports),
                    |w| format!("the {} world's interface", worlds::world_name(w)),
                ),
            });
        }
        (None, Some(found)) => found,
        (None, None) => {
            return Err(LoadError::WrongWorld {
                declared: "(any plugin world)".to_owned(),
                found: describe_exports(&exports),
            });
        }
    };
    for import in &imports {
        worlds::check_import(world, import)?;
    }
    Ok(world)
}

fn describe_exports(exports: &[String]) -> String {
    if exports.is_empty() {
        "nothing".to_owned()
    } else {
        exports.join(", ")
    }
}

/// Import and export names of `component`.
pub fn names(engine: &Engine, component: &Component) -> (Vec<String>, Vec<String>) {
    let ty = component.component_type();
    let imports = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let exports = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    (imports, exports)
}

pub(crate) fn prepare(
    engine: &Engine,
    component: &Component,
    world: PluginWorld,
) -> Result<WorldPre, LoadError> {
    let link_error = |err: wasmtime::Error| LoadError::Link {
        detail: crate::text::truncate(&format!("{err:#}"), crate::error::MAX_DETAIL).to_owned(),
    };
    let linker = sandbox::linker(engine, world).map_err(link_error)?;
    let pre = linker.instantiate_pre(component).map_err(link_error)?;
    Ok(match world {
        PluginWorld::CloudInitTemplate => {
            WorldPre::CloudInit(CloudInitTemplatePre::new(pre).map_err(link_error)?)
        }
        PluginWorld::DnsProvider => {
            let (_, exports) = names(engine, component);
            let reverse = worlds::exports_reverse_dns(exports.iter().map(String::as_str))
                .then(|| ReverseDnsProviderPre::new(pre.clone()))
                .transpose()
                .map_err(link_error)?;
            WorldPre::Dns(DnsProviderPre::new(pre).map_err(link_error)?, reverse)
        }
        PluginWorld::TunnelProvider => {
            WorldPre::Tunnel(TunnelProviderPre::new(pre).map_err(link_error)?)
        }
        PluginWorld::BillingAdapter => {
            WorldPre::Billing(BillingAdapterPre::new(pre).map_err(link_error)?)
        }
    })
}

/// `porthole plugin check`: the outline of the component at `path`, and whether it is fit for
/// `world` (or for the world it exports).
pub fn check_file(
    path: &Path,
    world: Option<PluginWorld>,
) -> Result<(Inspection, Result<PluginWorld, LoadError>), LoadError> {
    let bytes = std::fs::read(path).map_err(|err| LoadError::Read {
        path: path.display().to_string(),
        detail: err.to_string(),
    })?;
    let plugin_engine = engine::PluginEngine::new().map_err(compile_error)?;
    let engine = plugin_engine.engine();
    let component = compile_component(|| Component::new(engine, &bytes), &bytes)?;
    let (imports, exports) = names(engine, &component);
    let mut inspection = Inspection {
        world: worlds::detect_world(exports.iter().map(String::as_str)),
        contract: worlds::contract_version(exports.iter().map(String::as_str)).map(str::to_owned),
        imports,
        exports,
        size: bytes.len(),
        sha256: engine::sha256_hex(&bytes),
    };
    let verdict = examine(engine, &component, world)
        .and_then(|world| prepare(engine, &component, world).map(|_| world));
    if let Ok(world) = &verdict {
        inspection.world = Some(*world);
    }
    Ok((inspection, verdict))
}

/// The outline as `porthole plugin check` prints it, one `key: value` line each.
pub fn describe(inspection: &Inspection) -> String {
    let mut text = format!(
        "world: {}\ncontract: porthole:plugin@{}\nsize: {} bytes\nsha256: {}\n",
        inspection.world.map_or("(none)", worlds::world_name),
        inspection.contract.as_deref().unwrap_or("(none)"),
        inspection.size,
        inspection.sha256
    );
    for import in &inspection.imports {
        text.push_str(&format!("import: {import}\n"));
    }
    for export in &inspection.exports {
        text.push_str(&format!("export: {export}\n"));
    }
    text
}

/// Host names and addresses of the Proxmox endpoints, which no plugin may reach by default.
pub async fn protected_endpoints(urls: &[Url]) -> (Vec<String>, Vec<IpAddr>) {
    let mut names = Vec::new();
    let mut addresses = Vec::new();
    for url in urls {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => addresses.push(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => addresses.push(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                names.push(name.trim_end_matches('.').to_ascii_lowercase());
                let port = url.port_or_known_default().unwrap_or(8006);
                let lookup = tokio::net::lookup_host((name.to_owned(), port));
                if let Ok(Ok(found)) = tokio::time::timeout(Duration::from_secs(2), lookup).await {
                    addresses.extend(found.map(|a| a.ip()));
                }
            }
            None => {}
        }
    }
    (names, addresses)
}
