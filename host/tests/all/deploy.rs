//! The deployment files in `examples/deploy/`, checked by the tools that will run them: the
//! systemd unit by `systemd-analyze verify`, the nginx site by `nginx -t` and by the end-to-end
//! tests in `front_door`, which serve through it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The shipped site, made to run on loopback for a test: its `listen` lines on `https` (TLS)
/// and `http` (the redirect), its certificate the test's, its upstream `upstreams`, and its
/// read timeouts `read_timeout`.
pub(crate) fn site_for_test(
    https: SocketAddr,
    http: SocketAddr,
    cert: &Path,
    key: &Path,
    upstreams: &[SocketAddr],
    read_timeout: &str,
) -> String {
    let site = deploy_file("nginx-porthole.conf");
    let servers: String = upstreams
        .iter()
        .map(|addr| format!("server {addr};\n"))
        .collect();
    let replaced = [
        ("    listen 80;\n", format!("    listen {http};\n")),
        ("    listen [::]:80;\n", String::new()),
        (
            "    listen 443 ssl;\n",
            format!("    listen {https} ssl;\n"),
        ),
        ("    listen [::]:443 ssl;\n", String::new()),
        (
            "/etc/letsencrypt/live/panel.example.com/fullchain.pem",
            cert.display().to_string(),
        ),
        (
            "/etc/letsencrypt/live/panel.example.com/privkey.pem",
            key.display().to_string(),
        ),
        ("server 127.0.0.1:8080;\n", servers),
        (
            "proxy_read_timeout 90s;",
            format!("proxy_read_timeout {read_timeout};"),
        ),
    ];
    replaced.into_iter().fold(site, |site, (from, to)| {
        assert!(
            site.contains(from),
            "the shipped site no longer has `{from}`"
        );
        site.replace(from, &to)
    })
}

/// An nginx main configuration under `prefix` that includes `site`; its path.
pub(crate) fn nginx_conf(prefix: &Path, site: &str) -> PathBuf {
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    std::fs::write(prefix.join("site.conf"), site).unwrap();
    // As root nginx would hand its workers to `nobody`, who cannot use the temp directories.
    let user = if nix::unistd::geteuid().is_root() {
        "user root;"
    } else {
        ""
    };
    let conf = format!(
        r#"{user}
worker_processes 1;
error_log stderr warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
"#,
        prefix = prefix.display()
    );
    let file = prefix.join("nginx.conf");
    std::fs::write(&file, conf).unwrap();
    file
}

/// Debian's nginx serving `site` from `prefix` on `addr` (one of the site's `listen`s), until
/// dropped.
pub(crate) struct Nginx {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Nginx {
    pub(crate) fn serve(prefix: &Path, site: &str, addr: SocketAddr) -> Self {
        let conf = nginx_conf(prefix, site);
        let child = Command::new(nginx())
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, addr }
    }
}

impl Drop for Nginx {
    /// SIGTERM, a fast shutdown: a SIGKILLed master would leave its worker behind.
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        let master = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if kill(master, Signal::SIGTERM).is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

pub(crate) fn nginx() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed: apt-get install -y nginx (as .ci/run does)")
}

#[test]
fn nginx_accepts_the_shipped_site() {
    let dir = tempfile::tempdir().unwrap();
    crate::tls::write_self_signed(dir.path(), "panel");
    let site = site_for_test(
        "127.0.0.1:8443".parse().unwrap(),
        "127.0.0.1:8081".parse().unwrap(),
        &dir.path().join("panel.crt"),
        &dir.path().join("panel.key"),
        &["127.0.0.1:8080".parse().unwrap()],
        "90s",
    );
    let prefix = dir.path().join("nginx");
    let conf = nginx_conf(&prefix, &site);
    let output = Command::new(nginx())
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .arg("-t")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("test is successful"), "{said}");
}

#[test]
fn systemd_accepts_the_shipped_unit() {
    let dir = tempfile::tempdir().unwrap();
    // `verify` checks that ExecStart's program exists: point it at the one just built.
    let unit = deploy_file("porthole.service").replace(
        "/usr/bin/porthole ",
        &format!("{} ", env!("CARGO_BIN_EXE_porthole")),
    );
    let path = dir.path().join("porthole.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package) is needed");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(
        said.trim().is_empty(),
        "systemd-analyze had remarks: {said}"
    );
}
