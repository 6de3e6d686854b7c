//! The second pass: everything types cannot check, and resolving secrets.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use url::Url;

use super::database::Database;
use super::error::ConfigError;
use super::locate::{Locator, Step};
use super::model::{
    AccountsConfig, ClusterConfig, Config, ConsoleConfig, DataKeySource, DeliveryKind,
    IpPoolConfig, LifecycleConfig, LogFormat, PlanConfig, PluginConfig, PluginIsolationConfig,
    PluginLimits, SettingValue, TemplateConfig, TlsConfig, TlsTrustConfig, WebhooksConfig,
};
use super::secret::{DataKey, Secret, SecretSource};
use crate::proxmox::{TlsTrust, parse_fingerprint};
use crate::tls::{LoadedTls, TlsError, TlsFiles};
use porthole_plugin_host::PluginSpec;

/// A configuration that passed every check, with its secrets read.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub trusted_proxies: Vec<IpNet>,
    pub database: Database,
    /// Where the daemon keeps files of its own.
    pub state_dir: PathBuf,
    pub data_key: DataKey,
    pub clusters: Vec<ResolvedCluster>,
    pub plans: Vec<PlanConfig>,
    pub templates: Vec<TemplateConfig>,
    pub plugins: Vec<PluginSpec>,
    pub console: ConsoleConfig,
    pub lifecycle: LifecycleConfig,
    pub webhooks: WebhooksConfig,
    pub accounts: AccountsConfig,
    pub plugin_isolation: PluginIsolationConfig,
    /// The built web panel, resolved against the configuration's directory.
    pub ui_dir: Option<PathBuf>,
    /// The certificate to serve HTTPS with, as it loaded when checked.
    pub tls: Option<LoadedTls>,
    pub metrics_listen: Option<SocketAddr>,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct ResolvedCluster {
    pub name: String,
    pub api_urls: Vec<Url>,
    pub token_id: String,
    pub token_secret: Secret,
    pub trust: TlsTrust,
}

type Checked<T> = Result<T, ConfigError>;

pub(super) fn resolve(config: Config, at: &Locator<'_>, base: &Path) -> Checked<ResolvedConfig> {
    check_public_url(&config.public_url, at)?;
    let data_key = read_data_key(&config.data_key, at, base)?;
    let database =
        Database::resolve(&config.database, &config.postgres, base).map_err(|(key, message)| {
            match key.split_once('.') {
                Some((table, key)) => at.error(&[Step::Key(table), Step::Key(key)], message),
                None => at.error(&[Step::Key("database")], message),
            }
        })?;
    let clusters = resolve_clusters(&config.clusters, at, base)?;
    check_templates(&config, at)?;
    check_plans(&config, at)?;
    let plugins = resolve_plugins(&config.plugins, at, base)?;
    check_console(&config.console, at)?;
    check_webhooks(&config.webhooks, at)?;
    check_lifecycle(&config.lifecycle, at)?;
    check_lifecycle_plugins(&config.lifecycle, &config.plugins, at)?;
    let tls = config
        .tls
        .as_ref()
        .map(|tls| check_tls(tls, at, base))
        .transpose()?;
    if config.metrics_listen == Some(config.listen) {
        let here = [Step::Key("metrics_listen")];
        return Err(at.error(&here, "must differ from `listen`"));
    }
    let mut lifecycle = config.lifecycle;
    lifecycle.cloud_init.dir = lifecycle.cloud_init.dir.map(|dir| base.join(dir));
    Ok(ResolvedConfig {
        listen: config.listen,
        public_url: config.public_url,
        trusted_proxies: config.trusted_proxies,
        state_dir: match (&config.state_dir, &database) {
            (Some(dir), _) => base.join(dir),
            (None, Database::Sqlite(file)) => file.parent().unwrap_or(base).to_path_buf(),
            (None, Database::Postgres(_)) => base.to_path_buf(),
        },
        database,
        data_key,
        clusters,
        plans: config.plans,
        templates: config.templates,
        plugins,
        console: config.console,
        lifecycle,
        webhooks: config.webhooks,
        accounts: config.accounts,
        plugin_isolation: PluginIsolationConfig {
            runner: config
                .plugin_isolation
                .runner
                .map(|runner| base.join(runner)),
            ..config.plugin_isolation
        },
        ui_dir: config.ui_dir.map(|dir| base.join(dir)),
        tls,
        metrics_listen: config.metrics_listen,
        log_format: config.log_format,
    })
}

