//! `porthole demo`: the panel on the Proxmox simulator, a throwaway database and demo accounts,
//! so a newcomer sees it work with one command.
//!
//! The demo goes through the same front door as production: it writes a real configuration file
//! (pinning the simulator's self-signed certificate), loads it with [`config::load`] and starts the
//! ordinary [`Daemon`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use porthole_sim::{SimConfig, SimHandle, Simulator, VmSeed};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::auth::secret_token;
use crate::config;
use crate::daemon::{Daemon, shutdown_signal};
use crate::lifecycle::adopt::{Adoption, adopt};
use crate::proxmox::Client;
use crate::store::Store;
use crate::store::users::Role;

pub struct Options {
    pub listen: SocketAddr,
    pub data_dir: Option<PathBuf>,
    pub credentials_file: Option<PathBuf>,
    /// The first-party plugin components; default [`default_plugins_dir`].
    pub plugins_dir: Option<PathBuf>,
    /// TOML merged into the generated configuration (see [`DemoSetup::extra_config`]): how a
    /// plugin author loads their own plugin into the demo.
    pub extra_config: Option<PathBuf>,
}

/// The name the demo's simulated cluster has in the configuration.
const CLUSTER: &str = "sim";

/// What the demo prints, and writes as JSON with `--credentials-file`.
#[derive(Debug, Serialize)]
pub struct Credentials {
    pub url: String,
    pub accounts: Vec<Account>,
    /// The simulator's control API (faults, dropped consoles, recorded requests), for tests
    /// and for trying failures by hand.
    pub simulator_control_url: String,
}

#[derive(Debug, Serialize)]
pub struct Account {
    pub username: String,
    pub role: Role,
    pub password: String,
    pub api_token: String,
    /// Ids of the services (VMs) this account owns.
    pub vms: Vec<i64>,
}

/// A VM the demo puts on the simulator, who owns it (`None`: no customer, operators only), and
/// the plan of the demo's catalogue its size matches.
struct DemoVm {
    owner: Option<&'static str>,
    plan: &'static str,
    seed: VmSeed,
}

/// A running demo: simulator, daemon and seeded accounts. Tests use it as their fixture.
pub struct Demo {
    daemon: Daemon,
    /// Where the daemon listens, which a configured `public_url` may not name.
    listening: SocketAddr,
    sim: SimHandle,
    credentials: Credentials,
    config_path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// Everything [`Demo::start_with`] can vary.
pub struct DemoSetup {
    pub listen: SocketAddr,
    pub data_dir: Option<PathBuf>,
    pub sim: SimConfig,
    /// TOML merged into the generated configuration, e.g. a faster `[lifecycle]` for tests:
    /// its keys join (or replace) the generated tables', its `[[plugins]]` join theirs.
    pub extra_config: String,
    /// Where the first-party plugin components are; with them the demo provisions for real
    /// (cloud-init, tunnels and DNS on the simulator's Cloudflare, Stripe webhooks).
    pub plugins_dir: Option<PathBuf>,
    /// The `porthole` binary that runs plugins (`[plugin_isolation] runner`), for a demo
    /// started inside another program, such as a test; this executable by default.
    pub plugin_runner: Option<PathBuf>,
}

/// Where `cargo xtask plugins` puts the first-party components in this repository.
pub fn default_plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/target/wasm32-wasip2/release")
}

impl Demo {
    /// Starts the simulator with `sim` (its demo VMs are added), then the daemon on `listen`.
    pub async fn start(
        listen: SocketAddr,
        data_dir: Option<PathBuf>,
        sim: SimConfig,
    ) -> anyhow::Result<Self> {
        Self::start_with(DemoSetup {
            listen,
            data_dir,
            sim,
            extra_config: String::new(),
            plugins_dir: None,
            plugin_runner: None,
        })
        .await
    }

