//! The configuration file: good files load, and every bad one names its key and line.

use std::path::Path;
use std::process::Command;

use porthole::config::{self, Database};

/// A directory holding a valid configuration's secret files.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

const FINGERPRINT: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.key"), "11".repeat(32)).unwrap();
        std::fs::write(
            dir.path().join("pve-token"),
            "6f1c8a2e-0000-4000-8000-000000000000\n",
        )
        .unwrap();
        Self { dir }
    }

    pub fn valid() -> String {
        format!(
            r#"listen = "127.0.0.1:8080"
public_url = "https://panel.example.com"
trusted_proxies = ["127.0.0.1/32"]
database = "porthole.db"
data_key = {{ file = "data.key" }}

[[clusters]]
name = "main"
api_urls = ["https://pve1.example.com:8006"]
token_id = "porthole@pve!daemon"
token_secret = {{ file = "pve-token" }}
tls = {{ fingerprint = "{FINGERPRINT}" }}
"#
        )
    }

    fn parse(&self, text: &str) -> Result<config::ResolvedConfig, config::ConfigError> {
        config::parse(text, "porthole.toml", self.dir.path())
    }

    pub fn write(&self, text: &str) -> std::path::PathBuf {
        let path = self.dir.path().join("porthole.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn check_config(path: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_porthole"))
        .arg("check-config")
        .arg(path)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn a_valid_file_loads_with_its_secrets_resolved() {
    let fixture = Fixture::new();
    let config = fixture.parse(&Fixture::valid()).unwrap();
    assert_eq!(
        config.clusters[0].token_secret.expose(),
        "6f1c8a2e-0000-4000-8000-000000000000"
    );
    assert!(
        matches!(&config.database, Database::Sqlite(path) if *path == fixture.dir.path().join("porthole.db")),
        "{:?}",
        config.database
    );
    let (status, _) = check_config(&fixture.write(&Fixture::valid()));
    assert_eq!(status, 0);
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let fixture = Fixture::new();
    let text = Fixture::valid().replace("database =", "databse =");
    let err = fixture.parse(&text).unwrap_err();
    assert_eq!(err.line, Some(4), "{err}");
    assert!(err.message.contains("databse"), "{err}");
    let (status, output) = check_config(&fixture.write(&text));
    assert_eq!(status, 2);
    assert!(output.contains("porthole.toml:4"), "{output}");
}

#[test]
fn an_unknown_key_inside_a_cluster_is_named_with_its_path_and_line() {
    let fixture = Fixture::new();
    let text = Fixture::valid().replace("token_id =", "tokenid =");
    let err = fixture.parse(&text).unwrap_err();
    assert_eq!(err.line, Some(10), "{err}");
    assert!(err.to_string().contains("clusters[0]"), "{err}");
    assert!(err.message.contains("tokenid"), "{err}");
}

