//! The first-party plugin components, as `cargo xtask plugins` builds them.

use std::path::{Path, PathBuf};

/// A component's path and SHA-256; a missing component fails the test with what to run.
pub fn component(package: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    built(path, "cargo xtask plugins")
}

/// The built component at `path` and its SHA-256; missing, the test fails naming `build`.
pub fn built(path: PathBuf, build: &str) -> (PathBuf, String) {
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|err| panic!("{}: {err}; build it with `{build}`", path.display()));
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    (path, sha256)
}

/// The start of a daemon's configuration on the simulator `sim`, listening on `addr`: its data
/// key and Proxmox token written into `dir`, one cluster, the `debian-12` template rendered by
/// `cloudinit-lab`, and the `small` plan.
pub fn simulator_config_head(
    dir: &Path,
    addr: std::net::SocketAddr,
    sim: &porthole_sim::SimHandle,
) -> String {
    std::fs::write(
        dir.join("data.key"),
        hex::encode(rand::random::<[u8; 32]>()),
    )
    .unwrap();
    std::fs::write(dir.join("pve-token"), sim.token_secret()).unwrap();
    format!(
        r#"listen = "{addr}"
public_url = "http://{addr}"
database = "porthole.db"
data_key = {{ file = "data.key" }}

[plugin_isolation]
runner = "{runner}"

[[clusters]]
name = "sim"
api_urls = ["{api_url}"]
token_id = "{token_id}"
token_secret = {{ file = "pve-token" }}
tls = {{ fingerprint = "{fingerprint}" }}

[[templates]]
name = "debian-12"
cluster = "sim"
node = "pve1"
vmid = 9000
os = "debian"
cloud_init = "cloudinit-lab"

[[plans]]
name = "small"
cores = 2
memory_mib = 1024
disk_gib = 20
templates = ["debian-12"]
"#,
        runner = env!("CARGO_BIN_EXE_porthole"),
        api_url = sim.api_url(),
        token_id = sim.token_id(),
        fingerprint = sim.cert_fingerprint_sha256(),
    )
}

/// A `[[plugins]]` entry for a component with no settings.
pub fn plugin_entry(package: &str, world: &str) -> String {
    let (path, sha256) = component(package);
    format!(
        "\n[[plugins]]\nname = \"{package}\"\npath = \"{}\"\nsha256 = \"{sha256}\"\nworld = \"{world}\"\n",
        path.display()
    )
}