    pub async fn start_with(setup: DemoSetup) -> anyhow::Result<Self> {
        let DemoSetup {
            listen,
            data_dir,
            mut sim,
            extra_config,
            plugins_dir,
            plugin_runner,
        } = setup;
        let (temp, dir) = data_dir_or_temp(data_dir)?;
        sim.vms.extend(demo_vms().into_iter().map(|vm| vm.seed));
        let sim = Simulator::start(sim)
            .await
            .context("while starting the Proxmox simulator")?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("while binding {listen}"))?;
        let addr = listener.local_addr()?;
        let mut bundled = match plugins_dir {
            Some(plugins) => bundled_plugins(&dir, &plugins, &sim)?,
            None => String::new(),
        };
        if let Some(runner) = plugin_runner {
            let runner = toml::Value::String(runner.display().to_string());
            bundled.push_str(&format!("\n[plugin_isolation]\nrunner = {runner}\n"));
        }
        let config_path = write_config(&dir, addr, &sim, &bundled, &extra_config)?;
        let config = config::load(&config_path).map_err(|err| anyhow::anyhow!("{err}"))?;
        // Seeded before the daemon starts, so its first comparison with the cluster already
        // finds the demo VMs' services.
        let store = Store::connect(&config.database).await?;
        crate::daemon::register_clusters(&store, &config).await?;
        crate::daemon::import_catalogue(&store, &config).await?;
        let inventory = crate::inventory::Inventory::from_config(&config.clusters)?;
        let client = inventory
            .client(CLUSTER)
            .context("the demo's configuration has no simulated cluster")?;
        let accounts = seed(&store, client).await?;
        drop(store);
        // The panel's address as browsers use it: the extra configuration may name another
        // (`localhost`, which passkeys need, for the loopback address).
        let url = config.public_url.as_str().trim_end_matches('/').to_owned();
        let daemon = Daemon::start_on(config, listener).await?;
        let credentials = Credentials {
            url,
            accounts,
            simulator_control_url: sim.control_url().to_string(),
        };
        Ok(Self {
            daemon,
            listening: addr,
            sim,
            credentials,
            config_path,
            _temp: temp,
        })
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The address the daemon listens on.
    pub fn listening(&self) -> SocketAddr {
        self.listening
    }

    pub fn account(&self, username: &str) -> Option<&Account> {
        self.credentials
            .accounts
            .iter()
            .find(|a| a.username == username)
    }

    pub fn sim(&self) -> &SimHandle {
        &self.sim
    }

    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// The configuration file the daemon was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.daemon.stop().await?;
        self.sim.shutdown().await;
        Ok(())
    }
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let plugins = options.plugins_dir.unwrap_or_else(default_plugins_dir);
    let plugins_dir = if plugins.join("cloudinit_basic.wasm").exists() {
        Some(plugins)
    } else {
        eprintln!(
            "porthole demo: no plugin components in {} (build them with `cargo xtask plugins`); \
             running without provisioning",
            plugins.display()
        );
        None
    };
    let extra_config = match &options.extra_config {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => String::new(),
    };
    let demo = Demo::start_with(DemoSetup {
        listen: options.listen,
        data_dir: options.data_dir,
        sim: SimConfig::default(),
        extra_config,
        plugins_dir,
        plugin_runner: None,
    })
    .await?;
    if let Some(path) = &options.credentials_file {
        std::fs::write(path, serde_json::to_vec_pretty(demo.credentials())?)
            .with_context(|| format!("while writing {}", path.display()))?;
    }
    println!("{}", banner(demo.credentials(), &demo.config_path));
    shutdown_signal().await;
    demo.stop().await
}

/// The caller's directory, or a temporary one removed when the demo ends.
fn data_dir_or_temp(
    given: Option<PathBuf>,
) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    match given {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("while creating {}", dir.display()))?;
            Ok((None, dir))
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("porthole-demo-")
                .tempdir()?;
            let dir = temp.path().to_path_buf();
            Ok((Some(temp), dir))
        }
    }
}