#[test]
fn a_wrong_type_is_named_with_its_key_and_line() {
    let fixture = Fixture::new();
    let text = Fixture::valid().replace(r#"listen = "127.0.0.1:8080""#, "listen = 8080");
    let err = fixture.parse(&text).unwrap_err();
    assert_eq!(
        (err.key.as_deref(), err.line),
        (Some("listen"), Some(1)),
        "{err}"
    );
    let (status, output) = check_config(&fixture.write(&text));
    assert_eq!(status, 2);
    assert!(output.contains("porthole.toml:1: listen:"), "{output}");
}

#[test]
fn a_missing_secret_file_is_named_with_its_key_and_line() {
    let fixture = Fixture::new();
    let text = Fixture::valid().replace(r#"file = "pve-token""#, r#"file = "missing-token""#);
    let err = fixture.parse(&text).unwrap_err();
    assert_eq!(
        err.key.as_deref(),
        Some("clusters[0].token_secret"),
        "{err}"
    );
    assert_eq!(err.line, Some(11), "{err}");
    assert!(err.message.contains("missing-token"), "{err}");
    assert_eq!(check_config(&fixture.write(&text)).0, 2);
}

#[test]
fn a_malformed_fingerprint_is_refused() {
    let fixture = Fixture::new();
    let text = Fixture::valid().replace(FINGERPRINT, "AB:CD:EF");
    let err = fixture.parse(&text).unwrap_err();
    assert_eq!(
        err.key.as_deref(),
        Some("clusters[0].tls.fingerprint"),
        "{err}"
    );
    assert_eq!(err.line, Some(12), "{err}");
    assert_eq!(check_config(&fixture.write(&text)).0, 2);
}

#[test]
fn a_duplicate_cluster_name_points_at_the_second_one() {
    let fixture = Fixture::new();
    let valid = Fixture::valid();
    let cluster = &valid[valid.find("[[clusters]]").unwrap()..];
    let text = format!("{valid}\n{cluster}");
    let err = fixture.parse(&text).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("clusters[1].name"), "{err}");
    assert_eq!(err.line, Some(15), "{err}");
    assert!(err.message.contains("line 8"), "{err}");
    assert_eq!(check_config(&fixture.write(&text)).0, 2);
}

#[test]
fn skipping_certificate_verification_cannot_be_configured() {
    let fixture = Fixture::new();
    let text = Fixture::valid().replace(
        &format!(r#"tls = {{ fingerprint = "{FINGERPRINT}" }}"#),
        "tls = { insecure = true }",
    );
    let err = fixture.parse(&text).unwrap_err();
    assert!(err.message.contains("insecure"), "{err}");
    let text = Fixture::valid().replace(
        &format!(r#"tls = {{ fingerprint = "{FINGERPRINT}" }}"#),
        "tls = {}",
    );
    let err = fixture.parse(&text).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("clusters[0].tls"), "{err}");
}

#[test]
fn a_template_must_name_a_configured_cluster() {
    let fixture = Fixture::new();
    let text = Fixture::valid()
        + r#"
[[templates]]
name = "debian-12"
cluster = "elsewhere"
node = "pve1"
vmid = 9000
os = "debian"
cloud_init = "cloudinit-basic"
"#;
    let err = fixture.parse(&text).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("templates[0].cluster"), "{err}");
    assert_eq!(err.line, Some(16), "{err}");
}

#[test]
fn bad_usage_exits_with_status_2() {
    let status = Command::new(env!("CARGO_BIN_EXE_porthole"))
        .arg("no-such-command")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}

#[test]
fn the_example_configuration_has_only_known_keys() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/porthole.toml");
    let text = std::fs::read_to_string(path).unwrap();
    // Its secret files live on the operator's machine; the shape is what can be checked here.
    let parsed: Result<config::Config, _> = toml::from_str(&text);
    assert!(parsed.is_ok(), "{}", parsed.unwrap_err());
}

#[test]
fn a_webhook_cap_of_zero_is_named_with_its_key_and_line() {
    let fixture = Fixture::new();
    let text = format!("{}\n[webhooks]\nmax_in_flight = 0\n", Fixture::valid());
    let err = fixture.parse(&text).unwrap_err();
    let line = text
        .lines()
        .position(|l| l.starts_with("max_in_flight"))
        .unwrap()
        + 1;
    assert_eq!(
        (err.key.as_deref(), err.line),
        (Some("webhooks.max_in_flight"), Some(line)),
        "{err}"
    );
    assert!(err.message.contains("between 1 and"), "{err}");
}