/// Loads the certificate now, so a bad one is refused at the key that names it; the daemon
/// serves what loaded here rather than reading the files twice at start.
fn check_tls(tls: &TlsConfig, at: &Locator<'_>, base: &Path) -> Checked<LoadedTls> {
    let files = TlsFiles {
        cert_file: base.join(&tls.cert_file),
        key_file: base.join(&tls.key_file),
    };
    let err = match files.load() {
        Ok(config) => return Ok(LoadedTls { files, config }),
        Err(err) => err,
    };
    let key = match &err {
        TlsError::Read { path, .. } if *path == files.key_file => "key_file",
        TlsError::NoKey(_) | TlsError::KeyMismatch { .. } => "key_file",
        _ => "cert_file",
    };
    Err(at.error(&[Step::Key("tls"), Step::Key(key)], err.to_string()))
}

fn check_public_url(url: &Url, at: &Locator<'_>) -> Checked<()> {
    let path = [Step::Key("public_url")];
    if !matches!(url.scheme(), "http" | "https") {
        return Err(at.error(&path, "must be an http:// or https:// URL"));
    }
    if url.host_str().is_none() {
        return Err(at.error(&path, "must name a host"));
    }
    Ok(())
}

fn read_data_key(source: &DataKeySource, at: &Locator<'_>, base: &Path) -> Checked<DataKey> {
    let secret = SecretSource {
        file: source.file.clone(),
        env: source.env.clone(),
    };
    let path = [Step::Key("data_key")];
    let text = secret
        .read(base)
        .map_err(|err| at.error(&path, err.to_string()))?;
    DataKey::parse(text.expose()).map_err(|message| at.error(&path, message))
}

fn resolve_clusters(
    clusters: &[ClusterConfig],
    at: &Locator<'_>,
    base: &Path,
) -> Checked<Vec<ResolvedCluster>> {
    let mut seen = HashMap::new();
    clusters
        .iter()
        .enumerate()
        .map(|(index, cluster)| {
            let here = |key| [Step::Key("clusters"), Step::Index(index), Step::Key(key)];
            check_name(&cluster.name, &here("name"), at)?;
            if let Some(first) = seen.insert(cluster.name.as_str(), index) {
                let first_line =
                    at.line(&[Step::Key("clusters"), Step::Index(first), Step::Key("name")]);
                return Err(at.error(
                    &here("name"),
                    format!(
                        "duplicate cluster name {:?}{}",
                        cluster.name,
                        on_line(first_line)
                    ),
                ));
            }
            resolve_cluster(cluster, index, at, base)
        })
        .collect()
}

fn resolve_cluster(
    cluster: &ClusterConfig,
    index: usize,
    at: &Locator<'_>,
    base: &Path,
) -> Checked<ResolvedCluster> {
    let here = |key| [Step::Key("clusters"), Step::Index(index), Step::Key(key)];
    if cluster.api_urls.is_empty() {
        return Err(at.error(&here("api_urls"), "list at least one API URL"));
    }
    for (i, url) in cluster.api_urls.iter().enumerate() {
        let path = [
            Step::Key("clusters"),
            Step::Index(index),
            Step::Key("api_urls"),
            Step::Index(i),
        ];
        if url.scheme() != "https" || url.host_str().is_none() {
            return Err(at.error(
                &path,
                "must be an https:// URL such as https://pve1.lan:8006",
            ));
        }
    }
    check_token_id(&cluster.token_id).map_err(|message| at.error(&here("token_id"), message))?;
    let token_secret = cluster
        .token_secret
        .read(base)
        .map_err(|err| at.error(&here("token_secret"), err.to_string()))?;
    let trust = resolve_trust(&cluster.tls, index, at, base)?;
    Ok(ResolvedCluster {
        name: cluster.name.clone(),
        api_urls: cluster.api_urls.clone(),
        token_id: cluster.token_id.clone(),
        token_secret,
        trust,
    })
}