fn demo_vms() -> Vec<DemoVm> {
    // The demo's plans, and the size a VM on each has.
    let (small, medium) = (("small", 2, 2048), ("medium", 4, 8192));
    let vm = |owner, node: &str, vmid, name: &str, (plan, cores, memory), running| DemoVm {
        owner,
        plan,
        seed: VmSeed {
            node: node.into(),
            vmid,
            name: name.into(),
            cores,
            memory,
            disk_gb: 20,
            running,
            // The customers' VMs are adopted at start, which tags and marks them as services.
            ..VmSeed::default()
        },
    };
    vec![
        vm(Some("alice"), "pve1", 101, "alice-web", small, true),
        vm(Some("alice"), "pve2", 102, "alice-db", medium, false),
        vm(Some("bob"), "pve1", 103, "bob-lab", small, true),
        vm(None, "pve2", 110, "ops-monitoring", small, true),
    ]
}

fn write_config(
    dir: &Path,
    addr: SocketAddr,
    sim: &SimHandle,
    bundled: &str,
    extra: &str,
) -> anyhow::Result<PathBuf> {
    std::fs::write(
        dir.join("data.key"),
        hex::encode(rand::random::<[u8; 32]>()),
    )?;
    std::fs::write(dir.join("pve-token"), sim.token_secret())?;
    let generated = format!(
        r#"listen = "{addr}"
public_url = "http://{addr}"
database = "porthole.db"
data_key = {{ file = "data.key" }}

[[clusters]]
name = "{CLUSTER}"
api_urls = ["{api_url}"]
token_id = "{token_id}"
token_secret = {{ file = "pve-token" }}
tls = {{ fingerprint = "{fingerprint}" }}
{bundled}"#,
        api_url = sim.api_url(),
        token_id = sim.token_id(),
        fingerprint = sim.cert_fingerprint_sha256(),
    );
    let text = format!(
        "# Written by `porthole demo`: the panel on the Proxmox simulator.\n{}",
        merged(&generated, extra)?
    );
    let path = dir.join("porthole.toml");
    std::fs::write(&path, text).with_context(|| format!("while writing {}", path.display()))?;
    Ok(path)
}

/// The generated configuration with `extra` merged in key by key, so a caller can tune a table
/// the demo writes (`[lifecycle] workers = 8`) as well as add its own. Arrays of tables
/// (`[[plugins]]`) are appended to; any other value in `extra` replaces the generated one.
fn merged(generated: &str, extra: &str) -> anyhow::Result<String> {
    let mut base: toml::Table = generated
        .parse()
        .context("the generated demo configuration is not valid TOML")?;
    let extra: toml::Table = extra
        .parse()
        .context("the demo's extra configuration is not valid TOML")?;
    merge_tables(&mut base, extra);
    toml::to_string(&base).context("while writing the demo configuration")
}