#[test]
fn a_plugin_limit_out_of_range_is_named_with_its_key_and_line() {
    let fixture = Fixture::new();
    let plugin = format!(
        "\n[[plugins]]\nname = \"dns\"\npath = \"dns.wasm\"\nsha256 = \"{}\"\nworld = \"dns-provider\"\n[plugins.limits]\ntimeout_ms = 2000\ncool_down_secs = 0\n",
        "ab".repeat(32)
    );
    let text = format!("{}{plugin}", Fixture::valid());
    let err = fixture.parse(&text).unwrap_err();
    let line = text
        .lines()
        .position(|l| l.starts_with("cool_down_secs"))
        .unwrap()
        + 1;
    assert_eq!(
        (err.key.as_deref(), err.line),
        (Some("plugins[0].limits.cool_down_secs"), Some(line)),
        "{err}"
    );
    assert!(err.message.contains("between 1 and 86400"), "{err}");
}

#[test]
fn plugin_isolation_defaults_to_processes_and_an_unknown_mode_is_named() {
    let fixture = Fixture::new();
    let config = fixture.parse(&Fixture::valid()).unwrap();
    assert_eq!(config.plugin_isolation.mode, config::IsolationMode::Process);

    let text = Fixture::valid() + "\n[plugin_isolation]\nmode = \"container\"\n";
    let err = fixture.parse(&text).unwrap_err();
    assert!(err.to_string().contains("plugin_isolation.mode"), "{err}");
    assert!(err.message.contains("in-process"), "{err}");
    assert_eq!(err.line, Some(text.lines().count()), "{err}");
}

#[test]
fn operator_mfa_is_optional_unless_required_and_a_misspelling_is_named() {
    let fixture = Fixture::new();
    let config = fixture.parse(&Fixture::valid()).unwrap();
    assert_eq!(config.accounts.operator_mfa, config::MfaPolicy::Optional);
    let text = Fixture::valid() + "\n[accounts]\noperator_mfa = \"required\"\n";
    let config = fixture.parse(&text).unwrap();
    assert_eq!(config.accounts.operator_mfa, config::MfaPolicy::Required);

    let text = Fixture::valid() + "\n[accounts]\noperator_mfa = \"always\"\n";
    let err = fixture.parse(&text).unwrap_err();
    assert!(err.to_string().contains("accounts.operator_mfa"), "{err}");
    assert!(err.message.contains("required"), "{err}");
    assert_eq!(err.line, Some(text.lines().count()), "{err}");
}

#[test]
fn a_postgres_url_loads_with_its_password_from_a_file() {
    let fixture = Fixture::new();
    std::fs::write(fixture.dir.path().join("db-password"), "s3cret\n").unwrap();
    let text = Fixture::valid().replace(
        r#"database = "porthole.db""#,
        "database = \"postgres://porthole@db.example.com/porthole\"\n\
         postgres = { password = { file = \"db-password\" }, pool_size = 8 }",
    );
    let config = fixture.parse(&text).unwrap();
    let Database::Postgres(target) = &config.database else {
        panic!("{:?}", config.database);
    };
    assert_eq!(target.pool_size, 8);
    assert_eq!(
        target.display(),
        "postgres://porthole@db.example.com:5432/porthole"
    );
    assert_eq!(target.connect_config().get_password(), Some(&b"s3cret"[..]));
    // A remote server is reached over verified TLS unless the operator says otherwise.
    assert_eq!(
        target.connect_config().get_ssl_mode(),
        tokio_postgres::config::SslMode::Require
    );
    assert!(!format!("{target:?}").contains("s3cret"));
}

