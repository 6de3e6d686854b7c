//! A throwaway PostgreSQL server for tests and benchmarks: a cluster of its own in a temporary
//! directory, on a free loopback port, gone when the value is dropped.
//!
//! It drives PostgreSQL's own command-line tools rather than a driver, so it suits whichever
//! client the code under test uses and adds no database crate to the build.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::unistd::{User, geteuid};
use tempfile::TempDir;

/// The superuser initdb creates; every URL connects as it, with trust authentication.
const SUPERUSER: &str = "porthole";
/// How long a start may take, from the first port tried to the server answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts to try when something else takes the free port between our probe and the server's bind.
const PORT_ATTEMPTS: usize = 5;
/// Server settings. Durability is pointless for a cluster deleted after the run, and costs the
/// tests most of their time in fsyncs; the connection limit leaves room for parallel tests' pools.
const SETTINGS: &str = "fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
listen_addresses = '127.0.0.1'
";

/// Stops the server and removes the directory when its standard input reaches end of file: when
/// the process holding the other end is gone, however it ended. `Drop` runs neither for a value in
/// a `static` nor on an abort or a kill, and the server, a daemon, would outlive that process.
/// It ignores signals because a Ctrl-C, or a kill of the whole process tree, would otherwise end
/// it too, while the server (in a session of its own) lives on. It waits for the pid file to go
/// rather than the process: an exited server is a zombie until whatever adopted it reaps it, and
/// `kill -0` still finds a zombie.
const WATCHDOG: &str = r#"trap '' HUP INT QUIT TERM
read _
if pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null) && kill -QUIT "$pid" 2>/dev/null; then
    i=0
    while [ -e "$1/data/postmaster.pid" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
fi
rm -rf "$1"
"#;

/// A running PostgreSQL server of its own, listening on 127.0.0.1, stopped and deleted on drop.
pub struct TempPostgres {
    /// Holds the cluster (`data`), its log and its unix socket; removed on drop.
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// PostgreSQL refuses to run as root, so under root its commands go through `runuser`.
    as_postgres: bool,
    watchdog: Option<Child>,
}

impl TempPostgres {
    /// Creates a cluster and starts its server, waiting until it accepts connections.
    pub fn start() -> anyhow::Result<TempPostgres> {
        let bin = find_bin_dir()?;
        let as_postgres = geteuid().is_root();
        // /tmp, not $TMPDIR: the unix socket lives here and its path may not exceed ~107 bytes,
        // and under root the `postgres` user must be able to reach the directory.
        let dir = tempfile::Builder::new()
            .prefix("porthole-pg-")
            .tempdir_in("/tmp")
            .context("could not create a temporary directory in /tmp")?;
        if as_postgres {
            let user = User::from_name("postgres")?.context(
                "running as root, the server must run as the `postgres` system user, and there \
                 is none; Debian's `postgresql` package creates it",
            )?;
            std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .context("could not give the temporary directory to the `postgres` user")?;
        }
        // Built before anything can fail, so that its drop cleans up after a failed start too.
        let mut server = TempPostgres {
            dir,
            bin,
            port: 0,
            as_postgres,
            watchdog: None,
        };
        server.watchdog = Some(server.spawn_watchdog()?);
        server.init()?;
        server.run_server()?;
        Ok(server)
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database and returns its URL. The name is limited to letters, digits, `_` and
    /// `-`, so that it needs no escaping in the URL.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if name.is_empty() || !name.chars().all(plain) {
            bail!("database name {name:?} is not made of letters, digits, `_` and `-`");
        }
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb.args(["--host", "127.0.0.1", "--username", SUPERUSER, "--port"]);
        createdb.arg(self.port.to_string()).arg(name);
        run(createdb)?;
        Ok(self.url(name))
    }

    /// The TCP port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's main process (the postmaster), whose children serve the connections.
    pub fn server_pid(&self) -> anyhow::Result<u32> {
        let file = self.data_dir().join("postmaster.pid");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("while reading {}", file.display()))?;
        let first = text.lines().next().unwrap_or_default();
        first
            .trim()
            .parse()
            .with_context(|| format!("{} starts with {first:?}, not a pid", file.display()))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A command for one of the server's own tools, as the user the server runs as.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(path);
            runuser
        } else {
            Command::new(path)
        };
        // The tools look up their working directory, which `postgres` may not be allowed into
        // (root's home, say).
        command.current_dir(self.dir.path());
        command
    }

    fn spawn_watchdog(&self) -> anyhow::Result<Child> {
        Command::new("sh")
            .args(["-c", WATCHDOG, "sh"])
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start the watchdog shell")
    }

    fn init(&self) -> anyhow::Result<()> {
        let data = self.data_dir();
        let mut initdb = self.server_command("initdb");
        initdb.arg("--pgdata").arg(&data).args([
            "--auth=trust",
            "--username",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
            // Nothing here has to survive a crash.
            "--no-sync",
        ]);
        run(initdb)?;
        // In the configuration file rather than on pg_ctl's command line, which goes through a
        // shell and would need the socket path quoted.
        let socket_dir = self.dir.path().to_string_lossy().replace('\'', "''");
        let settings = format!("\n{SETTINGS}unix_socket_directories = '{socket_dir}'\n");
        let config = data.join("postgresql.conf");
        OpenOptions::new()
            .append(true)
            .open(&config)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .with_context(|| format!("could not add settings to {}", config.display()))
    }

    fn run_server(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port()?;
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1);
            let mut pg_ctl = self.server_command("pg_ctl");
            pg_ctl.arg("start").arg("--pgdata").arg(self.data_dir());
            pg_ctl.arg("--log").arg(self.log_file()).arg("--wait");
            pg_ctl.arg("--timeout").arg(wait.to_string());
            pg_ctl.arg("--options").arg(format!("-p {port}"));
            if run(pg_ctl).is_ok() {
                self.port = port;
                return self.wait_until_ready(deadline);
            }
            let log = self.log_tail();
            if !log.contains("Address already in use") || attempt == PORT_ATTEMPTS {
                bail!("the PostgreSQL server did not start; the end of its log:\n{log}");
            }
        }
        bail!("the PostgreSQL server did not start")
    }

    /// pg_ctl's wait watches the server's pid file; this checks that TCP clients get in too.
    fn wait_until_ready(&self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            let mut pg_isready = Command::new(self.bin.join("pg_isready"));
            pg_isready.args(["--quiet", "--host", "127.0.0.1", "--username", SUPERUSER]);
            pg_isready
                .args(["--dbname", "postgres", "--port"])
                .arg(self.port.to_string());
            if run(pg_isready).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the PostgreSQL server started but accepted no connection on port {} within \
                     {START_TIMEOUT:?}; the end of its log:\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        match fs::read_to_string(self.log_file()) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(30)..].join("\n")
            }
            Err(error) => format!("(could not read {}: {error})", self.log_file().display()),
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // Immediate: nothing in the cluster is worth a clean shutdown's checkpoint.
        let mut stop = self.server_command("pg_ctl");
        stop.arg("stop").arg("--pgdata").arg(self.data_dir());
        stop.args(["--mode", "immediate"]);
        let _ = run(stop);
        // Closing its input lets the watchdog finish: it removes the directory, and waiting for it
        // leaves no zombie behind. `dir`'s own drop then finds nothing left to remove.
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// The server's binaries: Debian keeps them out of PATH, under /usr/lib/postgresql/VERSION/bin,
/// and several versions may be installed side by side; other systems put them on PATH.
/// The environment variable naming a running server's URL (any database on it; the role may
/// create databases) that [`TestDatabase`] uses instead of starting a server per test, so a
/// suite of many tests pays for one server.
pub const SERVER_ENV: &str = "PORTHOLE_TEST_POSTGRES";