/// Proxmox API token ids look like `porthole@pve!daemon`.
fn check_token_id(token_id: &str) -> Result<(), String> {
    let shape = "must look like USER@REALM!TOKENID, e.g. porthole@pve!daemon";
    let (user, token) = token_id.split_once('!').ok_or(shape)?;
    let (name, realm) = user.split_once('@').ok_or(shape)?;
    if name.is_empty() || realm.is_empty() || token.is_empty() {
        return Err(shape.to_owned());
    }
    Ok(())
}

fn resolve_trust(
    tls: &TlsTrustConfig,
    index: usize,
    at: &Locator<'_>,
    base: &Path,
) -> Checked<TlsTrust> {
    let here = |key| {
        [
            Step::Key("clusters"),
            Step::Index(index),
            Step::Key("tls"),
            Step::Key(key),
        ]
    };
    match (&tls.ca_file, &tls.fingerprint) {
        (Some(file), None) => {
            let path = base.join(file);
            let pem = std::fs::read(&path).map_err(|err| {
                at.error(
                    &here("ca_file"),
                    format!("cannot read {}: {err}", path.display()),
                )
            })?;
            if !pem_has_certificate(&pem) {
                return Err(at.error(&here("ca_file"), "holds no PEM certificate"));
            }
            Ok(TlsTrust::CaPem(pem))
        }
        (None, Some(pins)) => {
            let pins = pins
                .as_slice()
                .iter()
                .map(|text| {
                    parse_fingerprint(text).map_err(|err| {
                        at.error(
                            &here("fingerprint"),
                            format!("{err}; expected \"AB:CD:…\" (32 bytes)"),
                        )
                    })
                })
                .collect::<Checked<Vec<_>>>()?;
            if pins.is_empty() {
                return Err(at.error(&here("fingerprint"), "list at least one fingerprint"));
            }
            Ok(TlsTrust::PinnedSha256(pins))
        }
        _ => Err(at.error(
            &[Step::Key("clusters"), Step::Index(index), Step::Key("tls")],
            "give exactly one of `ca_file` or `fingerprint`",
        )),
    }
}

fn pem_has_certificate(pem: &[u8]) -> bool {
    rustls_pemfile::certs(&mut &pem[..])
        .next()
        .is_some_and(|cert| cert.is_ok())
}

fn check_templates(config: &Config, at: &Locator<'_>) -> Checked<()> {
    let mut seen = HashMap::new();
    for (index, template) in config.templates.iter().enumerate() {
        let here = |key| [Step::Key("templates"), Step::Index(index), Step::Key(key)];
        check_name(&template.name, &here("name"), at)?;
        if seen.insert(template.name.as_str(), index).is_some() {
            return Err(at.error(
                &here("name"),
                format!("duplicate template name {:?}", template.name),
            ));
        }
        if !config.clusters.iter().any(|c| c.name == template.cluster) {
            return Err(at.error(
                &here("cluster"),
                format!("no cluster named {:?}", template.cluster),
            ));
        }
        if !(100..=999_999_999).contains(&template.vmid) {
            return Err(at.error(
                &here("vmid"),
                "a Proxmox VM id is between 100 and 999999999",
            ));
        }
        check_cloud_init_plugin(template, &config.plugins)
            .map_err(|message| at.error(&here("cloud_init"), message))?;
    }
    Ok(())
}

fn check_cloud_init_plugin(
    template: &TemplateConfig,
    plugins: &[PluginConfig],
) -> Result<(), String> {
    use super::model::PluginWorld;
    match plugins.iter().find(|p| p.name == template.cloud_init) {
        None => Err(format!("no plugin named {:?}", template.cloud_init)),
        Some(p) if p.world != PluginWorld::CloudInitTemplate => Err(format!(
            "plugin {:?} is not a cloud-init-template plugin",
            p.name
        )),
        Some(_) => Ok(()),
    }
}