#[test]
fn a_password_in_the_postgres_url_is_refused_with_its_key_and_line() {
    let fixture = Fixture::new();
    let text = Fixture::valid().replace(
        r#"database = "porthole.db""#,
        r#"database = "postgres://porthole:hunter2@db.example.com/porthole""#,
    );
    let err = fixture.parse(&text).unwrap_err();
    assert_eq!(err.line, Some(4), "{err}");
    assert!(err.message.contains("password"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_bad_postgres_setting_is_named_with_its_key() {
    let fixture = Fixture::new();
    let text = Fixture::valid().replace(
        r#"database = "porthole.db""#,
        "database = \"postgres://porthole@127.0.0.1/porthole\"\n\
         postgres = { pool_size = 0 }",
    );
    let err = fixture.parse(&text).unwrap_err();
    assert!(err.to_string().contains("postgres.pool_size"), "{err}");
    assert_eq!(err.line, Some(5), "{err}");
}

#[test]
fn a_tls_key_of_another_certificate_is_named_with_its_key_and_line() {
    let fixture = Fixture::new();
    let dir = fixture.dir.path();
    crate::tls::write_self_signed(dir, "panel");
    crate::tls::write_self_signed(dir, "other");
    let text = Fixture::valid().replace(
        "\n[[clusters]]",
        "log_format = \"json\"\n\n[tls]\ncert_file = \"panel.crt\"\nkey_file = \"other.key\"\n\n[[clusters]]",
    );
    let err = fixture.parse(&text).unwrap_err();
    assert_eq!(err.line, Some(10), "{err}");
    assert!(err.to_string().contains("tls.key_file"), "{err}");
    assert!(
        err.message.contains("does not belong to the certificate"),
        "{err}"
    );
    let good = text.replace("other.key", "panel.key");
    let config = fixture.parse(&good).unwrap();
    assert_eq!(config.log_format, config::LogFormat::Json);
    assert!(config.tls.is_some());
}

#[test]
fn an_address_pool_with_its_gateway_outside_its_network_is_refused_naming_the_key_and_line() {
    let fixture = Fixture::new();
    let pool = "\n[[lifecycle.ip_pools]]\nname = \"v4\"\ncluster = \"lab\"\n\
                network = \"192.0.2.0/24\"\ngateway = \"198.51.100.1\"\n";
    let err = fixture.parse(&(Fixture::valid() + pool)).unwrap_err();
    assert!(
        err.to_string().contains("lifecycle.ip_pools[0].gateway"),
        "{err}"
    );
    assert!(
        err.message.contains("outside network 192.0.2.0/24"),
        "{err}"
    );
    let text = Fixture::valid() + pool;
    assert_eq!(err.line, Some(text.lines().count()), "{err}");

    let good = pool.replace("198.51.100.1", "192.0.2.1");
    let config = fixture.parse(&(Fixture::valid() + &good)).unwrap();
    assert_eq!(config.lifecycle.ip_pools.len(), 1);
}

#[test]
fn a_reverse_zone_that_misses_pool_addresses_or_has_no_plugin_is_refused_naming_the_key_and_line() {
    let fixture = Fixture::new();
    let pool = "\n[[lifecycle.ip_pools]]\nname = \"v4\"\ncluster = \"lab\"\n\
                network = \"192.0.2.0/23\"\ngateway = \"192.0.2.1\"\n\
                reverse_zone = \"2.0.192.in-addr.arpa\"\n";
    let text = Fixture::valid() + pool;
    let err = fixture.parse(&text).unwrap_err();
    assert!(
        err.to_string()
            .contains("lifecycle.ip_pools[0].reverse_zone"),
        "{err}"
    );
    assert!(
        err.message.contains("reverse_zone needs a DNS plugin"),
        "{err}"
    );
    assert_eq!(err.line, Some(text.lines().count()), "{err}");

    let with_plugin = pool.to_owned() + "reverse_dns_plugin = \"nowhere\"\n";
    let err = fixture
        .parse(&(Fixture::valid() + &with_plugin))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("lifecycle.ip_pools[0].reverse_zone"),
        "{err}"
    );
    assert!(err.message.contains("does not hold 192.0.3.254"), "{err}");

    let wide = with_plugin.replace("2.0.192.in-addr.arpa", "0.192.in-addr.arpa");
    let err = fixture.parse(&(Fixture::valid() + &wide)).unwrap_err();
    assert!(
        err.to_string()
            .contains("lifecycle.ip_pools[0].reverse_dns_plugin"),
        "{err}"
    );
    assert!(err.message.contains("no plugin named \"nowhere\""), "{err}");
}