fn merge_tables(base: &mut toml::Table, extra: toml::Table) {
    use toml::Value;
    let tables = |values: &[Value]| values.iter().all(Value::is_table);
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(into)), Value::Table(from)) => merge_tables(into, from),
            (Some(Value::Array(into)), Value::Array(from)) if tables(into) && tables(&from) => {
                into.extend(from)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The zone the demo's tunnels publish their records in, on the simulated Cloudflare.
const DEMO_ZONE: &str = "demo.porthole.test";

/// The reverse zones of the demo's address pools, on the simulated Cloudflare too.
const REVERSE_ZONES: [&str; 2] = [
    "2.0.192.in-addr.arpa",
    "0.0.0.0.0.0.1.0.8.b.d.0.1.0.0.2.ip6.arpa",
];

/// The bundled plugins, templates, plans and provisioning settings, wired to the simulator's
/// Proxmox and Cloudflare surfaces. Cloud-init is delivered as snippets into `dir/snippets`,
/// which the simulated storage `local` stands for.
fn bundled_plugins(dir: &Path, plugins: &Path, sim: &SimHandle) -> anyhow::Result<String> {
    std::fs::write(dir.join("sim-ca.pem"), sim.cert_pem())?;
    std::fs::create_dir_all(dir.join("snippets"))?;
    std::fs::write(
        dir.join("stripe-webhook-secret"),
        format!("whsec_{}", hex::encode(rand::random::<[u8; 16]>())),
    )?;
    std::fs::write(dir.join("cloudflare-token"), sim.cloudflare_token())?;
    for zone in std::iter::once(DEMO_ZONE).chain(REVERSE_ZONES) {
        sim.cloudflare_zone(zone);
    }
    let cloudflare = sim.cloudflare_url();
    let origin = cloudflare.origin().ascii_serialization();
    let mut text = String::new();
    let entries = [
        ("cloudinit-basic", "cloud-init-template", String::new()),
        ("cloudinit-lab", "cloud-init-template", String::new()),
        ("tunnel-cloudflare", "tunnel-provider", format!(
            "allowed_hosts = [\"{origin}\"]\nallowed_addresses = [\"127.0.0.1\"]\ntls = {{ ca_file = \"sim-ca.pem\" }}\n\
             settings = {{ api_base = \"{cloudflare}\", account_id = \"{}\", api_token = {{ file = \"cloudflare-token\" }} }}\n",
            sim.cloudflare_account_id()
        )),
        ("dns-cloudflare", "dns-provider", format!(
            "allowed_hosts = [\"{origin}\"]\nallowed_addresses = [\"127.0.0.1\"]\ntls = {{ ca_file = \"sim-ca.pem\" }}\n\
             settings = {{ api_base = \"{cloudflare}\", api_token = {{ file = \"cloudflare-token\" }} }}\n"
        )),
        ("billing-stripe", "billing-adapter", "settings = { webhook_secret = { file = \"stripe-webhook-secret\" }, default_plan = \"small\", default_template = \"debian-12\" }\n".to_owned()),
    ];
    for (name, world, extra) in entries {
        let path = plugins.join(format!("{}.wasm", name.replace('-', "_")));
        let bytes =
            std::fs::read(&path).with_context(|| format!("while reading {}", path.display()))?;
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        text.push_str(&format!(
            "\n[[plugins]]\nname = \"{name}\"\npath = \"{}\"\nsha256 = \"{sha256}\"\nworld = \"{world}\"\n{extra}",
            path.display()
        ));
    }
    let [v4_reverse, v6_reverse] = REVERSE_ZONES;
    text.push_str(&format!(
        r#"
[[templates]]
name = "debian-12"
cluster = "{CLUSTER}"
node = "pve1"
vmid = 9000
os = "debian"
cloud_init = "cloudinit-basic"

[[templates]]
name = "lab"
cluster = "{CLUSTER}"
node = "pve2"
vmid = 9001
os = "ubuntu"
cloud_init = "cloudinit-lab"

[[plans]]
name = "small"
cores = 2
memory_mib = 2048
disk_gib = 20
templates = ["debian-12", "lab"]
max_snapshots = 2
max_backups = 2

[[plans]]
name = "medium"
cores = 4
memory_mib = 8192
disk_gib = 80
templates = ["debian-12", "lab"]
max_snapshots = 5
max_backups = 7

[lifecycle]
tunnel_plugin = "tunnel-cloudflare"
dns_plugin = "dns-cloudflare"
dns_zone = "{DEMO_ZONE}"
ssh_proxy_command = "cloudflared access ssh --hostname %h"
backup_storage = "local"

[[lifecycle.ip_pools]]
name = "public-v4"
cluster = "{CLUSTER}"
network = "192.0.2.0/24"
gateway = "192.0.2.1"
ranges = ["192.0.2.10-192.0.2.250"]
reverse_zone = "{v4_reverse}"

[[lifecycle.ip_pools]]
name = "public-v6"
cluster = "{CLUSTER}"
network = "2001:db8:100::/64"
gateway = "2001:db8:100::1"
reverse_zone = "{v6_reverse}"

[lifecycle.cloud_init]
delivery = "snippets"
dir = "snippets"
storage = "local"
"#
    ));
    Ok(text)
}

/// Creates the demo accounts and their tokens, and adopts the customers' VMs as their services,
/// as a provider moving to Porthole would.
async fn seed(store: &Store, client: &Client) -> anyhow::Result<Vec<Account>> {
    let mut accounts = Vec::new();
    for (username, role) in [
        ("admin", Role::Admin),
        ("alice", Role::Customer),
        ("bob", Role::Customer),
    ] {
        let password = secret_token::generate()[..16].to_owned();
        let user = crate::admin::create_user(store, username, &password, role).await?;
        let api_token = crate::admin::create_token(store, username, "demo").await?;
        let mut vms = Vec::new();
        for demo in demo_vms()
            .into_iter()
            .filter(|vm| vm.owner == Some(username))
        {
            // The catalogue has the demo's plans only when it has the plugins they need.
            let known = crate::store::catalogue::plan(store, demo.plan).await?;
            let adoption = Adoption {
                owner_id: user.id,
                node: demo.seed.node,
                vmid: demo.seed.vmid,
                plan: known.map(|plan| plan.name),
            };
            let service = adopt(store, client, adoption).await?;
            vms.push(service.id);
        }
        accounts.push(Account {
            username: username.into(),
            role,
            password,
            api_token,
            vms,
        });
    }
    Ok(accounts)
}

fn banner(credentials: &Credentials, config_path: &Path) -> String {
    let mut out = format!("\nPorthole demo is running at {}\n\n", credentials.url);
    for account in &credentials.accounts {
        let _ = writeln!(
            out,
            "  {:<6} {:<8} password {}  API token {}",
            account.username,
            account.role.as_str(),
            account.password,
            account.api_token
        );
    }
    let token = |name: &str| {
        credentials
            .accounts
            .iter()
            .find(|a| a.username == name)
            .map(|a| a.api_token.as_str())
            .unwrap_or("")
    };
    let (admin_token, alice_token) = (token("admin"), token("alice"));
    let _ = write!(
        out,
        "\nTry:\n  curl -H 'Authorization: Bearer {admin_token}' {url}/api/v1/nodes\n  \
         curl -H 'Authorization: Bearer {admin_token}' {url}/api/v1/vms\n\n\
         Order a VM as alice and watch it provision:\n  \
         curl -H 'Authorization: Bearer {alice_token}' -H 'Idempotency-Key: first' -H 'Content-Type: application/json' \\\n    \
         -d '{{\"plan\":\"small\",\"template\":\"debian-12\",\"hostname\":\"web-1\",\"username\":\"alice\"}}' {url}/api/v1/orders\n  \
         curl -N -H 'Authorization: Bearer {alice_token}' {url}/api/v1/services/<service_id>/events\n\n\
         Configuration: {config}\nPress Ctrl-C to stop; the demo's data is discarded unless --data-dir was given.\n",
        url = credentials.url,
        config = config_path.display(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::merged;

    #[test]
    fn extra_configuration_joins_the_generated_tables() {
        let generated = r#"
listen = "127.0.0.1:1"
[lifecycle]
tunnel_plugin = "tunnel"
[[plugins]]
name = "first"
"#;
        let extra = r#"
listen = "127.0.0.1:2"
[lifecycle]
workers = 8
[[plugins]]
name = "second"
[plugins.limits]
timeout_ms = 100
"#;
        let text = merged(generated, extra).unwrap();
        let config: toml::Table = text.parse().unwrap();
        assert_eq!(config["listen"].as_str(), Some("127.0.0.1:2"));
        assert_eq!(
            config["lifecycle"]["tunnel_plugin"].as_str(),
            Some("tunnel")
        );
        assert_eq!(config["lifecycle"]["workers"].as_integer(), Some(8));
        let plugins = config["plugins"].as_array().unwrap();
        let names: Vec<_> = plugins.iter().map(|p| p["name"].as_str()).collect();
        assert_eq!(names, [Some("first"), Some("second")]);
        assert_eq!(plugins[1]["limits"]["timeout_ms"].as_integer(), Some(100));
    }
}