fn check_plans(config: &Config, at: &Locator<'_>) -> Checked<()> {
    let mut seen = HashMap::new();
    for (index, plan) in config.plans.iter().enumerate() {
        let here = |key| [Step::Key("plans"), Step::Index(index), Step::Key(key)];
        check_name(&plan.name, &here("name"), at)?;
        if seen.insert(plan.name.as_str(), index).is_some() {
            return Err(at.error(
                &here("name"),
                format!("duplicate plan name {:?}", plan.name),
            ));
        }
        for (key, value) in [
            ("cores", u64::from(plan.cores)),
            ("memory_mib", plan.memory_mib.into()),
            ("disk_gib", plan.disk_gib.into()),
        ] {
            if value == 0 {
                return Err(at.error(&here(key), "must be greater than zero"));
            }
        }
        for (i, name) in plan.templates.iter().enumerate() {
            if !config.templates.iter().any(|t| &t.name == name) {
                let path = [
                    Step::Key("plans"),
                    Step::Index(index),
                    Step::Key("templates"),
                    Step::Index(i),
                ];
                return Err(at.error(&path, format!("no template named {name:?}")));
            }
        }
    }
    Ok(())
}

fn resolve_plugins(
    plugins: &[PluginConfig],
    at: &Locator<'_>,
    base: &Path,
) -> Checked<Vec<PluginSpec>> {
    let mut seen = HashMap::new();
    plugins
        .iter()
        .enumerate()
        .map(|(index, plugin)| {
            let entry = [Step::Key("plugins"), Step::Index(index)];
            check_name(&plugin.name, &under(&entry, &[Step::Key("name")]), at)?;
            if seen.insert(plugin.name.as_str(), index).is_some() {
                return Err(at.error(
                    &under(&entry, &[Step::Key("name")]),
                    format!("duplicate plugin name {:?}", plugin.name),
                ));
            }
            if plugin.sha256.len() != 64 || hex::decode(&plugin.sha256).is_err() {
                return Err(at.error(
                    &under(&entry, &[Step::Key("sha256")]),
                    "must be 64 hexadecimal digits",
                ));
            }
            resolve_plugin(plugin, &entry, at, base)
        })
        .collect()
}