/// A fresh, empty database for one test: on the server [`SERVER_ENV`] names, or else on a
/// server of its own that goes when this value does.
pub struct TestDatabase {
    url: String,
    _server: Option<TempPostgres>,
}

impl TestDatabase {
    pub fn create() -> anyhow::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        match std::env::var(SERVER_ENV) {
            Ok(server) => {
                let bin = find_bin_dir()?;
                let mut psql = Command::new(bin.join("psql"));
                psql.arg(&server)
                    .args(["-v", "ON_ERROR_STOP=1", "-c"])
                    .arg(format!("CREATE DATABASE {name}"));
                run(psql)?;
                let base = server
                    .rsplit_once('/')
                    .map_or(server.as_str(), |(base, _)| base);
                Ok(Self {
                    url: format!("{base}/{name}"),
                    _server: None,
                })
            }
            Err(_) => {
                let server = TempPostgres::start()?;
                Ok(Self {
                    url: server.create_database(&name)?,
                    _server: Some(server),
                })
            }
        }
    }

    /// The database's URL (no password: the server trusts loopback).
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let has_tools = |dir: &Path| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file();
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version: Option<Vec<u32>> = name.split('.').map(|part| part.parse().ok()).collect();
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version?, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(bin) = std::env::split_paths(&path).find(|dir| has_tools(dir)) {
        return Ok(bin);
    }
    bail!(
        "no PostgreSQL server found (no pg_ctl and initdb under /usr/lib/postgresql/*/bin or on \
         PATH); install Debian's `postgresql` package: apt-get install postgresql"
    )
}

/// A port that was free a moment ago. The server binds it later, so another process may take it
/// first; `run_server` tries again then.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("could not find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn run(mut command: Command) -> anyhow::Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout),
        );
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_creates_a_database_and_cleans_up() {
        let server = TempPostgres::start().unwrap();
        let url = server.create_database("fixture_test").unwrap();
        assert_eq!(
            url,
            format!(
                "postgres://porthole@127.0.0.1:{}/fixture_test",
                server.port()
            )
        );

        let mut psql = Command::new(server.bin.join("psql"));
        psql.arg(&url).args([
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "-c",
            "select 1",
        ]);
        let output = run(psql).unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1");

        let dir = server.dir.path().to_path_buf();
        let port = server.port();
        drop(server);
        assert!(!dir.exists(), "{} is left behind", dir.display());
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "still listening"
        );
    }
}