/// One plugin's grants, limits and settings, which live at `entry` in the text: a `[[plugins]]`
/// entry of the configuration, or the root of an author's workbench file.
pub(super) fn resolve_plugin(
    plugin: &PluginConfig,
    entry: &[Step<'_>],
    at: &Locator<'_>,
    base: &Path,
) -> Checked<PluginSpec> {
    for (i, origin) in plugin.allowed_hosts.iter().enumerate() {
        let path = under(entry, &[Step::Key("allowed_hosts"), Step::Index(i)]);
        check_origin(origin).map_err(|message| at.error(&path, message))?;
    }
    check_plugin_limits(&plugin.limits, entry, at)?;
    let settings = resolve_settings(plugin, entry, at, base)?;
    Ok(PluginSpec {
        name: plugin.name.clone(),
        world: plugin.world,
        path: base.join(&plugin.path),
        sha256: plugin.sha256.clone(),
        allowed_hosts: plugin.allowed_hosts.clone(),
        allowed_addresses: plugin.allowed_addresses.clone(),
        ca_file: plugin.tls.ca_file.as_ref().map(|file| base.join(file)),
        limits: plugin.limits.clone(),
        settings,
    })
}

/// `rest` below `prefix`.
fn under<'a>(prefix: &[Step<'a>], rest: &[Step<'a>]) -> Vec<Step<'a>> {
    prefix.iter().chain(rest).copied().collect()
}

/// Each limit within what the sandbox can honour: a zero would make every call fail, and the
/// upper bounds keep one plugin from holding the pool or the database.
fn check_plugin_limits(limits: &PluginLimits, entry: &[Step<'_>], at: &Locator<'_>) -> Checked<()> {
    let most_memory = (crate::plugins::MAX_PLUGIN_MEMORY_BYTES >> 20) as u64;
    let ranges = [
        ("memory_mib", Some(limits.memory_mib.into()), 1, most_memory),
        ("timeout_ms", Some(limits.timeout_ms), 1, 600_000),
        (
            "max_http_requests",
            Some(limits.max_http_requests.into()),
            0,
            1_000,
        ),
        ("kv_quota_kib", Some(limits.kv_quota_kib.into()), 0, 1 << 20),
        (
            "failures_to_trip",
            limits.failures_to_trip.map(u64::from),
            1,
            1_000,
        ),
        ("cool_down_secs", limits.cool_down_secs, 1, 86_400),
    ];
    for (key, value, least, most) in ranges {
        if let Some(value) = value
            && !(least..=most).contains(&value)
        {
            let path = under(entry, &[Step::Key("limits"), Step::Key(key)]);
            return Err(at.error(&path, format!("must be between {least} and {most}")));
        }
    }
    Ok(())
}

/// An allowed host is an origin: scheme, host and optional port, nothing else.
fn check_origin(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an origin such as https://api.cloudflare.com".to_owned());
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err("must be an origin only: no path, query or credentials".to_owned());
    }
    Ok(())
}

fn resolve_settings(
    plugin: &PluginConfig,
    entry: &[Step<'_>],
    at: &Locator<'_>,
    base: &Path,
) -> Checked<BTreeMap<String, Secret>> {
    plugin
        .settings
        .iter()
        .map(|(key, value)| {
            let secret = match value {
                SettingValue::Text(text) => Secret::new(text.clone()),
                SettingValue::Secret(source) => source.read(base).map_err(|err| {
                    let path = under(entry, &[Step::Key("settings"), Step::Key(key)]);
                    at.error(&path, err.to_string())
                })?,
            };
            Ok((key.clone(), secret))
        })
        .collect()
}

/// Console limits: a token is a bearer credential, so its life stays short; the rest only needs
/// to be usable (non-zero, and durations short enough to fit a timer).
fn check_lifecycle(lifecycle: &LifecycleConfig, at: &Locator<'_>) -> Checked<()> {
    let here = |key| [Step::Key("lifecycle"), Step::Key(key)];
    let positive = [
        ("workers", lifecycle.workers as u64),
        ("lease_secs", lifecycle.lease_secs),
        ("retry_initial_ms", lifecycle.retry_initial_ms),
        ("max_attempts", lifecycle.max_attempts.into()),
        ("task_deadline_secs", lifecycle.task_deadline_secs),
    ];
    if lifecycle.cloud_init.seed_window_secs == 0 {
        let key = [
            Step::Key("lifecycle"),
            Step::Key("cloud_init"),
            Step::Key("seed_window_secs"),
        ];
        return Err(at.error(&key, "must be greater than zero"));
    }
    for (key, value) in positive {
        if value == 0 {
            return Err(at.error(&here(key), "must be greater than zero"));
        }
    }
    if lifecycle.retry_max_ms < lifecycle.retry_initial_ms {
        return Err(at.error(&here("retry_max_ms"), "must be at least retry_initial_ms"));
    }
    let delivery = &lifecycle.cloud_init;
    if delivery.delivery == DeliveryKind::Snippets {
        let here = |key| {
            [
                Step::Key("lifecycle"),
                Step::Key("cloud_init"),
                Step::Key(key),
            ]
        };
        if delivery.dir.is_none() {
            return Err(at.error(
                &here("dir"),
                "snippets delivery needs the directory Proxmox mounts as snippets",
            ));
        }
        if delivery.storage.is_none() {
            return Err(at.error(
                &here("storage"),
                "snippets delivery needs the Proxmox storage id of that directory",
            ));
        }
    }
    if lifecycle.dns_plugin.is_some() && lifecycle.dns_zone.is_none() {
        return Err(at.error(&here("dns_zone"), "a DNS plugin needs the zone it manages"));
    }
    check_ip_pools(&lifecycle.ip_pools, lifecycle.dns_plugin.as_deref(), at)
}

/// Each pool parses (gateway and ranges inside its network) and has a name of its own.
fn check_ip_pools(
    pools: &[IpPoolConfig],
    dns_plugin: Option<&str>,
    at: &Locator<'_>,
) -> Checked<()> {
    for (index, pool) in pools.iter().enumerate() {
        let here = |key| {
            [
                Step::Key("lifecycle"),
                Step::Key("ip_pools"),
                Step::Index(index),
                Step::Key(key),
            ]
        };
        if let Err(reason) = crate::lifecycle::addresses::Pool::from_config(pool, dns_plugin) {
            let key = ["gateway", "reverse_zone"]
                .into_iter()
                .find(|key| reason.starts_with(key))
                .unwrap_or("ranges");
            return Err(at.error(&here(key), reason));
        }
        if pools[..index].iter().any(|p| p.name == pool.name) {
            return Err(at.error(
                &here("name"),
                format!("a second pool named {:?}", pool.name),
            ));
        }
    }
    Ok(())
}

/// The plugins the lifecycle names exist and implement the right world.
fn check_lifecycle_plugins(
    lifecycle: &LifecycleConfig,
    plugins: &[PluginConfig],
    at: &Locator<'_>,
) -> Checked<()> {
    use super::model::PluginWorld;
    let wanted = [
        (
            "tunnel_plugin",
            &lifecycle.tunnel_plugin,
            PluginWorld::TunnelProvider,
            "tunnel-provider",
        ),
        (
            "dns_plugin",
            &lifecycle.dns_plugin,
            PluginWorld::DnsProvider,
            "dns-provider",
        ),
    ];
    let mut named: Vec<_> = wanted
        .into_iter()
        .filter_map(|(key, name, world, world_name)| {
            let path = vec![Step::Key("lifecycle"), Step::Key(key)];
            Some((path, name.as_ref()?, world, world_name))
        })
        .collect();
    for (index, pool) in lifecycle.ip_pools.iter().enumerate() {
        if let Some(name) = &pool.reverse_dns_plugin {
            let path = vec![
                Step::Key("lifecycle"),
                Step::Key("ip_pools"),
                Step::Index(index),
                Step::Key("reverse_dns_plugin"),
            ];
            named.push((path, name, PluginWorld::DnsProvider, "dns-provider"));
        }
    }
    for (path, name, world, world_name) in named {
        match plugins.iter().find(|p| &p.name == name) {
            None => return Err(at.error(&path, format!("no plugin named {name:?}"))),
            Some(p) if p.world != world => {
                return Err(at.error(
                    &path,
                    format!("plugin {name:?} is not a {world_name} plugin"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn check_console(console: &ConsoleConfig, at: &Locator<'_>) -> Checked<()> {
    let here = |key| [Step::Key("console"), Step::Key(key)];
    if !(1..=30).contains(&console.token_ttl_secs) {
        return Err(at.error(&here("token_ttl_secs"), "must be between 1 and 30 seconds"));
    }
    const DAY: u64 = 24 * 60 * 60;
    for (key, value) in [
        ("idle_timeout_secs", console.idle_timeout_secs),
        ("max_lifetime_secs", console.max_lifetime_secs),
    ] {
        if !(1..=7 * DAY).contains(&value) {
            return Err(at.error(&here(key), "must be between 1 second and 7 days"));
        }
    }
    for (key, value) in [
        ("keepalive_secs", console.keepalive_secs),
        ("pong_timeout_secs", console.pong_timeout_secs),
    ] {
        if !(1..=3600).contains(&value) {
            return Err(at.error(&here(key), "must be between 1 second and 1 hour"));
        }
    }
    for (key, value) in [
        ("max_sessions_per_user", console.max_sessions_per_user),
        ("max_sessions_total", console.max_sessions_total),
    ] {
        if value == 0 {
            return Err(at.error(&here(key), "must be greater than zero"));
        }
    }
    if console.max_sessions_per_user > console.max_sessions_total {
        return Err(at.error(
            &here("max_sessions_per_user"),
            "cannot exceed max_sessions_total",
        ));
    }
    Ok(())
}

fn check_webhooks(webhooks: &WebhooksConfig, at: &Locator<'_>) -> Checked<()> {
    // Webhooks in all get half the plugin pool; one plugin cannot be allowed more.
    let most = crate::plugins::POOL_SLOTS / 2;
    if !(1..=most).contains(&webhooks.max_in_flight) {
        let here = [Step::Key("webhooks"), Step::Key("max_in_flight")];
        return Err(at.error(&here, format!("must be between 1 and {most}")));
    }
    Ok(())
}

/// Names appear in URLs, logs and other names' references: keep them plain.
fn check_name(name: &str, path: &[Step<'_>], at: &Locator<'_>) -> Checked<()> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if plain {
        Ok(())
    } else {
        Err(at.error(
            path,
            format!("{name:?} is not a valid name: use 1-64 of a-z, 0-9, - and _"),
        ))
    }
}

fn on_line(line: Option<usize>) -> String {
    line.map(|line| format!(" (first defined on line {line})"))
        .unwrap_or_default()
}
